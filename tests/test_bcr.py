"""bcr.py: the prompt builder, the N-problem reward, data errors, and a few real training steps."""
import json
import os

import pytest
import torch

import bcr
import toy


@pytest.fixture(scope="module")
def tok():
    return toy.make_tokenizer()


def test_prompt_builder_bcr_format(tok):
    ids = bcr.build_prompt(tok, ["1+1", "what is 7*6?", "2+2"])
    text = tok.decode(ids)
    assert text.startswith("<|user|>") and text.endswith("<|assistant|>")
    assert "Solve these 3 problems in order" in text and "Answer k: \\boxed{answer}" in text
    i1, i2, i3 = (text.index(f"### Problem {k}\n") for k in (1, 2, 3))
    assert i1 < i2 < i3
    assert text[i2:].startswith("### Problem 2\nwhat is 7*6?")


def test_prompt_builder_standard_and_errors(tok):
    text = tok.decode(bcr.build_prompt(tok, ["1+1"], style="standard"))
    assert "\\boxed{}" in text and "### Problem" not in text
    with pytest.raises(ValueError, match="one problem"):
        bcr.build_prompt(tok, ["1", "2"], style="standard")
    with pytest.raises(ValueError, match="unknown prompt style"):
        bcr.build_prompt(tok, ["1"], style="chat")
    with pytest.raises(ValueError, match="no questions"):
        bcr.build_prompt(tok, [])


def test_prompt_uses_the_real_chat_template_of_a_hub_tokenizer(smollm2):
    _, tok = smollm2
    text = tok.decode(bcr.build_prompt(tok, ["1+1", "2+2"]))
    assert "<|im_start|>user" in text and text.rstrip().endswith("<|im_start|>assistant")
    assert "### Problem 2\n2+2" in text


RESP = "### Problem 1\n1+1=2\nAnswer 1: \\boxed{2}\n### Problem 2\nAnswer 2: \\boxed{5}\n### Problem 3\n3+3=6\nAnswer 3: \\boxed{6}"


def test_reward_of_n_problem_responses():
    golds = ["2", "4", "6"]
    assert bcr.problem_correctness(RESP, golds, finished=True) == [True, False, True]
    # truncated by the budget inside problem 3's answer line: problem 3 scores 0
    cut = RESP[: RESP.rindex("}")]  # "...Answer 3: \boxed{6"
    assert bcr.problem_correctness(cut, golds, finished=False) == [True, False, False]
    # cut right after the closing brace: the line is not finished, so still no answer
    assert bcr.problem_correctness(RESP, golds, finished=False) == [True, False, False]
    # cut after the newline of answer 2: answers 1 and 2 count
    assert bcr.problem_correctness(RESP[: RESP.index("### Problem 3")], golds, finished=False) == [True, False, False]

    class A:
        reward, length_penalty, budget, target_len = "bcr", 0.0, 100, 0

    assert bcr.rollout_reward([True, False, True], 50, A) == pytest.approx(2 / 3)
    A.length_penalty = 0.5  # r - lambda * len / L_max
    assert bcr.rollout_reward([True, False, True], 50, A) == pytest.approx(2 / 3 - 0.25)
    A.reward, A.length_penalty, A.target_len = "truncation", 0.0, 40  # 1(correct) * 1(len <= L)
    assert bcr.rollout_reward([True], 40, A) == 1.0 and bcr.rollout_reward([True], 41, A) == 0.0
    assert bcr.rollout_reward([False], 10, A) == 0.0


def test_last_answer_end_waits_for_a_complete_answer():
    assert bcr.last_answer_end("Answer 1: \\boxed{7", 1) is None  # the box is still open
    assert bcr.last_answer_end("Answer 1: \\boxed{74}", 1) == len("Answer 1: \\boxed{74}")
    assert bcr.last_answer_end("Answer 1: \\boxed 5", 1) is None  # "\\boxed 5" may become "\\boxed 52"
    assert bcr.last_answer_end("Answer 10: \\boxed{3}", 1) is None  # not problem 1's line
    assert bcr.last_answer_end("Answer 2: 42", 2) is None and bcr.last_answer_end("Answer 2: 42\nx", 2) == 12
    assert bcr.last_answer_end(RESP, 2) == RESP.index("\n### Problem 3") and bcr.last_answer_end(RESP, 4) is None


def test_end_at_last_answer_cuts_what_follows_and_keeps_an_eos(tok):
    from sample import Rollout

    texts = [RESP,  # answer 3 then EOS: unchanged
             RESP + "\n### Problem 4\nx4 = 12 \nAnswer 4: \\boxed{1}",  # writes on past answer 3: cut there
             RESP[: RESP.rindex("}")]]  # hit the budget inside answer 3: unchanged, still unfinished
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    ids[0] = ids[0] + [tok.eos_token_id]
    width = max(map(len, ids))
    comp, lp = torch.full((3, width), tok.pad_token_id), torch.zeros(3, width)
    for i, x in enumerate(ids):
        comp[i, : len(x)], lp[i, : len(x)] = torch.tensor(x), -0.5
    roll = Rollout([[1]] * 3, comp, lp, torch.tensor([len(x) for x in ids]), torch.tensor([True, False, False]), 1,
                   tok.pad_token_id)
    bcr.end_at_last_answer(roll, tok, 3)
    assert roll.texts(tok) == [RESP, RESP, texts[2]]
    n_resp = len(ids[0]) - 1
    assert roll.lengths.tolist() == [n_resp + 1, n_resp, len(ids[2])]
    assert roll.tokens(0)[-1] == tok.eos_token_id and roll.finished.tolist() == [True, True, False]
    # nothing of the cut tokens is left for the trainer: pad ids and zero log-probs
    assert (roll.completion_ids[1, n_resp:] == tok.pad_token_id).all() and (roll.logprobs[1, n_resp:] == 0).all()
    assert roll.logprobs[1, :n_resp].sum().item() == pytest.approx(-0.5 * n_resp)


def test_table_names_the_trained_model_and_its_token_change():
    res = {"base": {"1": {"accuracy": 0.5, "tokens_per_problem": 80.0}, "3": {"accuracy": 0.2, "tokens_per_problem": 50.0}},
           "bcr": {"1": {"accuracy": 0.25, "tokens_per_problem": 40.0}, "3": {"accuracy": 0.3, "tokens_per_problem": 55.0}}}
    out = []
    bcr.print_table(res, [1, 3], bcr.run_label(bcr.parse_args(["--length-penalty", "0.5"])), log=out.append)
    lines = out[0].splitlines()
    assert "lenpen acc" in lines[0] and "BCR" not in lines[0]
    assert lines[2].split()[-1] == "-50.0%" and lines[3].split()[-1] == "+10.0%"  # 80 -> 40, 50 -> 55
    assert [bcr.run_label(bcr.parse_args(a)) for a in ([], ["--n", "1"], ["--reward", "truncation", "--target-len", "9"])] \
        == ["BCR", "GRPO", "trunc"]


def test_bad_data_gets_a_clear_error(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"question": "1+1", "answer": "2"}\n{"question": "2+2", "answer": \n')
    with pytest.raises(ValueError, match=r"d.jsonl:2: not valid JSON"):
        bcr.read_problems(str(p))
    p.write_text('{"question": "1+1", "answer": "2"}\n{"question": "2+2"}\n')
    with pytest.raises(ValueError, match=r"d.jsonl:2: missing field 'answer'"):
        bcr.read_problems(str(p))
    p.write_text('{"question": "1+1", "answer": 2}\n\n{"id": "x", "question": "2+2", "answer": "4"}\n')
    rows = bcr.read_problems(str(p))
    assert rows[0]["answer"] == "2" and rows[1]["id"] == "x"
    with pytest.raises(ValueError, match="unknown data"):
        bcr.load_problems("no-such-benchmark")
    with pytest.raises(SystemExit):
        bcr.parse_args(["--preset", "nope"])


def test_fused_logprobs_flag_needs_triton(monkeypatch, capsys):
    monkeypatch.setattr(bcr.grpo, "triton", None)
    with pytest.raises(SystemExit):
        bcr.parse_args(["--fused-logprobs"])
    assert "--fused-logprobs needs triton: pip install triton" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.exists(os.path.join(bcr.DEFAULT_DATA_DIR, "gsm8k_test.jsonl")), reason="no ../shared/data")
def test_named_benchmarks_load():
    for name in ("gsm8k", "math500", "aime25", "minerva"):
        rows = bcr.load_problems(name)
        assert rows and all(r["question"] and r["answer"] for r in rows)


def _args(tmp_path, *extra):
    return bcr.parse_args(["--out", str(tmp_path / "run"), "--n", "2", "--budget", "24", "--group", "8",
                           "--prompts", "6", "--micro-batch", "48", "--device", "cpu", "--save-every", "3",
                           "--no-eval", *extra])


def test_n_too_large_for_the_context(tmp_path, tok):
    args = _args(tmp_path, "--steps", "1", "--budget", "1000")
    model = toy.make_model(tok)
    with pytest.raises(ValueError, match="exceeds the model's context"):
        bcr.train(args, model, tok, log=lambda *a: None)


def test_a_few_bcr_steps_move_the_reward(tmp_path, tok):
    """On a trivially learnable setting (the length penalty on a random model: finish early), a few
    real GRPO steps raise the reward and shorten the rollouts; the log and checkpoint are written."""
    torch.manual_seed(0)
    args = _args(tmp_path, "--steps", "12", "--lr", "3e-3", "--length-penalty", "1.0")
    model = toy.make_model(tok)
    with torch.no_grad():  # start with EOS a little likely, so that the group sees a spread of lengths
        model.lm_head.weight[tok.eos_token_id] += 0.2 * model.lm_head.weight.mean(0)
        model.model.norm.weight.fill_(1.0)
    bcr.train(args, model, tok, log=lambda *a: None)
    log = [json.loads(x) for x in open(tmp_path / "run" / "log.jsonl")]
    assert len(log) == 12
    first, last = log[:3], log[-3:]
    mean = lambda rs, k: sum(r[k] for r in rs) / len(rs)
    assert mean(last, "reward") > mean(first, "reward") + 0.05
    assert mean(last, "tokens_per_problem") < mean(first, "tokens_per_problem")
    for k in ("reward", "accuracy", "tokens_per_problem", "truncation_rate", "zero_var_groups", "clip_frac",
              "kl_ref", "grad_norm", "step_seconds", "rollout_tokens_per_s"):
        assert k in log[0]
    assert os.path.exists(tmp_path / "run" / "ckpt" / "train_state.pt")


def test_resume_continues_the_run(tmp_path, tok):
    args = _args(tmp_path, "--steps", "3")
    bcr.train(args, toy.make_model(tok), tok, log=lambda *a: None)
    args = _args(tmp_path, "--steps", "5", "--resume")
    msgs = []
    bcr.train(args, toy.make_model(tok, seed=99), tok, log=msgs.append)
    assert any("resumed" in m and "step 3" in m for m in msgs)
    steps = [json.loads(x)["step"] for x in open(tmp_path / "run" / "log.jsonl")]
    assert steps == [0, 1, 2, 3, 4]
    state = torch.load(tmp_path / "run" / "ckpt" / "train_state.pt", weights_only=False)
    assert state["step"] == 5


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

    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    ds = bcr.load_problems("deepscaler-hub")
    assert [(p["question"], p["answer"]) for p in ds] == [("What is $1+1$?", "2"), ("What is $2^3$?", "8")]
    m = bcr.load_problems("math500-hub")
    assert m[0]["question"] == "Compute $\\sqrt{16}$." and m[0]["answer"] == "4"
    assert calls == [("agentica-org/DeepScaleR-Preview-Dataset", "deepscaler.json", "dataset"),
                     ("HuggingFaceH4/MATH-500", "test.jsonl", "dataset")]


def test_a_gguf_model_trains_and_its_checkpoint_reloads(smollm2, tmp_path):
    # a .gguf path goes through bcr's loader as a dense model: it trains, and its checkpoint is a
    # plain save_pretrained directory (a GGUF-quantized model would refuse to be saved)
    from conftest import smollm2_path

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n" for i in range(3)))
    args = bcr.parse_args(["--model", smollm2_path(), "--data", str(data), "--n", "2", "--budget", "6", "--group", "2",
                           "--prompts", "1", "--steps", "1", "--micro-batch", "2", "--no-eval", "--device", "cpu",
                           "--out", str(tmp_path / "run")])
    model, tok = bcr.load_model(args)
    assert not getattr(model, "is_quantized", False)
    model = bcr.train(args, model, tok)
    back, tok2, state = bcr.load_checkpoint(args.out, args)
    assert state["step"] == 1 and tok2.eos_token == tok.eos_token
    x = torch.tensor([tok("What is 2 + 2?")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(model.eval()(x).logits, back.eval()(x).logits, atol=1e-5)
