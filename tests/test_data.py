"""data.py's problems: the benchmarks and DeepMath-103K by name from the hub (offline from a folder
in the hub's layout, online through a stubbed download), normalised as shared/data's files; the
filter of answers a grader cannot check; groups of similar difficulty; eval.py --preset."""
import json
import os
import random

import pytest
import torch

import bcr
import data
import eval as ev
import toy

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
needs_shared = pytest.mark.skipif(not os.path.exists(os.path.join(SHARED, "math500.jsonl")), reason="no shared/data")

# a few rows of each hub dataset, in its own file layout and field names (HUB_DATASETS says where)
HUB_ROWS = {
    "math500": [
        {"problem": "Compute $\\dbinom{8}{4}$.", "solution": "$\\boxed{70}$.", "answer": "70", "subject": "Counting",
         "level": 2, "unique_id": "test/counting_and_probability/1.json"},
        {"problem": "Simplify $\\frac{6}{8}$.", "solution": "$\\boxed{\\frac34}$", "answer": "\\frac{3}{4}",
         "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/2.json"}],
    "aime25": [
        {"problem": "Find the sum of all integer bases $b>9$ for which $17_b$ divides $97_b.$", "answer": "70",
         "id": "0"},
        {"problem": "A problem whose answer is written with a leading zero.", "answer": "025", "id": "1"}],
    "minerva": [{"question": "Find the diameter of the image, in cm.", "answer": "1.6 "},
                {"question": "What is the wavelength, in nm?", "answer": "500"}],
    "olympiadbench": [{"question": "How many moves does Sergey need?", "answer": "$2$"},
                      {"question": "Find the ratio.", "answer": "$\\frac{1}{2}$"}],
}
WANT = {  # (question start, answer) after normalisation, as shared/data's files have them
    "math500": [("Compute", "70"), ("Simplify", "\\frac{3}{4}")],
    "aime25": [("Find the sum", "70"), ("A problem", "25")],
    "minerva": [("Find the diameter", "1.6"), ("What is", "500")],
    "olympiadbench": [("How many", "2"), ("Find the ratio", "\\frac{1}{2}")],
}


def write_hub_layout(root, name, rows):
    """<root>/<repo>/<file>, as `huggingface-cli download REPO --local-dir <root>/REPO` lays it out."""
    repo, files, _, _ = data.HUB_DATASETS[name]
    path = os.path.join(root, repo, files[0])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def no_download(*a, **k):
    raise AssertionError(f"unexpected download {a}")


def test_benchmarks_resolve_offline_from_the_hub_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(data.huggingface_hub, "hf_hub_download", no_download)
    for name, rows in HUB_ROWS.items():
        write_hub_layout(tmp_path, name, rows)
        got = data.load_problems(name, str(tmp_path))
        assert [(p["question"].split()[0], p["answer"]) for p in got] == [(q.split()[0], a) for q, a in WANT[name]]
        assert len({p["id"] for p in got}) == len(got)


def test_benchmarks_resolve_online_through_the_download(tmp_path, monkeypatch):
    calls = []

    def fake_download(repo_id, filename, repo_type=None):
        calls.append((repo_id, filename, repo_type))
        return os.path.join(tmp_path, "hub", repo_id, filename)

    for name, rows in HUB_ROWS.items():
        write_hub_layout(tmp_path / "hub", name, rows)
    monkeypatch.setattr(data.huggingface_hub, "hf_hub_download", fake_download)
    empty = tmp_path / "empty"  # neither the normalised file nor the hub layout: only the hub has it
    empty.mkdir()
    for name in HUB_ROWS:
        got = data.load_problems(name, str(empty))
        assert [p["answer"] for p in got] == [a for _, a in WANT[name]]
    assert calls == [("HuggingFaceH4/MATH-500", "test.jsonl", "dataset"), ("math-ai/aime25", "test.jsonl", "dataset"),
                     ("math-ai/minervamath", "test.jsonl", "dataset"),
                     ("math-ai/olympiadbench", "test.jsonl", "dataset")]


def test_offline_with_nothing_is_a_clear_error(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise OSError("no network")
    monkeypatch.setattr(data.huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(FileNotFoundError, match=r"aime25\.jsonl or .*math-ai/aime25/test\.jsonl .*no network"):
        data.load_problems("aime25", str(tmp_path))
    write_hub_layout(tmp_path, "minerva", [{"problem": "renamed field", "answer": "1"}])
    with pytest.raises(ValueError, match=r"test\.jsonl:1: not a math-ai/minervamath row: KeyError 'question'"):
        data.load_problems("minerva", str(tmp_path))


@needs_shared
def test_the_normalised_local_file_comes_first(monkeypatch):
    monkeypatch.setattr(data.huggingface_hub, "hf_hub_download", no_download)
    for name in ("gsm8k", "math500", "aime25", "amc23", "minerva", "olympiadbench"):
        assert len(data.load_problems(name, SHARED)) > 0


def _raw(path):
    return [json.loads(line) for line in open(os.path.join(SHARED, path)) if line.strip()]


@needs_shared
def test_hub_rows_normalise_as_the_shared_files(tmp_path, monkeypatch):
    """shared/data's raw/ files have the hub's fields for these sources: MATH-500's test.jsonl is the
    hub's file byte for byte; GSM8K's rows are the hub parquet's (question, answer); AMC23's and
    OlympiadBench's are Qwen2.5-Math's (question, float answer; final_answer lists); Light-R1's AIME25
    copy is math-ai/aime25's layout. Each, through HUB_DATASETS' row function, gives the shipped answers."""
    monkeypatch.setattr(data.huggingface_hub, "hf_hub_download", no_download)
    os.makedirs(tmp_path / "HuggingFaceH4" / "MATH-500")
    os.symlink(os.path.abspath(os.path.join(SHARED, "math500", "raw", "test.jsonl")),
               tmp_path / "HuggingFaceH4" / "MATH-500" / "test.jsonl")
    assert data.load_problems("math500", str(tmp_path)) == data.load_problems("math500", SHARED)
    for name, raw, shipped in (("gsm8k", "gsm8k/raw/test.jsonl", "gsm8k_test.jsonl"),
                               ("gsm8k_train", "gsm8k/raw/train.jsonl", "gsm8k_train.jsonl"),
                               ("amc23", "amc23/raw/test.jsonl", "amc23.jsonl"),
                               ("olympiadbench", "olympiadbench/raw/test.jsonl", "olympiadbench.jsonl"),
                               ("aime25", "aime25/raw/lightr1_aime25.jsonl", "aime25.jsonl")):
        row = data.HUB_DATASETS[name][2]
        got = [row(r, i) for i, r in enumerate(_raw(raw))]
        assert [p["answer"] for p in got] == [p["answer"] for p in _raw(shipped)], name


def _parquet(path, rows):
    pa = pytest.importorskip("pyarrow")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data.pq.write_table(pa.Table.from_pylist(rows), path)


DEEPMATH = [  # DeepMath-103K's fields (its parquet has three R1 solutions per row too)
    {"question": "Evaluate $\\int_0^1 x\\,dx$.", "final_answer": "\\dfrac{1}{2}", "difficulty": 4.5, "topic": "Calc",
     "r1_solution_1": "...", "r1_solution_2": "...", "r1_solution_3": "..."},
    {"question": "Is 7 prime?", "final_answer": "Yes", "difficulty": 2.0, "topic": "NT", "r1_solution_1": "...",
     "r1_solution_2": "...", "r1_solution_3": "..."},
    {"question": "Does the series converge?", "final_answer": "\\text{Converges}", "difficulty": 6.0, "topic": "Calc",
     "r1_solution_1": "...", "r1_solution_2": "...", "r1_solution_3": "..."},
    {"question": "Find the limit.", "final_answer": "e^{-1}", "difficulty": 7.0, "topic": "Calc",
     "r1_solution_1": "...", "r1_solution_2": "...", "r1_solution_3": "..."},
]


def test_deepmath_keeps_difficulty_and_drops_what_no_grader_checks(tmp_path, monkeypatch, capsys):
    """Without pyarrow: the parquet reader is stubbed with the rows of each shard; it must be asked for
    three columns only (the solutions are most of the 2 GB)."""
    asked = []

    def rows(path, columns=None):
        asked.append((os.path.basename(path), columns))
        k = int(os.path.basename(path).split("-")[1])
        return [(f"{path}:row {i}", DEEPMATH[k % 4]) for i in range(1, 2)]

    monkeypatch.setattr(data, "read_rows", rows)
    monkeypatch.setattr(data.huggingface_hub, "hf_hub_download", lambda repo, f, repo_type=None: f"/hub/{repo}/{f}")
    got = data.load_problems("deepmath", str(tmp_path))
    assert len(asked) == 10 and all(c == ["question", "final_answer", "difficulty"] for _, c in asked)
    assert asked[0][0] == "train-00000-of-00010.parquet" and asked[-1][0] == "train-00009-of-00010.parquet"
    assert [(p["answer"], p["difficulty"]) for p in got] == [("\\dfrac{1}{2}", 4.5), ("e^{-1}", 7.0)] * 2 + [
        ("\\dfrac{1}{2}", 4.5)]
    assert "deepmath: kept 5 of 10 rows; dropped, as answers the grader cannot check: words 2, yes/no 3" \
        in capsys.readouterr().out


def test_parquet_datasets_with_pyarrow(tmp_path, monkeypatch):
    monkeypatch.setattr(data.huggingface_hub, "hf_hub_download", no_download)
    for k in range(10):
        _parquet(str(tmp_path / "zwhe99" / "DeepMath-103K" / "data" / f"train-{k:05d}-of-00010.parquet"), DEEPMATH)
    got = data.load_problems("deepmath", str(tmp_path))
    assert len(got) == 20 and {p["answer"] for p in got} == {"\\dfrac{1}{2}", "e^{-1}"}
    _parquet(str(tmp_path / "openai" / "gsm8k" / "main" / "test-00000-of-00001.parquet"),
             [{"question": "How many?", "answer": "2 + 2 = 4\n#### 2,125"}])
    assert data.load_problems("gsm8k", str(tmp_path))[0]["answer"] == "2125"
    _parquet(str(tmp_path / "math-ai" / "amc23" / "test-00000-of-00001.parquet"),
             [{"id": 0, "question": "How far?", "answer": 27.0}])
    assert data.load_problems("amc23", str(tmp_path))[0]["answer"] == "27"


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "pq", None)
    p = tmp_path / "math-ai" / "amc23" / "test-00000-of-00001.parquet"
    p.parent.mkdir(parents=True)
    p.write_bytes(b"PAR1")
    with pytest.raises(ImportError, match="needs pyarrow"):
        data.load_problems("amc23", str(tmp_path))


def test_gradable():
    keep = ["42", "-3.5", "\\dfrac{1}{2}", "e^{-1}", "\\sin x + \\ln 2", "(1, 2]", "\\{1,2,3\\}", "2ab", "\\infty",
            "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\mathbb{R}", "No solution", "x^2+y^2", "\\log_2 3"]
    assert [a for a in keep if data.gradable(a) is not True] == []
    drop = {"Yes": "yes/no", "\\text{No}": "yes/no", "True": "yes/no", "false": "yes/no", "B": "choice",
            "\\text{(E)}": "choice", "\\text{Converges}": "words", "\\text{odd}": "words", "None": "words",
            "\\text{Sunday}": "words", "": "empty", "1" * 500: "too long"}
    assert {a: data.gradable(a) for a in drop} == drop


def _difficulty_file(path, count=300, seed=0):
    rng = random.Random(seed)
    levels = [round(rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9]) + rng.choice([0, 0.5]), 1) for _ in range(count)]
    with open(path, "w") as f:
        for i, d in enumerate(levels):
            f.write(json.dumps({"id": f"p{i}", "question": f"What is {i} + 1?", "answer": str(i + 1),
                                "difficulty": d}) + "\n")


def test_difficulty_groups_are_tighter_than_random_and_repeatable(tmp_path, capsys):
    path = str(tmp_path / "d.jsonl")
    _difficulty_file(path)
    kw = dict(group_by="difficulty", group_n=3, group_seed=0)
    a = data.load_problems(path, groups_path=str(tmp_path / "a.json"), **kw)
    out = capsys.readouterr().out
    print(out)  # the spreads, for the record (pytest -s)
    assert f"groups: {data.GROUPS} groups of 3 by difficulty" in out
    saved = json.load(open(tmp_path / "a.json"))
    assert saved["spread"] < 0.1 * saved["random_spread"] and saved["random_spread"] > 2
    assert data.spread(a.groups) == saved["spread"] and len(a.groups) == data.GROUPS == len(saved["groups"])
    assert all(len({p["id"] for p in g}) == 3 for g in a.groups)
    ids = [[p["id"] for p in g] for g in a.groups]
    b = data.load_problems(path, groups_path=str(tmp_path / "b.json"), **kw)  # same seed, same list
    assert [[p["id"] for p in g] for g in b.groups] == ids
    c = data.load_problems(path, groups_path=str(tmp_path / "c.json"), **{**kw, "group_seed": 1})
    assert [[p["id"] for p in g] for g in c.groups] != ids
    # a rerun reads the list back (another seed or a changed builder cannot change it)
    d = data.load_problems(path, groups_path=str(tmp_path / "a.json"), **{**kw, "group_seed": 5})
    assert [[p["id"] for p in g] for g in d.groups] == ids and "read from" in capsys.readouterr().out
    assert list(a) == data.load_problems(path)  # the problems themselves, with their difficulty


def test_difficulty_needs_a_difficulty(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"question": "1+1", "answer": "2", "difficulty": "Level 3"}\n{"question": "2+2", "answer": "4"}\n')
    assert data.read_problems(str(p))[0]["difficulty"] == 3.0
    with pytest.raises(ValueError, match="1 of 2 training problems have no 'difficulty'"):
        data.load_problems(str(p), group_by="difficulty", group_n=1, groups_path=str(tmp_path / "g.json"))
    p.write_text('{"question": "1+1", "answer": "2", "difficulty": "hard"}\n')
    with pytest.raises(ValueError, match=r"d.jsonl:1: difficulty 'hard' is not a number"):
        data.read_problems(str(p))


def test_train_step_draws_from_the_fixed_groups(tmp_path, monkeypatch):
    path = str(tmp_path / "d.jsonl")
    _difficulty_file(path, 30)
    args = bcr.parse_args(["--data", path, "--group-by", "difficulty", "--n", "3", "--prompts", "4",
                           "--out", str(tmp_path / "run")])
    problems = data.load_problems(path, group_by="difficulty", group_n=3, groups_path=str(tmp_path / "g.json"))
    drawn = []

    class Stop(Exception):
        pass

    def build_prompt(tok, questions, instruction=None):
        drawn.append(questions)
        if len(drawn) == args.prompts:
            raise Stop
    monkeypatch.setattr(bcr.rw, "build_prompt", build_prompt)
    rng = random.Random(0)
    with pytest.raises(Stop):
        bcr.train_step(None, None, None, None, problems, rng, 0, args)
    fixed = [[p["question"] for p in g] for g in problems.groups]
    want = [[p["question"] for p in g] for g in random.Random(0).sample(problems.groups, 4)]
    assert drawn == want and all(q in fixed for q in drawn)


def test_hub_presets_train_on_deepmath_in_difficulty_groups():
    for p in ("r1-1.5b", "qwen3-4b"):
        args = bcr.parse_args(["--preset", p])
        assert (args.data, args.group_by) == ("deepmath", "difficulty")
    assert bcr.parse_args([]).group_by == "random"


# ---------------------------------------------------------------------------------------------
# eval.py --preset


def test_eval_presets_agree_with_the_training_presets():
    assert set(ev.EVAL_PRESETS) == set(bcr.PRESETS)
    for p in bcr.PRESETS:
        t, e = bcr.parse_args(["--preset", p]), ev.parse_args(["--preset", p, "--model", "m"])[1]
        assert (e.dtype, e.temperature, e.thinking) == (t.dtype, t.temperature, t.thinking), p
        assert (e.budget or toy.BUDGET) == t.eval_budget, p
        assert (e.stop_at_last_answer if e.stop_at_last_answer is not None else e.data == ["toy"]) \
            == t.stop_at_last_answer, p
        assert (e.data, e.n) == ([t.eval_data], t.eval_n), p
        assert e.top_p == getattr(t, "top_p", 1.0 if p == "toy" else 0.95), p  # training samples at top-p 1
        if p != "toy":
            assert ev.parse_args(["--preset", p])[1].model == t.model
    e = ev.parse_args(["--preset", "r1-1.5b", "--model", "m", "--budget", "64", "--top-p", "1"])[1]
    assert (e.budget, e.top_p, e.temperature) == (64, 1.0, 0.6)  # flags override the preset


THINK_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'user' %}<|user|>{{ m['content'] }}"
                  "{% else %}<|assistant|>{{ m['content'] }}<|end|>{% endif %}{% endfor %}"
                  "{% if add_generation_prompt %}<|assistant|><think>\n{% endif %}")


def tiny_thinking_qwen2(path):
    """A Qwen2 with DeepSeek-R1-Distill-Qwen-1.5B's head ratio (12 query, 2 KV heads) at width 24, the
    toy tokenizer with an R1-style chat template (the generation prompt opens <think>), saved to path.
    EOS is made likely (a constant feature that the EOS row reads) so that responses are short."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = toy.make_tokenizer()
    tok.add_tokens(["<think>", "</think>"])
    tok.chat_template = THINK_TEMPLATE
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=24, intermediate_size=48, num_hidden_layers=1,
                      num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=8192,
                      tie_word_embeddings=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      bos_token_id=None)
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 10.0
        model.lm_head.weight[:, 0] = 0.0
        model.lm_head.weight[tok.eos_token_id, 0] = 0.5
    model.save_pretrained(path)
    tok.save_pretrained(path)


def test_eval_preset_runs_every_table_on_a_tiny_thinking_qwen2(tmp_path, monkeypatch):
    model_dir, out = str(tmp_path / "qwen2"), str(tmp_path / "eval")
    tiny_thinking_qwen2(model_dir)
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
                             for i in range(10)))
    monkeypatch.setenv("BCR_BAR", "1")  # draw the progress bar even without a terminal
    ev.main(["--preset", "r1-1.5b", "--model", model_dir, "--data", str(bench), "--samples", "2", "--out", out])
    res = json.load(open(os.path.join(out, "results.json")))
    meta, r = res["meta"], res["benchmarks"]["bench"]
    assert (meta["preset"], meta["dtype"], meta["temperature"], meta["top_p"], meta["budget"]) \
        == ("r1-1.5b", "bfloat16", 0.6, 0.95, 5120)
    assert meta["stop_at_last_answer"] is False and meta["thinking"] is True
    assert list(r["scaling"]) == ["1", "2", "3", "4", "5", "1-standard"]
    assert all("pass@2" in s and "mean@2" in s for s in r["scaling"].values())
    assert list(r["budget_curve"]["5"]) == ["320", "640", "1280", "2560", "5120"]
    assert set(r["batch_vs_single"]) == {"2", "3", "4", "5"} and set(r["length_by_correctness"]) == set(r["scaling"])
    for f in ("scaling.csv", "budget_curve.csv", "length_by_correctness.csv", "batch_vs_single.csv"):
        assert os.path.exists(os.path.join(out, f))
    assert ev.rollouts.__name__ == "rollouts"  # the run's sampler is put back


def test_rows_planned_counts_what_evaluate_generates():
    assert ev.rows_planned([10], [1, 2, 3, 4, 5], 2) == (10 + 5 + 3 + 2 + 2 + 10) * 2


def test_bcr_main_writes_and_reuses_the_groups(tmp_path):
    base, path, out = str(tmp_path / "base"), str(tmp_path / "d.jsonl"), str(tmp_path / "run")
    tok = toy.make_tokenizer()
    toy.make_model(tok).save_pretrained(base)
    tok.save_pretrained(base)
    _difficulty_file(path, 30)
    flags = ["--model", base, "--data", path, "--group-by", "difficulty", "--n", "2", "--budget", "8", "--group", "2",
             "--prompts", "2", "--steps", "1", "--no-eval", "--device", "cpu", "--out", out]
    bcr.main(flags)
    first = json.load(open(os.path.join(out, "groups.json")))
    assert first["n"] == 2 and len(first["groups"]) == data.GROUPS and first["spread"] < first["random_spread"]
    bcr.main(flags + ["--seed", "3"])  # a rerun in the same directory keeps the list
    assert json.load(open(os.path.join(out, "groups.json")))["groups"] == first["groups"]


def test_progress_logs_rows_tokens_and_time_left_without_a_terminal(monkeypatch):
    monkeypatch.delenv("BCR_BAR", raising=False)
    monkeypatch.setattr(ev.sys.stderr, "isatty", lambda: False)
    tok = toy.make_tokenizer()
    model = toy.make_model(tok).eval()
    lines = []
    prompts = [ev.rw.build_prompt(tok, ["12 + 34"])] * 2
    with ev.progress_bar(4, log=lines.append, every=0) as progress:
        roll = ev.rollouts(model, tok, prompts[:1], 1, 2, 5, 1.0, 0, top_p=0.9, progress=progress)
        ev.rollouts(model, tok, prompts[:1], 1, 2, 5, 1.0, 1, progress=progress)
    assert roll.completion_ids.shape[0] == 2
    assert lines[0].startswith("eval: 2/4 rows, ") and lines[1].startswith("eval: 4/4 rows, ")
    assert "tokens/s, about 0.0 min left" in lines[1]
