"""bcr.py and data.py: configuration, data errors, a few real training steps, resume exactness, hub loading."""
import json
import os

import pytest
import torch
from conftest import eos_likely

import bcr
import data
import toy


@pytest.fixture(scope="module")
def tok():
    return toy.make_tokenizer()


def test_table_names_the_trained_model_and_its_token_change():
    def row(acc, tok):
        return {"accuracy": acc, "tokens_per_problem": tok}
    res = {"base": {"1": row(0.5, 80.0), "3": row(0.2, 50.0)}, "bcr": {"1": row(0.25, 40.0), "3": row(0.3, 55.0)}}
    out = []
    bcr.print_table(res, [1, 3], bcr.run_label(bcr.parse_args(["--length-penalty", "0.5"])), log=out.append)
    lines = out[0].splitlines()
    assert "lenpen acc" in lines[0] and "BCR" not in lines[0]
    assert lines[2].split()[-1] == "-50.0%" and lines[3].split()[-1] == "+10.0%"  # 80 -> 40, 50 -> 55
    assert len(lines) == 4  # no free lunch row of its own
    res["lunch"] = {"budget": 150, "base": row(0.75, 90.0), "bcr": row(0.8, 45.0)}
    out = []
    bcr.print_table(res, [1, 3], log=out.append)
    lines = out[0].splitlines()
    assert lines[4] == "N=1 with room to finish (budget 150):" and lines[5].split()[-1] == "-50.0%"  # 90 -> 45
    assert lines[5].split()[2:4] == ["0.750", "90.0"] and lines[5].split()[5:7] == ["0.800", "45.0"]
    flags = ([], ["--n", "1"], ["--reward", "truncation", "--target-len", "9"])
    assert [bcr.run_label(bcr.parse_args(a)) for a in flags] \
        == ["BCR", "GRPO", "trunc"]


def test_bad_data_gets_a_clear_error(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"question": "1+1", "answer": "2"}\n{"question": "2+2", "answer": \n')
    with pytest.raises(ValueError, match=r"d.jsonl:2: not valid JSON"):
        data.read_problems(str(p))
    p.write_text('{"question": "1+1", "answer": "2"}\n{"question": "2+2"}\n')
    with pytest.raises(ValueError, match=r"d.jsonl:2: missing field 'answer'"):
        data.read_problems(str(p))
    p.write_text('{"question": "1+1", "answer": 2}\n\n{"id": "x", "question": "2+2", "answer": "4"}\n')
    rows = data.read_problems(str(p))
    assert rows[0]["answer"] == "2" and rows[1]["id"] == "x"
    with pytest.raises(ValueError, match="unknown data"):
        data.load_problems("no-such-benchmark")
    with pytest.raises(SystemExit):
        bcr.parse_args(["--preset", "nope"])


def test_fused_logprobs_flag_needs_triton(monkeypatch, capsys):
    monkeypatch.setattr(bcr.grpo, "triton", None)
    with pytest.raises(SystemExit):
        bcr.parse_args(["--fused-logprobs"])
    assert "--fused-logprobs needs triton: pip install triton" in capsys.readouterr().err


SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.mark.skipif(not os.path.exists(os.path.join(SHARED, "gsm8k_test.jsonl")), reason="no ../shared/data")
def test_named_benchmarks_load():
    for name in ("gsm8k", "math500", "aime25", "minerva"):
        rows = data.load_problems(name, SHARED)
        assert rows and all(r["question"] and r["answer"] for r in rows)


def _args(out, *extra):
    return bcr.parse_args(["--out", str(out), "--n", "2", "--budget", "24", "--group", "8", "--prompts", "6",
                           "--micro-batch", "48", "--device", "cpu", "--save-every", "3", "--no-eval", *extra])


PROBLEMS = toy.make_problems(2000, "train", 0)
quiet = dict(log=lambda *a: None)


def test_n_too_large_for_the_context(tmp_path, tok):
    # a budget as long as the whole context leaves no room for any prompt
    args = _args(tmp_path, "--steps", "1", "--budget", str(toy.make_model(tok).config.max_position_embeddings))
    with pytest.raises(ValueError, match="exceeds the model's context"):
        bcr.train(args, toy.make_model(tok), tok, PROBLEMS, **quiet)
    # the longest prompt counts, not the first: one long question among short ones
    long = [{"id": "x", "question": "9" * 900, "answer": "1"}]
    args = _args(tmp_path, "--steps", "1", "--budget", "200")
    with pytest.raises(ValueError, match="the longest prompt of N=2 problems"):
        bcr.train(args, toy.make_model(tok), tok, PROBLEMS[:50] + long, **quiet)


def test_a_few_bcr_steps_move_the_reward(tmp_path, tok):
    """On a trivially learnable setting (the length penalty on a random model: finish early), a few
    real GRPO steps raise the reward and shorten the rollouts; the log and checkpoint are written."""
    torch.manual_seed(0)
    args = _args(tmp_path, "--steps", "12", "--lr", "3e-3", "--length-penalty", "1.0")
    bcr.train(args, eos_likely(toy.make_model(tok), tok), tok, PROBLEMS, **quiet)
    log = [json.loads(x) for x in open(tmp_path / "log.jsonl")]
    assert len(log) == 12

    def mean(rs, k):
        return sum(r[k] for r in rs) / len(rs)
    first, last = log[:1], log[-3:]  # step 0's rollouts come from the untrained model
    assert mean(last, "reward") > mean(first, "reward") + 0.05
    assert mean(last, "tokens_per_problem") < mean(first, "tokens_per_problem")
    for k in ("reward", "accuracy", "tokens_per_problem", "truncation_rate", "zero_var_groups", "clip_frac",
              "kl_ref", "grad_norm", "step_seconds", "rollout_tokens_per_s"):
        assert k in log[0]
    assert os.path.exists(tmp_path / "ckpt" / "train_state.pt")


TIMINGS = ("step_seconds", "rollout_tokens_per_s")


def _records(out):
    """The log records of a run, timings aside."""
    return [{k: v for k, v in json.loads(x).items() if k not in TIMINGS} for x in open(out / "log.jsonl")]


def _run_in_two(out, tok, *extra):
    """--steps 3, then --resume --steps 5 from the checkpoint: (final weights, log records)."""
    bcr.train(_args(out, "--steps", "3", *extra), eos_likely(toy.make_model(tok), tok), tok, PROBLEMS, **quiet)
    model, tok2, state = data.load_checkpoint(str(out))
    bcr.train(_args(out, "--steps", "5", "--resume", *extra), model, tok2, PROBLEMS, state=state, **quiet)
    return model.state_dict(), _records(out)


# lr slow enough that every step still has groups with a signal (at 3e-5 all rollouts end at once after a step)
RESUME_FLAGS = ("--lr", "1e-6", "--length-penalty", "1.0", "--save-every", "10")


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, tok):
    out = tmp_path_factory.mktemp("straight")
    model = eos_likely(toy.make_model(tok), tok)
    bcr.train(_args(out, "--steps", "5", *RESUME_FLAGS), model, tok, PROBLEMS, **quiet)
    return model.state_dict(), _records(out)


def test_resume_is_exact(tmp_path, tok, straight_run):
    """--steps 3 then --resume --steps 5 = one straight --steps 5 run: the same weights bit for bit
    and the same log records (timings aside)."""
    weights, log = _run_in_two(tmp_path, tok, *RESUME_FLAGS)
    assert [r["step"] for r in log] == [0, 1, 2, 3, 4]
    assert log == straight_run[1]
    assert all(torch.equal(weights[k], straight_run[0][k]) for k in weights)
    assert any(r["grad_norm"] > 0 for r in log)  # the weights did move


@pytest.mark.parametrize("skip", ["optimizer state", "RNG state"])
def test_resume_without_a_state_is_not_exact(tmp_path, tok, straight_run, monkeypatch, skip):
    """The exactness test above can fail: it does when resume forgets the optimizer or the RNG state."""
    if skip == "optimizer state":
        monkeypatch.setattr(bcr.grpo.MasterAdamW, "load_state_dict", lambda self, sd: None)
    else:
        monkeypatch.setattr(bcr, "restore_rng", lambda state, rng: None)
    weights, log = _run_in_two(tmp_path, tok, *RESUME_FLAGS)
    assert not all(torch.equal(weights[k], straight_run[0][k]) for k in weights)


def test_hub_datasets_load_through_hf_hub_download(tmp_path, monkeypatch):
    # offline stand-in for the download only: files laid out as on the hub (DeepScaleR: one JSON
    # array; MATH-500: JSONL), with the hub's field names, read by the real loading code
    (tmp_path / "deepscaler.json").write_text(json.dumps(
        [{"problem": "What is $1+1$?", "solution": "...", "answer": "2"},
         {"problem": "What is $2^3$?", "solution": "...", "answer": "8"}]))
    (tmp_path / "test.jsonl").write_text(json.dumps(
        {"problem": "Compute $\\sqrt{16}$.", "solution": "...", "answer": "4", "unique_id": "test/x/1.json"}) + "\n")
    calls = []

    def fake_download(repo_id, filename, repo_type=None):
        calls.append((repo_id, filename, repo_type))
        return str(tmp_path / filename)

    monkeypatch.setattr(data.huggingface_hub, "hf_hub_download", fake_download)
    ds = data.load_problems("deepscaler-hub")
    assert [(p["question"], p["answer"]) for p in ds] == [("What is $1+1$?", "2"), ("What is $2^3$?", "8")]
    m = data.load_problems("math500-hub")
    assert m[0]["question"] == "Compute $\\sqrt{16}$." and m[0]["answer"] == "4"
    assert calls == [("agentica-org/DeepScaleR-Preview-Dataset", "deepscaler.json", "dataset"),
                     ("HuggingFaceH4/MATH-500", "test.jsonl", "dataset")]


def test_a_gguf_model_trains_and_its_checkpoint_reloads(smollm2, tmp_path):
    # a .gguf path goes through bcr's loader as a dense model: it trains, and its checkpoint is a
    # plain save_pretrained directory (a GGUF-quantized model would refuse to be saved)
    from conftest import smollm2_path

    jsonl = tmp_path / "d.jsonl"
    rows = [{"question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(3)]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = bcr.parse_args(["--model", smollm2_path(), "--data", str(jsonl), "--n", "2", "--budget", "6", "--group",
                           "2", "--prompts", "1", "--steps", "1", "--micro-batch", "2", "--no-eval", "--device", "cpu",
                           "--out", str(tmp_path / "run")])
    model, tok = data.load_model(args.model)
    assert not getattr(model, "is_quantized", False)
    model = bcr.train(args, model, tok, data.load_problems(args.data))
    back, tok2, state = data.load_checkpoint(args.out)
    assert state["step"] == 1 and tok2.eos_token == tok.eos_token
    x = torch.tensor([tok("What is 2 + 2?")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(model.eval()(x).logits, back.eval()(x).logits, atol=1e-5)


@pytest.mark.parametrize("argv,msg", [
    (["--budget", "-5"], "--budget -5: must be >= 1 token"),
    (["--budget", "0"], "--budget 0: must be >= 1 token"),
    (["--temperature", "0"], "--temperature 0.0: must be > 0 for training"),
    (["--data", "/nonexistent.jsonl"], "--data '/nonexistent.jsonl': no such file"),
    (["--group", "1"], "--group 1: must be >= 2"),
    (["--mini-batches", "0"], "--mini-batches 0: must be between 1 and the 128 rollouts"),
    (["--preset", "nope"], "--preset 'nope': unknown preset"),
    (["--resume"], "--resume: no checkpoint in"),
])
def test_bad_flags_are_clear_errors_before_any_work(tmp_path, capsys, argv, msg):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        bcr.main(argv + ["--out", str(out)])
    assert e.value.code == 2 and msg in capsys.readouterr().err
    assert not out.exists()  # nothing ran: not even the run directory


def test_presets_list_only_known_keys_and_help_shows_the_toy_defaults(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        bcr.parse_args(["--help"])
    assert "--budget BUDGET       max new tokens for the whole response (default: 64)" in capsys.readouterr().out
    toy_args = bcr.parse_args([])  # the toy trains on N = 1..4 in turn; its free lunch has room to finish
    assert toy_args.n == [1, 2, 3, 4] and toy_args.budget == toy.BUDGET and toy_args.lunch_budget == toy.LUNCH_BUDGET
    args = bcr.parse_args(["--preset", "r1-1.5b", "--budget", "100"])
    assert args.budget == 100 and args.lr == 1e-6 and args.dtype == "bfloat16" and args.n == [3]
    assert args.lunch_budget is None  # the paper's free lunch: N=1 under the evaluation budget
    monkeypatch.setitem(bcr.PRESETS, "bad", {"budjet": 5})
    with pytest.raises(SystemExit):
        bcr.parse_args(["--preset", "bad"])
    assert "preset 'bad' sets unknown keys ['budjet']" in capsys.readouterr().err


def test_every_optimizer_step_of_a_batch_is_logged(tmp_path, tok, monkeypatch):
    """--mini-batches 2: the log record holds both optimizer steps' statistics, not the last one's."""
    seen = []
    real = bcr.grpo.grpo_step

    def spy(*a, **k):
        seen.append(real(*a, **k))
        return seen[-1]
    monkeypatch.setattr(bcr.grpo, "grpo_step", spy)
    args = _args(tmp_path, "--steps", "1", "--mini-batches", "2", "--length-penalty", "1.0")
    bcr.train(args, eos_likely(toy.make_model(tok), tok), tok, PROBLEMS, **quiet)
    rec = json.loads(open(tmp_path / "log.jsonl").read())
    assert rec["optimizer_steps"] == 2 and len(seen) == 2
    assert rec["grad_norm"] == pytest.approx((seen[0]["grad_norm"] + seen[1]["grad_norm"]) / 2)
    assert rec["ratio_max"] == max(s["ratio_max"] for s in seen)


def test_resume_keeps_the_base_model_as_the_kl_reference(tmp_path, tok, monkeypatch):
    base = tmp_path / "base"
    model = eos_likely(toy.make_model(tok), tok)
    model.save_pretrained(base)
    tok.save_pretrained(base)
    flags = ["--model", str(base), "--no-eval", "--beta", "0.1", "--n", "2", "--budget", "24", "--group", "4",
             "--prompts", "2", "--micro-batch", "8", "--lr", "1e-2", "--length-penalty", "1.0",
             "--out", str(tmp_path / "run")]
    bcr.main(flags + ["--steps", "3"])
    trained, _, _ = data.load_checkpoint(str(tmp_path / "run"))
    sd = model.state_dict()
    assert not all(torch.equal(trained.state_dict()[k], sd[k]) for k in sd)  # the policy has left the base
    refs, real_train = [], bcr.train
    monkeypatch.setattr(bcr, "train", lambda *a, **k: refs.append(a[4]) or real_train(*a, **k))
    bcr.main(flags + ["--steps", "4", "--resume"])
    assert all(torch.equal(refs[0].state_dict()[k], sd[k]) for k in sd)  # and the reference is still the base


@pytest.mark.parametrize("content,msg", [
    ('{"question": "1+1", "answer": "2"}\n{"question": "2+2", "answer": \n', "d.jsonl:2: not valid JSON"),
    ('{"question": "1+1", "answer": "2"}\n{"question": "2+2"}\n', "d.jsonl:2: missing field 'answer'"),
    ('{"question": "1+1", "answer": "2"}\n', "--n 4: only 1 training problems"),
])
def test_bad_data_is_a_clear_error_before_the_warm_start(tmp_path, capsys, monkeypatch, content, msg):
    (tmp_path / "d.jsonl").write_text(content)
    monkeypatch.setattr(bcr, "load_model", lambda *a, **k: pytest.fail("a model was loaded before the data check"))
    with pytest.raises(SystemExit) as e:
        bcr.main(["--data", str(tmp_path / "d.jsonl"), "--out", str(tmp_path / "run")])
    assert e.value.code == 2 and msg in capsys.readouterr().err


def test_mixed_n_prompts_take_the_ns_in_turn_and_log_tokens_per_n(tmp_path, tok):
    """--n 1 2: prompt j holds args.n[j % 2] problems; each rollout is graded against its own N and
    the log counts tokens per problem over all the problems of the step, and per N."""
    args = _args(tmp_path, "--steps", "1", "--n", "1", "2", "--prompts", "4", "--group", "2")
    calls = []
    real = bcr.rw.final_answers

    def spy(text, n, *a, **k):
        calls.append(n)
        return real(text, n, *a, **k)
    bcr.rw.final_answers = spy
    try:
        bcr.train(args, eos_likely(toy.make_model(tok), tok), tok, PROBLEMS, **quiet)
    finally:
        bcr.rw.final_answers = real
    assert calls == [1, 1, 2, 2, 1, 1, 2, 2]  # 4 prompts x 2 rollouts, N = 1, 2, 1, 2
    rec = json.loads(open(tmp_path / "log.jsonl").readline())
    assert {"tokens_per_problem_n1", "tokens_per_problem_n2"} <= set(rec)
    # the overall figure is the problems-weighted mean of the two: 4 rows of N=1, 4 rows of N=2
    assert rec["tokens_per_problem"] == pytest.approx((4 * rec["tokens_per_problem_n1"]
                                                       + 8 * rec["tokens_per_problem_n2"]) / 12)
    with pytest.raises(SystemExit):
        bcr.parse_args(["--n", "2", "3", "--group-by", "difficulty"])
