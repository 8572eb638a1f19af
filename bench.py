"""
bench.py: speed and memory, measured side by side in one run (results in BENCHMARKS.md).

    python bench.py sample   our KV-cache sampler vs HF generate (and the model's forwards alone)
    python bench.py grpo     peak memory and time of the log-prob forward+backward, chunked vs naive
    python bench.py reward   grade calls per second on one core (GSM8K and MATH-500 references)
    python bench.py gpu      the GPU check of issue #17 (< 10 minutes on one H100/H200; --tiny on the CPU)

On a GPU the sample and grpo benches use Qwen2.5-1.5B / R1-1.5B widths with random weights; on the
CPU, the toy model and a narrow hidden size.
"""
import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM

import bcr
import grader
import grpo
import kvcache
import memory
import sample
import toy

# ---------------------------------------------------------------------------------------------
# sample: ours vs HF generate, same model, prompts and lengths


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _bench_once(fn, device):
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def bench_sample(args):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    g = torch.Generator().manual_seed(0)
    if device.type == "cuda":
        cfg = AutoConfig.for_model("qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                   num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                                   max_position_embeddings=32768, rope_theta=1e6, tie_word_embeddings=True)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).to(device).eval()
        batch, plen, new = args.batch or 64, args.prompt_len or 512, args.new_tokens or 1024
        what = "Qwen2.5-1.5B shape, random weights, bf16"
    else:
        tok = toy.make_tokenizer()
        model = toy.make_model(tok).eval()
        cfg = model.config
        batch, plen, new = args.batch or 64, args.prompt_len or 64, args.new_tokens or 256
        what = "toy Llama (0.9M params), fp32"
    prompts = [torch.randint(10, cfg.vocab_size, (plen,), generator=g).tolist() for _ in range(batch)]
    never = [cfg.vocab_size + 7]  # an EOS id no one can sample: every row runs the full length

    def ours():
        sample.generate(model, prompts, 1, new, temperature=0, eos_token_ids=never, pad_token_id=0, seed=0)

    def hf():  # every prompt has plen tokens: no padding
        ids = torch.tensor(prompts, device=device)
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, do_sample=False,
                       pad_token_id=0, eos_token_id=never)

    @torch.no_grad()
    def forwards_only():
        # the model's own share: the same prefill and decode forwards as ours (same cache, mask and
        # positions), with no sampling and no bookkeeping. Any sampler that goes through this forward
        # pays at least this, so HF's time over it bounds the ratio a CPU sampler can reach.
        cache, kw = kvcache.KVCache(cfg.num_hidden_layers, plen + new, static=False), kvcache._cache_kwarg(model)
        ids = torch.tensor(prompts, device=device)
        model(input_ids=ids, position_ids=torch.arange(plen, device=device).expand(batch, plen), use_cache=True,
              logits_to_keep=1, **{kw: cache})
        mask4, tok = torch.zeros((batch, 1, 1, plen + new), device=device), ids[:, -1:]
        for s in range(new - 1):
            kvcache._decode_step(model, cache, tok, mask4[..., : plen + s + 1], torch.full_like(tok, plen + s), kw)

    runs = [("ours", ours), ("HF generate", hf)] + ([("forwards only", forwards_only)] if device.type == "cpu" else [])
    for _, fn in runs:
        fn()  # warm-up (and compilation on the GPU)
    # interleaved repeats, best of each: the machine's speed drifts, and each gets the same chances
    best = {name: float("inf") for name, _ in runs}
    for _ in range(args.repeat):
        for name, fn in runs:
            best[name] = min(best[name], _bench_once(fn, device))
    t_ours, t_hf = best["ours"], best["HF generate"]
    toks = batch * new
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"device: {name} ({torch.get_num_threads()} threads); "
          f"model: {what}; batch {batch}, prompt {plen}, new tokens {new}, EOS ignored")
    print(f"ours: {toks / t_ours:,.0f} tokens/s ({t_ours:.2f}s)")
    print(f"HF generate: {toks / t_hf:,.0f} tokens/s ({t_hf:.2f}s)")
    print(f"ratio ours/HF: {t_hf / t_ours:.2f}x")
    if "forwards only" in best:
        t_fwd = best["forwards only"]
        print(f"the model's forwards alone: {toks / t_fwd:,.0f} tokens/s ({t_fwd:.2f}s); ceiling for any sampler "
              f"through this forward: {t_hf / t_fwd:.2f}x HF; ours is {t_fwd / t_ours:.0%} of it")
    if device.type == "cuda":
        # roofline: every decode step reads all weights and, on average, half the final KV cache
        wbytes = sum(p.numel() * p.element_size() for p in model.parameters())
        head_dim = cfg.hidden_size // cfg.num_attention_heads
        kv_per_tok = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * 2  # K and V, bf16
        bytes_per_step = wbytes + batch * kv_per_tok * (plen + new / 2)
        x = torch.empty(2**28, dtype=torch.uint8, device=device)
        y = torch.empty_like(x)
        y.copy_(x)
        t_copy = min(_bench_once(lambda: y.copy_(x), device) for _ in range(5))
        bw = 2 * x.numel() / t_copy
        step_s = t_ours / new
        print(f"measured copy bandwidth {bw / 1e9:,.0f} GB/s; bytes per decode step {bytes_per_step / 1e9:.2f} GB; "
              f"roofline fraction {bytes_per_step / step_s / bw:.0%}")
        print(f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


# ---------------------------------------------------------------------------------------------
# grpo: peak memory and time of the log-prob forward+backward, ours vs naive


CHUNK = {"cpu": 128, "cuda": 1024}  # rows of logits per chunk in the benchmark


def _one_bench(path, B, T, H, V, device, dtype):
    torch.manual_seed(0)
    W = (torch.randn(V, H, device=device, dtype=dtype) * 0.02).requires_grad_(True)
    h = torch.randn(B, T, H, device=device, dtype=dtype, requires_grad=True)
    tgt = torch.randint(0, V, (B, T), device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t = time.perf_counter()
    if path == "naive":
        lp = torch.log_softmax((h @ W.T).float(), -1).gather(-1, tgt[..., None])[..., 0]
    else:  # "ours": the chunked PyTorch path; "fused": the same chunks through the Triton kernel
        lp = grpo.chunked_logprobs(h.reshape(-1, H), W, tgt.reshape(-1), chunk_size=CHUNK[device.type],
                              fused=path == "fused").view(B, T)
    lp.sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return time.perf_counter() - t, peak


def bench_grpo(args):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    V = 151936
    if device.type == "cuda":
        H, dtype, shapes = 1536, torch.bfloat16, [(8, 1024), (8, 2048), (8, 4096), (8, 8192)]
    else:
        H, dtype, shapes = 256, torch.float32, [(1, 256), (1, 512), (1, 1024), (2, 1024)]
    # the Triton kernel runs on CUDA only (on the CPU its interpreter is for tests, not for timing)
    paths = ("naive", "ours") + (("fused",) if device.type == "cuda" and grpo.triton is not None else ())
    print(f"device {device}; vocab {V}; hidden {H}; dtype {dtype}; log-prob forward+backward")
    print(f"{'B x T':>10} {'naive peak':>12} {'ours peak':>12} {'ratio':>7} {'naive s':>8} {'ours s':>8}"
          + (f" {'fused peak':>12} {'fused s':>8}" if "fused" in paths else ""))
    if device.type == "cuda":  # warm-up: cuBLAS handles and the Triton kernels' compilation
        for path in paths:
            _one_bench(path, 1, 64, H, V, device, dtype)
    for B, T in shapes:
        res = {}
        for path in paths:
            if device.type == "cuda":
                try:
                    res[path] = _one_bench(path, B, T, H, V, device, dtype)
                except torch.OutOfMemoryError:
                    res[path] = (float("nan"), float("inf"))
                torch.cuda.empty_cache()
            else:  # a fresh process per measurement: peak RSS is per process
                cmd = [sys.executable, os.path.abspath(__file__), "grpo-one", path, str(B), str(T), str(H)]
                out = subprocess.run(cmd,
                                     capture_output=True, text=True, check=True).stdout.split()
                base = float(out[2])
                res[path] = (float(out[0]), float(out[1]) - base)
        (tn, pn), (to, po) = res["naive"], res["ours"]
        line = f"{B:>4} x {T:<5} {pn / 2**20:>10.0f}MB {po / 2**20:>10.0f}MB {po / pn:>7.3f} {tn:>8.2f} {to:>8.2f}"
        if "fused" in res:
            tf, pf = res["fused"]
            line += f" {pf / 2**20:>10.0f}MB {tf:>8.2f}"
        print(line)


# ---------------------------------------------------------------------------------------------
# reward: grade calls per second on one core


def bench_reward(args):
    def load(name):
        with open(os.path.join(args.data_dir, name)) as f:
            return [json.loads(x) for x in f]

    cases = [(r["answer"], r["answer"].split("####")[-1].strip().replace(",", ""))
             for r in load("gsm8k/raw/test.jsonl")]
    cases += [(r["solution"], r["answer"]) for r in load("math500/raw/test.jsonl")]
    golds = [g for _, g in cases]
    random.Random(0).shuffle(golds)
    pairs = cases + [(resp, g) for (resp, _), g in zip(cases, golds)]  # half right, half wrong
    grader.warmup()
    t = time.perf_counter()
    right = sum(grader.grade(r, g) for r, g in pairs)
    dt = time.perf_counter() - t
    print(f"{len(pairs)} grade calls ({len(cases)} own answers, {len(cases)} shuffled) in {dt:.2f}s: "
          f"{len(pairs) / dt:,.0f} calls/s on one core; {right} true; sympy calls {grader.STATS['sympy_calls']}, "
          f"timeouts {grader.STATS['timeouts']}")


# ---------------------------------------------------------------------------------------------
# gpu: the check of issue #17, at R1-1.5B's real widths with random weights, each figure beside
# the memory plan's (memory.py) and the memory-bandwidth floor


HBM = {"H100": 3.35e12, "H200": 4.8e12}  # bytes/s: the datasheets' HBM bandwidth (SXM)
R1 = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
TINY = dict(num_hidden_layers=2, hidden_size=192, intermediate_size=256, num_attention_heads=6, num_key_value_heads=1,
            head_dim=32, vocab_size=4096)  # R1's 6:1 query:KV head ratio at a CPU size


def _mem_reset(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _mem_peak(device):
    return torch.cuda.max_memory_allocated() if device.type == "cuda" else float("nan")


def _line(what, seconds, peak, plan, extra=""):
    return (f"{what:<34} {seconds:>8.2f}s  peak {peak / 2**30:>7.2f} GiB  plan {plan / 2**30:>7.2f} GiB  "
            f"ratio {peak / plan:>5.2f}  {extra}")


def bench_gpu(args):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tiny = args.tiny or device.type == "cpu"
    if device.type == "cuda" and not args.no_tests:  # the CUDA variants of the sampler's tests first
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                            "tests/test_sample.py", "tests/test_memory.py"],
                           cwd=os.path.dirname(os.path.abspath(__file__)), timeout=300)
        print(f"CUDA tests: exit {r.returncode}")
    tok = toy.make_tokenizer()
    dims = dict(memory.ARCH[R1], **(TINY if tiny else {}))
    cfg = AutoConfig.for_model(**dims)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).to(device).eval()
    n_param, n_emb = memory.param_counts(cfg)
    weights = 2 * n_param
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    bw = next((v for k, v in HBM.items() if k in name), float("nan"))
    print(f"device {name}; R1-1.5B widths{' (tiny)' if tiny else ''}, random weights, bf16; "
          f"{n_param / 1e9:.3f}B parameters")

    # 1. one rollout chunk: compiled, eager (the same static shapes) and HF generate
    rows, plen, new = (8, 16, 16) if tiny else (64, 896, 512)
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(10, cfg.vocab_size, (plen,), generator=g).tolist() for _ in range(rows)]
    never = [cfg.vocab_size + 7]
    slots = kvcache.slots_for(plen, new)
    # the floor: each step reads every weight but the embedding, and every slot of the static cache
    step_bytes = 2 * (n_param - n_emb) + rows * slots * kvcache.kv_bytes_per_token(cfg)
    plan_roll = weights + rows * kvcache.row_bytes(cfg, slots)
    ids = torch.tensor(prompts, device=device)
    runs = {"rollout, compiled": lambda: sample.generate(model, prompts, 1, new, eos_token_ids=never, pad_token_id=0,
                                                          seed=0, compile=device.type == "cuda", static=True),
            "rollout, eager (static)": lambda: sample.generate(model, prompts, 1, new, eos_token_ids=never,
                                                               pad_token_id=0, seed=0, compile=False, static=True),
            "rollout, HF generate": lambda: model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                                           max_new_tokens=new, do_sample=True, top_k=0,
                                                           pad_token_id=0, eos_token_id=never)}
    for what, fn in runs.items():
        fn()  # warm-up: compiles the step
        _mem_reset(device)
        t = _bench_once(fn, device)
        floor = new * step_bytes / bw
        print(_line(what, t, _mem_peak(device), plan_roll,
                    f"{rows * new / t:,.0f} tokens/s; floor {floor:.2f}s ({step_bytes / 1e9:.2f} GB/step): "
                    f"{floor / t:.0%} of it"))

    # 2. one training micro-batch: 4 x 5.8k tokens, gradient checkpointing
    mb, T, comp = (2, 64, 48) if tiny else (4, 5800, 4904)
    model.gradient_checkpointing_enable()
    model.train()
    x = torch.randint(10, cfg.vocab_size, (mb, T), device=device)
    att = torch.ones_like(x)
    att[1:, :7] = 0  # left padding, as in training
    cmask = torch.zeros_like(x)
    cmask[:, T - comp:] = 1
    fn = lambda: grpo.token_logprobs(model, x, att, cmask).sum().backward()  # noqa: E731
    fn()
    _mem_reset(device)
    t = _bench_once(fn, device)
    plan_mb = weights + 2 * n_param + memory.activation_bytes(cfg, mb, T, comp, True)
    print(_line(f"train micro-batch {mb} x {T}", t, _mem_peak(device), plan_mb,
                f"{mb * T / t:,.0f} tokens/s forward+backward"))
    model.zero_grad(set_to_none=True)

    # 3. one BCR step of the preset at its budget, 2 prompts (toy problems: random weights never answer)
    flags = ["--preset", "r1-1.5b", "--prompts", "2", "--device", device.type, "--out", args.out]
    if "--group-by" in bcr.build_parser()._option_string_actions:
        flags += ["--group-by", "random"]  # toy problems have no difficulty groups
    if tiny:
        flags += ["--budget", "32", "--micro-batch", "4"]
    bargs = bcr.parse_args(flags)
    bargs.thinking = False
    opt = grpo.MasterAdamW(model.parameters(), lr=bargs.lr, betas=(0.9, 0.99))
    problems = toy.make_problems(50, "train", 0)
    p = memory.plan(cfg, bargs.budget, bargs.group, bargs.prompts, bargs.micro_batch, max(bargs.n), bargs.n,
                    eval_problems=1)
    _mem_reset(device)
    t0 = time.perf_counter()
    rec = bcr.train_step(model, None, tok, opt, problems, random.Random(0), 0, bargs)
    _sync(device)
    plan_step = max(v for k, v in p["phases"].items() if k != "evaluation")
    print(_line(f"BCR step, 2 prompts x {bargs.group}, budget {bargs.budget}", time.perf_counter() - t0,
                _mem_peak(device), plan_step, f"rollout {rec['rollout_tokens_per_s']:,.0f} tokens/s"))
    print(f"compiled shapes: {sorted(kvcache.compiled_shapes(model))}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "grpo-one":  # one measurement of bench_grpo, in its own process
        _, _, path, B, T, H = sys.argv
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        # allocate the inputs first so that "base" holds everything but the log-prob computation
        dt, peak = _one_bench(path, int(B), int(T), int(H), 151936, torch.device("cpu"), torch.float32)
        print(dt, peak, base + (151936 * int(H) * 4 * 2) + int(B) * int(T) * int(H) * 4 * 2)
        sys.exit(0)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["sample", "grpo", "reward", "gpu"])
    ap.add_argument("--tiny", action="store_true", help="gpu: tiny widths (what the CPU runs)")
    ap.add_argument("--no-tests", action="store_true", help="gpu: skip the CUDA tests")
    ap.add_argument("--out", default="out/bench-gpu", help="gpu: run directory of the BCR step")
    ap.add_argument("--batch", type=int, default=0, help="sample: rows")
    ap.add_argument("--prompt-len", type=int, default=0, help="sample: prompt tokens")
    ap.add_argument("--new-tokens", type=int, default=0, help="sample: new tokens per row")
    ap.add_argument("--repeat", type=int, default=3, help="sample: interleaved repeats, best of each")
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shared",
                                                       "data"), help="reward: where gsm8k/raw and math500/raw are")
    args = ap.parse_args()
    {"sample": bench_sample, "grpo": bench_grpo, "reward": bench_reward, "gpu": bench_gpu}[args.what](args)
