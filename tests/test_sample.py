"""sample.py against HF generate (toy and the real SmolLM2), the exact sampling distribution,
grpo's log-probs, reproducibility and memory."""
import shutil

import pytest
import torch

import grpo
import kvcache
import sample
import toy
from bcr import make_batch
from reward import build_prompt, last_answer_end

# the exactness tests also run on a GPU when there is one: there generate() takes the compiled
# static-cache path by default, which HF generate then checks
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


def _toy_model(seed=0, sharpen=True, device="cpu"):
    tok = toy.make_tokenizer()
    model = toy.make_model(tok, seed).eval()
    if sharpen:
        with torch.no_grad():  # sharper random logits, so that greedy paths differ between prompts
            model.lm_head.weight.mul_(8)
    return model.to(device), tok


def hf_generate(model, prompts, max_new_tokens, pad, eos_ids, greedy=True):
    """The reference: transformers' own generate on the same left-padded prompts."""
    device = next(model.parameters()).device
    L = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), L), pad, dtype=torch.long, device=device)
    att = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, L - len(p):] = torch.tensor(p, device=device)
        att[i, L - len(p):] = 1
    kw = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0)
    return model.generate(input_ids=ids, attention_mask=att, max_new_tokens=max_new_tokens, pad_token_id=pad,
                          eos_token_id=eos_ids, **kw)


def _hf_greedy(model, prompts, new, pad, eos):
    out = hf_generate(model, prompts, new, pad, eos)
    L = max(len(p) for p in prompts)
    rows = []
    for i in range(len(prompts)):
        r = out[i, L:].tolist()
        if any(e in r for e in eos):  # HF pads after EOS; keep up to and including it
            r = r[: min(r.index(e) for e in eos if e in r) + 1]
        rows.append(r)
    return rows


def _check_greedy_equal(model, prompts, eos, pad):
    for new in (1, 7, 40):
        ref = _hf_greedy(model, prompts, new, pad, eos)
        for check_every in (16, 2):  # 2: finished rows leave the batch early and often
            ours = sample.generate(model, prompts, 1, new, temperature=0, eos_token_ids=eos, pad_token_id=pad,
                                   check_every=check_every)
            for i in range(len(prompts)):
                assert ours.tokens(i) == ref[i], (new, check_every, i)
                assert bool(ours.finished[i]) == (ref[i][-1] in eos if ref[i] else False)


@pytest.mark.parametrize("device", DEVICES)
def test_greedy_equals_hf_generate_toy_ragged(device):
    model, tok = _toy_model(device=device)
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(10, 100, (n,), generator=g).tolist() for n in (3, 17, 8, 1, 30)]
    _check_greedy_equal(model, prompts, [tok.eos_token_id], tok.pad_token_id)
    # a frequent EOS so that rows stop at different steps
    _check_greedy_equal(model, prompts, [int(t) for t in range(20, 40)], tok.pad_token_id)


def test_greedy_equals_hf_generate_smollm2(smollm2):
    model, tok = smollm2
    texts = ["What is 2+3?", "Write a haiku about the sea and the moon at night, please.", "Hi"]
    prompts = [tok.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True, tokenize=True)
               for t in texts]
    prompts = [p if isinstance(p, list) else p["input_ids"] for p in prompts]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    for new in (5, 24):
        ours = sample.generate(model, prompts, 1, new, temperature=0, eos_token_ids=[tok.eos_token_id],
                               pad_token_id=pad)
        ref = _hf_greedy(model, prompts, new, pad, [tok.eos_token_id])
        for i in range(len(prompts)):
            assert ours.tokens(i) == ref[i]


def test_seeded_sampling_is_reproducible_and_prompt_major():
    model, tok = _toy_model(sharpen=False)
    prompts = [[11, 12, 13], [20, 21, 22, 23, 24, 25]]
    a = sample.generate(model, prompts, 4, 20, temperature=1.0, seed=7)
    b = sample.generate(model, prompts, 4, 20, temperature=1.0, seed=7)
    c = sample.generate(model, prompts, 4, 20, temperature=1.0, seed=8)
    assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.logprobs, b.logprobs)
    assert not torch.equal(a.completion_ids, c.completion_ids)
    assert a.completion_ids.shape[0] == 8
    assert a.prompt_ids[:4] == [prompts[0]] * 4 and a.prompt_ids[4:] == [prompts[1]] * 4


def test_finished_rows_leave_the_batch_and_change_no_token():
    model, tok = _toy_model(sharpen=False)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(10, 100, (n,), generator=g).tolist() for n in (4, 11, 6)]
    eos = list(range(30, 45))  # frequent: rows end at different steps
    sizes = []
    hook = model.register_forward_pre_hook(lambda m, a, kw: sizes.append(kw["input_ids"].shape[0]), with_kwargs=True)
    a = sample.generate(model, prompts, 4, 40, temperature=1.0, top_k=50, eos_token_ids=eos, seed=3, check_every=2)
    hook.remove()
    # the reference: the same rollout with no check before the end, so every row stays in the batch
    b = sample.generate(model, prompts, 4, 40, temperature=1.0, top_k=50, eos_token_ids=eos, seed=3, check_every=10**6)
    assert sizes[0] == 3 and sizes[1] == 12 and min(sizes) < 12, sizes  # prefill, full batch, then it shrinks
    assert int(a.lengths.min()) + 4 <= int(a.lengths.max())  # rows ended at different steps
    assert torch.equal(a.lengths, b.lengths) and torch.equal(a.finished, b.finished)
    for i in range(12):  # (b's tensors are wider: it ran on to the budget on PAD)
        assert a.tokens(i) == b.tokens(i)
        assert torch.allclose(a.logprobs[i, : a.lengths[i]], b.logprobs[i, : b.lengths[i]], atol=1e-6)


def _empirical(logits, n, **kw):
    g = torch.Generator().manual_seed(0)
    tok, _ = sample.sample_token(logits.expand(n, -1), generator=g, **kw)
    return torch.bincount(tok, minlength=logits.shape[-1]).float() / n


def _expected(logits, temperature, top_k, top_p):
    """By hand: keep the top_k tokens, renormalise, keep the smallest head reaching top_p
    (the order of HF's logits warpers), renormalise."""
    p = torch.softmax(logits[0] / temperature, -1)
    keep = torch.ones_like(p, dtype=torch.bool)
    if top_k:
        keep &= p >= torch.topk(p, top_k).values[-1]
        p = torch.where(keep, p, torch.zeros_like(p))
        p = p / p.sum()
    if top_p < 1:
        order = torch.argsort(p, descending=True)
        cum = torch.cumsum(p[order], 0) - p[order]
        k2 = torch.zeros_like(keep)
        k2[order[cum < top_p]] = True
        keep &= k2
    q = torch.where(keep, p, torch.zeros_like(p))
    return q / q.sum()


def test_one_step_distribution_matches_softmax_after_topk_topp():
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0, 1.5]])
    n = 200_000
    for T, k, p in ((1.0, 0, 1.0), (0.7, 0, 1.0), (1.0, 3, 1.0), (1.0, 0, 0.8), (1.3, 5, 0.9)):
        emp, exp = _empirical(logits, n, temperature=T, top_k=k, top_p=p), _expected(logits, T, k, p)
        # 5 standard errors of a binomial proportion; zero-probability tokens are never drawn
        se = (exp * (1 - exp) / n).sqrt()
        assert ((emp - exp).abs() <= 5 * se + 1e-9).all(), (T, k, p, emp, exp)
        assert (emp[exp == 0] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
def test_logprobs_equal_grpo_recomputation(device):
    model, tok = _toy_model(sharpen=False, device=device)
    prompts = [build_prompt(tok, ["123+456"]), build_prompt(tok, ["1+1", "22+3"])]
    for T in (1.0, 0.8):
        roll = sample.generate(model, prompts, 3, 25, temperature=T, eos_token_ids=[tok.eos_token_id],
                               pad_token_id=tok.pad_token_id, seed=1)
        batch = make_batch(roll, tok.pad_token_id, device)
        with torch.no_grad():
            lp = grpo.token_logprobs(model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"], T)
        m = batch["completion_mask"].bool()
        assert torch.allclose(lp[m], batch["sampler_logp"][m], atol=1e-4)


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_memory_does_not_grow_over_100_rollouts():
    model, tok = _toy_model()
    prompts = [[11, 12, 13, 14], [20, 21]]
    for _ in range(5):
        sample.generate(model, prompts, 8, 64, temperature=1.0, seed=0)
    before = _rss()
    for i in range(100):
        sample.generate(model, prompts, 8, 64, temperature=1.0, seed=i)
    assert _rss() - before < 20 * 2**20  # the cache is ~0.5 MB; a leak would add it 100 times


def test_context_overflow_is_a_clear_error():
    model, tok = _toy_model()
    try:
        sample.generate(model, [[11] * 1000], 1, 100)
    except ValueError as e:
        assert "exceeds the model's context" in str(e)
    else:
        raise AssertionError("no error")


@pytest.mark.parametrize("device", DEVICES)
def test_gpu_path_static_cache_equals_hf_generate(device):
    # the GPU path's cache and masks (every slot read every step, a 2D mask over all slots, slots
    # written by index_copy_ at a tensor offset), run eagerly: the same tokens as HF and the same
    # log-probs as the non-static path
    model, tok = _toy_model(device=device)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(10, 100, (n,), generator=g).tolist() for n in (3, 17, 8, 1, 30)]
    eos = [int(t) for t in range(20, 40)]
    for new in (1, 7, 40):
        ours = sample.generate(model, prompts, 1, new, temperature=0, eos_token_ids=eos,
                               pad_token_id=tok.pad_token_id, static=True, compile=False)
        ref = _hf_greedy(model, prompts, new, tok.pad_token_id, eos)
        assert [ours.tokens(i) for i in range(len(prompts))] == ref, new
    kw = dict(eos_token_ids=[tok.eos_token_id], seed=5, compile=False)
    a = sample.generate(model, prompts, 3, 25, temperature=1.0, static=True, **kw)
    b = sample.generate(model, prompts, 3, 25, temperature=1.0, static=False, **kw)
    assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.lengths, b.lengths)
    assert torch.allclose(a.logprobs, b.logprobs, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_compiled_step_matches_eager_and_is_reused_across_prompt_lengths(device):
    # the GPU path's decode step, compiled (on the CPU torch.compile has no CUDA graph to capture,
    # but it traces and compiles the same function); rollouts whose longest prompts differ share
    # one compiled step because the static cache is sized in SLOT_BUCKET slots
    from torch._dynamo.utils import counters

    if device == "cpu" and not (shutil.which("g++") or shutil.which("c++")):
        pytest.skip("torch.compile on the CPU needs a C++ compiler")
    model, tok = _toy_model(seed=2, device=device)
    g = torch.Generator().manual_seed(2)
    eos = [tok.eos_token_id]
    for lens in ((3, 17, 8), (30, 2, 5)):
        prompts = [torch.randint(10, 100, (n,), generator=g).tolist() for n in lens]
        a = sample.generate(model, prompts, 2, 20, temperature=0, eos_token_ids=eos, compile=True)
        if lens[0] == 3:
            graphs = counters["stats"]["unique_graphs"]
            assert graphs >= 1
        b = sample.generate(model, prompts, 2, 20, temperature=0, eos_token_ids=eos, compile=False, static=False)
        assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.lengths, b.lengths)
        assert torch.allclose(a.logprobs, b.logprobs, atol=1e-4)  # fused kernels may round differently
    assert counters["stats"]["unique_graphs"] == graphs  # no recompilation for the second prompt set


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_gpu_memory_is_freed_after_each_rollout():
    model, tok = _toy_model(device="cuda")
    prompts = [[11, 12, 13, 14], [20, 21]]
    sample.generate(model, prompts, 8, 64, temperature=1.0, seed=0)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for i in range(100):
        sample.generate(model, prompts, 8, 64, temperature=1.0, seed=i)
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() - before < 2**20


RESP = ("### Problem 1\n1+1=2\nAnswer 1: \\boxed{2}\n### Problem 2\nAnswer 2: \\boxed{5}\n"
        "### Problem 3\n3+3=6\nAnswer 3: \\boxed{6}")


def test_stop_at_cuts_what_follows_and_keeps_an_eos():
    """Rollout.stop_at with BCR's stop rule (the toy's): a response ends once its last answer is complete."""
    tok = toy.make_tokenizer()
    texts = [RESP,  # answer 3 then EOS: unchanged
             RESP + "\n### Problem 4\nx4 = 12 \nAnswer 4: \\boxed{1}",  # writes on past answer 3: cut there
             RESP[: RESP.rindex("}")]]  # hit the budget inside answer 3: unchanged, still unfinished
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    ids[0] = ids[0] + [tok.eos_token_id]
    width = max(map(len, ids))
    comp, lp = torch.full((3, width), tok.pad_token_id), torch.zeros(3, width)
    for i, x in enumerate(ids):
        comp[i, : len(x)], lp[i, : len(x)] = torch.tensor(x), -0.5
    roll = sample.Rollout([[1]] * 3, comp, lp, torch.tensor([len(x) for x in ids]), torch.tensor([True, False, False]),
                          1, tok.pad_token_id, (tok.eos_token_id,))
    roll.stop_at(tok, lambda text: last_answer_end(text, 3) is not None)
    assert roll.texts(tok) == [RESP, RESP, texts[2]]
    n_resp = len(ids[0]) - 1
    assert roll.lengths.tolist() == [n_resp + 1, n_resp, len(ids[2])]
    assert roll.tokens(0)[-1] == tok.eos_token_id and roll.finished.tolist() == [True, True, False]
    # nothing of the cut tokens is left for the trainer: pad ids and zero log-probs
    assert (roll.completion_ids[1, n_resp:] == tok.pad_token_id).all() and (roll.logprobs[1, n_resp:] == 0).all()
    assert roll.logprobs[1, :n_resp].sum().item() == pytest.approx(-0.5 * n_resp)


def test_stop_at_takes_one_rule_per_completion():
    """Mixed N in one batch (bcr.py --n 1 2 3 4): each completion stops at its own prompt's last answer."""
    tok = toy.make_tokenizer()
    two = RESP[: RESP.index("### Problem 3")].rstrip("\n")  # answers 1 and 2 only
    ids = [tok(two, add_special_tokens=False)["input_ids"]] * 2
    comp, lp = torch.tensor(ids), torch.full((2, len(ids[0])), -0.5)
    roll = sample.Rollout([[1]] * 2, comp, lp, torch.tensor([len(ids[0])] * 2), torch.tensor([False, False]),
                          1, tok.pad_token_id, (tok.eos_token_id,))
    roll.stop_at(tok, [lambda text, k=k: last_answer_end(text, k) is not None for k in (1, 2)])
    first = RESP[: RESP.index("}") + 1]  # a prompt of one problem ends after "Answer 1: \\boxed{..}"
    assert roll.texts(tok) == [first, two] and roll.finished.tolist() == [True, True]


# ---------------------------------------------------------------------------------------------
# issue #17: grouped KV heads in the compiled step, a bounded set of compiled shapes, row chunks


def _gqa_model(seed=0, dtype=torch.bfloat16):
    """R1-1.5B's attention at a tiny width: 6 query heads per KV head (R1: 12/2), head_dim 32, bf16."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model("qwen2", hidden_size=192, intermediate_size=256, num_hidden_layers=2,
                               num_attention_heads=6, num_key_value_heads=1, head_dim=32, vocab_size=300,
                               max_position_embeddings=2048, eos_token_id=299, pad_token_id=0)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(cfg, dtype=dtype).eval()


def _expanded_kv(gm, rows, slots, cfg):
    """Nodes of a traced step whose value is as large as K or V repeated to every query head."""
    big = rows * cfg.num_attention_heads * slots * cfg.head_dim
    return [(str(n.target), tuple(v.shape)) for n in gm.graph.nodes
            if isinstance(v := n.meta.get("example_value"), torch.Tensor) and v.numel() >= big]


def test_compiled_step_reads_grouped_kv_heads_without_expanding_them(monkeypatch):
    # the graph torch.compile traces for the decode step (what Inductor then compiles) holds no
    # tensor as large as K/V repeated to all 6 query heads; transformers' SDPA path, traced the
    # same way, does (repeat_kv), which shows the check would fail on it
    model = _gqa_model()
    prompts = [[1, 2, 3], [4, 5, 6, 7]]
    for grouped in (True, False):
        graphs = []

        def record(gm, example_inputs):
            graphs.append(gm)
            return gm.forward
        monkeypatch.setattr(kvcache, "_COMPILED", {})
        monkeypatch.setattr(kvcache, "_compile", lambda m: torch.compile(kvcache._decode_step, backend=record,
                                                                          dynamic=False))
        if not grouped:
            monkeypatch.setattr(sample, "grouped_attention", lambda m: sample._nothing())
        sample.generate(model, prompts, 2, 4, temperature=0, compile=True)
        assert len(graphs) == 1
        expanded = _expanded_kv(graphs[0], 4, kvcache.SLOT_BUCKET, model.config)
        assert (expanded == []) == grouped, expanded
    assert model.config._attn_implementation == "sdpa"  # restored after the rollout


def test_grouped_attention_equals_transformers_sdpa_eager_and_compiled():
    # grouped_sdpa gives transformers' numbers: eager static path vs the non-static path (which
    # runs transformers' SDPA), and compiled (Inductor, on the CPU) vs eager, on the GQA model
    if not (shutil.which("g++") or shutil.which("c++")):
        pytest.skip("torch.compile on the CPU needs a C++ compiler")
    model = _gqa_model(dtype=torch.float32)
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(3, 299, (n,), generator=g).tolist() for n in (5, 12, 1)]
    kw = dict(temperature=1.0, seed=4, eos_token_ids=[299])
    ref = sample.generate(model, prompts, 2, 12, static=False, compile=False, **kw)
    for compile in (False, True):
        a = sample.generate(model, prompts, 2, 12, static=True, compile=compile, **kw)
        assert torch.equal(a.completion_ids, ref.completion_ids) and torch.equal(a.lengths, ref.lengths), compile
        assert torch.allclose(a.logprobs, ref.logprobs, atol=1e-4)


def test_compiled_shapes_are_bounded_and_never_fall_back_to_eager(monkeypatch):
    # more rollout shapes than torch's recompile limit (lowered to 2 here, to keep the test short;
    # the default is 8): the rollouts run in at most MAX_SHAPES compiled graphs, each compiled
    # once (torch's graph counter grows by exactly that much: a step that fell back to eager
    # would not be compiled at all), and every rollout gives the eager tokens
    from torch._dynamo.utils import counters

    if not (shutil.which("g++") or shutil.which("c++")):
        pytest.skip("torch.compile on the CPU needs a C++ compiler")
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 2)
    monkeypatch.setattr(kvcache, "MAX_SHAPES", 3)
    model, tok = _toy_model(seed=4)
    g = torch.Generator().manual_seed(4)
    graphs = counters["stats"]["unique_graphs"]
    # (prompts, samples, budget): rows 2, 8, 4, 8, 2 and slots 256, 512, 256, 256, 512 -> 5 shapes asked
    cases = [(2, 1, 20), (2, 4, 300), (1, 4, 20), (4, 2, 30), (1, 2, 400)]
    for P, G, new in cases:
        prompts = [torch.randint(10, 100, (n,), generator=g).tolist() for n in (3, 9, 5, 7)[:P]]
        a = sample.generate(model, prompts, G, new, temperature=0, eos_token_ids=[tok.eos_token_id], compile=True)
        b = sample.generate(model, prompts, G, new, temperature=0, eos_token_ids=[tok.eos_token_id], static=True,
                            compile=False)
        assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.lengths, b.lengths)
    shapes = kvcache.compiled_shapes(model)
    assert len(shapes) == kvcache.MAX_SHAPES == 3, shapes
    assert counters["stats"]["unique_graphs"] - graphs == len(shapes)
    # the last two asked for (8, 256) and (2, 512): both ran in a compiled shape that holds them
    assert all(any(r >= rows and s >= slots for r, s in shapes) for rows, slots in ((8, 256), (2, 512)))

    # the same five shapes through one plain torch.compile: torch runs the shapes past its limit
    # eagerly, and its graph counter shows it (the check above would have failed)
    graphs = counters["stats"]["unique_graphs"]
    monkeypatch.setattr(kvcache, "MAX_SHAPES", 100)
    monkeypatch.setattr(kvcache, "_COMPILED", {})

    def step(*args):  # a code object of its own: no compiled entries from earlier tests
        return kvcache._decode_step(*args)
    plain = torch.compile(step, backend="eager", dynamic=False)
    monkeypatch.setattr(kvcache, "_compile", lambda m: plain)
    for P, G, new in cases:
        prompts = [torch.randint(10, 100, (n,), generator=g).tolist() for n in (3, 9, 5, 7)[:P]]
        sample.generate(model, prompts, G, new, temperature=0, eos_token_ids=[tok.eos_token_id], compile=True)
    assert len(kvcache.compiled_shapes(model)) == 5 and counters["stats"]["unique_graphs"] - graphs == 2


def test_row_chunks_keep_groups_together_and_pad_rows_to_a_power_of_two():
    # max_rows splits a rollout into chunks of whole groups; on the static path each chunk's rows
    # are padded to a power of two with dummy rows that draw nothing: the tokens are those of
    # one unchunked rollout drawn chunk by chunk from the same stream
    model, tok = _toy_model(sharpen=False)
    prompts = [[11, 12, 13], [20, 21], [30, 31, 32, 33], [40]]
    sizes = []
    hook = model.register_forward_pre_hook(lambda m, a, kw: sizes.append(kw["input_ids"].shape[0]), with_kwargs=True)
    a = sample.generate(model, prompts, 3, 10, temperature=0, static=True, compile=False, max_rows=7)
    hook.remove()
    assert set(sizes) == {2, 8}  # prefill of 2 prompts, then 6 real rows + 2 dummies per step
    whole = sample.generate(model, prompts, 3, 10, temperature=0, static=False, compile=False)
    assert torch.equal(a.lengths, whole.lengths) and a.prompt_ids == whole.prompt_ids
    for i in range(12):
        assert a.tokens(i) == whole.tokens(i)
    # sampled: chunked and unchunked static rollouts draw the same stream when the chunks are
    # consecutive groups (one generator, rows in the same order)
    one = sample.generate(model, prompts[:2], 3, 10, temperature=1.0, seed=9, static=True, compile=False)
    two = sample.generate(model, prompts[:2], 3, 10, temperature=1.0, seed=9, static=True, compile=False, max_rows=3)
    assert one.completion_ids.shape[0] == two.completion_ids.shape[0] == 6


def test_rows_that_fit_is_a_power_of_two_of_whole_groups():
    from transformers import Qwen2Config

    cfg = Qwen2Config(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                      num_key_value_heads=2, vocab_size=151936)
    assert kvcache.kv_bytes_per_token(cfg) == 28 * 1024  # 2 * 28 layers * 2 KV heads * 128 * 2 bytes
    slots = kvcache.slots_for(700, 5120)
    assert slots == 5888  # 5820 rounded up to SLOT_BUCKET
    per_row = kvcache.row_bytes(cfg, slots)
    assert kvcache.rows_that_fit(cfg, slots, 8, 40 * per_row) == 32
    assert kvcache.rows_that_fit(cfg, slots, 8, 8 * per_row) == 8
    assert kvcache.rows_that_fit(cfg, slots, 8, 7 * per_row) == 0
    assert kvcache.rows_that_fit(cfg, slots, 6, 7 * per_row) == 0  # a group of 6 runs as 8 rows
