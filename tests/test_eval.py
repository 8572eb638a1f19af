"""eval.py: pass@k by hand, budget accounting, per-problem token attribution, the comparison table."""
import csv
import json
import math
import os
import subprocess
import sys

import pytest

import eval as ev
import report
import toy


@pytest.fixture(scope="module")
def tok():
    return toy.make_tokenizer()


def test_pass_at_k_by_hand():
    # n=4 samples, c=1 correct: pass@1 = 1/4; pass@2 = 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert ev.pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert ev.pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert ev.pass_at_k(4, 0, 2) == 0.0
    assert ev.pass_at_k(4, 3, 2) == 1.0  # n - c < k: every pair has a correct one
    assert ev.pass_at_k(5, 2, 3) == pytest.approx(1 - math.comb(3, 3) / math.comb(5, 3))


def _row(tok, text, golds, finished=True, group=0, sample=0):
    ids = tok(text, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if finished else [])
    return {"group": group, "sample": sample, "golds": golds, "ids": list(range(len(golds))), "tokens": ids,
            "finished": finished}


def test_budget_accounting(tok):
    text = "3+4=7\nAnswer 1: \\boxed{7}\n5+5=10\nAnswer 2: \\boxed{10}"
    row = _row(tok, text, ["7", "10"])
    n_tok = len(row["tokens"])
    first_line_end = len(tok(text[: text.index("\n5+5")], add_special_tokens=False)["input_ids"])
    for budget, want in ((None, [True, True]), (n_tok, [True, True]), (n_tok - 1, [True, False]),
                         (first_line_end + 1, [True, False]), (first_line_end, [False, False]), (3, [False, False])):
        assert ev.grade_rows([row], tok, 2, "bcr", budget)[0] == want, budget
    # a truncated row (no EOS) never gets its last line counted, even if complete
    cut = _row(tok, text, ["7", "10"], finished=False)
    assert ev.grade_rows([cut], tok, 2, "bcr")[0] == [True, False]


def test_tokens_attributed_per_problem(tok):
    p1 = "3+4=7\nAnswer 1: \\boxed{7}\n"
    p2 = "wait\n5+5=10\nAnswer 2: \\boxed{10}\n"
    text = p1 + p2 + "done"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    n1 = len(tok(p1, add_special_tokens=False)["input_ids"])
    n2 = len(tok(p2, add_special_tokens=False)["input_ids"])
    # each problem is charged up to and including its answer line's newline
    assert ev.tokens_per_problem(ids, tok, 3) == [n1, n2, None]


def test_summarize_and_length_stats(tok):
    rows = [_row(tok, "Answer 1: \\boxed{7}", ["7"], group=g, sample=s) for g in range(2) for s in range(2)]
    rows[1] = _row(tok, "Answer 1: \\boxed{8}", ["7"], group=0, sample=1)
    verdicts = ev.grade_rows(rows, tok, 1, "bcr")
    res = ev.summarize(rows, verdicts, 1)
    assert res["accuracy"] == 0.75 and res["mean@2"] == 0.75
    assert res["pass@2"] == 1.0 and res["pass@1"] == 0.75 and res["problems"] == 2
    lbc = ev.length_by_correctness(ev.problem_lengths(rows, verdicts, tok, 1))
    assert lbc["correct"]["count"] == 3 and lbc["incorrect"]["count"] == 1


def _results(model, benches):
    """A results.json as eval.py writes it: {bench: (accuracy at N=1, tokens per problem at N=1)}."""
    return {"meta": {"model": model, "data": list(benches)},
            "benchmarks": {b: {"scaling": {"1": {"accuracy": acc, "tokens_per_problem": t},
                                           "2": {"accuracy": 0.5, "tokens_per_problem": 50.0}}}
                           for b, (acc, t) in benches.items()}}


def test_compare_table(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "results.json").write_text(json.dumps(_results("base", {"aime25": (0.80, 100.0), "amc23": (0.40, 200.0)})))
    (b / "results.json").write_text(json.dumps(_results("bcr", {"aime25": (0.82, 60.0), "amc23": (0.50, 100.0),
                                                                "minerva": (0.3, 10.0)})))
    rows = {tuple(x.split("|")[0].split()): x.split("|")[1:] for x in ev.compare(str(a), str(b)).splitlines()[2:]}
    # per benchmark: accuracy A, B and the change in points; tokens A, B and the change in %
    assert rows[("aime25", "1")][0].split() == ["80.0", "82.0", "+2.0"]
    assert rows[("aime25", "1")][1].split() == ["100.0", "60.0", "-40.0%"]
    assert rows[("amc23", "1")][1].split() == ["200.0", "100.0", "-50.0%"]
    # the paper's average row: the plain mean over the benchmarks both runs have (minerva is B's only)
    assert rows[("average", "(2)", "1")][0].split() == ["60.0", "66.0", "+6.0"]
    assert rows[("average", "(2)", "1")][1].split() == ["150.0", "80.0", "-46.7%"]
    assert ("minerva", "1") not in rows and rows[("amc23", "2")][1].split() == ["50.0", "50.0", "+0.0%"]
    with pytest.raises(FileNotFoundError, match="missing"):
        ev.compare(str(a), str(tmp_path / "missing"))
    (b / "results.json").write_text(json.dumps(_results("bcr", {"gsm8k": (0.1, 1.0)})))
    with pytest.raises(ValueError, match="no benchmark in both"):
        ev.compare(str(a), str(b))


def test_evaluate_runs_every_table_on_a_tiny_model(tok, tmp_path):
    model = toy.make_model(tok).eval()
    probs = toy.make_problems(6, "test", 0)
    res = ev.evaluate(model, tok, probs, [1, 2], 16, 1.0, 2, 0)
    assert set(res["scaling"]) == {"1", "2", "1-standard"}
    assert list(res["budget_curve"]["2"]) == ["1", "2", "4", "8", "16"]
    assert "2" in res["batch_vs_single"]
    # the stored lengths are the histogram's input and agree with the summary statistics
    for key in ("1", "2", "1-standard"):
        for which in ("correct", "incorrect"):
            assert len(res["lengths"][key][which]) == res["length_by_correctness"][key][which]["count"]
    assert sum(len(v) for v in res["lengths"]["1"].values()) == 6 * 2  # N=1: every response is charged
    with pytest.raises(ValueError, match="N=4 problems per prompt, but only 3 problems"):
        ev.evaluate(model, tok, probs[:3], [4], 16, 1.0, 1, 0)
    ev.write_outputs({"toy": res}, str(tmp_path), {"model": "tiny"})
    back = ev.load_results(str(tmp_path))
    assert back["benchmarks"]["toy"]["scaling"] == json.loads(json.dumps(res["scaling"]))
    with open(tmp_path / "scaling.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["benchmark"], r["N"]) for r in rows] == [("toy", "1"), ("toy", "2"), ("toy", "1-standard")]
    assert float(rows[1]["tokens_per_problem"]) == pytest.approx(res["scaling"]["2"]["tokens_per_problem"])
    for name in ("budget_curve.csv", "length_by_correctness.csv", "batch_vs_single.csv"):
        assert (tmp_path / name).exists()


def test_plot_writes_the_three_figures_per_benchmark(tmp_path):
    pytest.importorskip("matplotlib")
    lengths = {"correct": [10, 12, 30], "incorrect": [40]}
    res = {"scaling": {n: {"accuracy": 0.5, "tokens_per_problem": 20.0} for n in ("1", "2", "1-standard")},
           "budget_curve": {n: {"8": 0.1, "16": 0.5} for n in ("1", "2", "1-standard")},
           "lengths": {n: lengths for n in ("1", "2", "1-standard")}}
    runs = [("base", {"benchmarks": {"toy": res, "gsm8k": res}}), ("bcr", {"benchmarks": {"toy": res}})]
    paths = ev.plot(runs, str(tmp_path))
    assert sorted(os.path.basename(p) for p in paths) == ["toy_budget_curve.png", "toy_lengths.png",
                                                          "toy_task_scaling.png"]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "plt", None)  # what report.py holds when "import matplotlib" failed
    assert ev.plot([("x", {"benchmarks": {}})], str(tmp_path)) == []
    assert "pip install matplotlib" in capsys.readouterr().out


SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.mark.skipif(not os.path.exists(os.path.join(SHARED, "gsm8k_test.jsonl")), reason="no ../shared/data")
def test_cli_runs_a_real_model_on_two_benchmarks(smollm2, tmp_path, capsys):
    # the real SmolLM2-135M (GGUF, real BPE tokenizer and chat template) through every table, on
    # GSM8K and on a JSONL file, with a budget small enough for CI
    from conftest import smollm2_path

    extra = tmp_path / "mine.jsonl"
    extra.write_text("".join(json.dumps({"question": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n"
                             for i in range(4)))
    out = tmp_path / "run"
    ev.main(["--model", smollm2_path(), "--data-dir", SHARED, "--data", "gsm8k", str(extra), "--problems", "4",
             "--n", "1", "2",
             "--budget", "8", "--samples", "2", "--out", str(out)])
    res = ev.load_results(str(out))
    assert list(res["benchmarks"]) == ["gsm8k", "mine"] and res["meta"]["problems"] == {"gsm8k": 4, "mine": 4}
    for b in res["benchmarks"].values():
        assert set(b["scaling"]) == {"1", "2", "1-standard"} and list(b["budget_curve"]["2"]) == ["1", "2", "4", "8"]
        assert b["scaling"]["1"]["tokens_per_problem"] <= 8 and b["scaling"]["2"]["tokens_per_problem"] <= 4
        two = b["scaling"]["2"]
        assert two["problems"] == 4 and two["samples"] == 2 and "pass@2" in two
        assert set(b["batch_vs_single"]) == {"2"}
    capsys.readouterr()
    ev.main(["--compare", str(out), str(out)])
    table = capsys.readouterr().out
    assert "average (2)" in table and "+0.0%" in table
    for bad in (["gsm8k", "gsm8k"], ["toy", "gsm8k"]):  # a name twice; the toy beside a benchmark
        with pytest.raises(SystemExit):
            ev.main(["--model", smollm2_path(), "--data-dir", SHARED, "--data", *bad])
    assert "two benchmarks named 'gsm8k'" in capsys.readouterr().err


def test_tokens_are_charged_to_a_problem_only_after_the_thinking(tok):
    think = "let me think about both of them for a while\n</think>"
    p1, p2 = "\nAnswer 1: \\boxed{7}\n", "wait\nAnswer 2: \\boxed{10}\n"
    ids = tok(think + p1 + p2, add_special_tokens=False)["input_ids"]
    n1 = len(tok(p1, add_special_tokens=False)["input_ids"])
    n2 = len(tok(p2, add_special_tokens=False)["input_ids"])
    # the shared thinking belongs to no problem; the answers after it are charged as without thinking
    assert ev.tokens_per_problem(ids, tok, 2, thinking=True) == [n1, n2]
    # a thinking block that never closed: no problem has an answer, nothing is charged
    cut = tok("still thinking\nAnswer 1: \\boxed{7}\n", add_special_tokens=False)["input_ids"]
    assert ev.tokens_per_problem(cut, tok, 2, thinking=True) == [None, None]
    assert ev.tokens_per_problem(cut, tok, 2, thinking=False)[0] is not None


def _run_dir(tmp_path, base, trained):
    """A run directory as bcr.py leaves it: scaling.json with the base's and the trained model's rows,
    each (accuracy, tokens per problem[, truncation rate]) per N."""
    def row(r):  # (accuracy, tokens per problem[, truncation rate])
        return {"accuracy": r[0], "tokens_per_problem": r[1], "truncation_rate": (r + (0.0,))[2], "problems": 600}
    res = {k: {str(n): row(r) for n, r in enumerate(rows, 1)} for k, rows in (("base", base), ("bcr", trained))}
    (tmp_path / "scaling.json").write_text(json.dumps(res))
    return json.loads((tmp_path / "scaling.json").read_text())


def test_claims_are_computed_from_a_run_directory(tmp_path):
    base = [(0.60, 56.0), (0.30, 33.0), (0.10, 22.0), (0.02, 16.5)]
    bcr = [(0.62, 36.4), (0.55, 29.0), (0.40, 21.0), (0.30, 16.0)]
    c = report.claims(_run_dir(tmp_path, base, bcr), [1, 2, 3, 4])
    lunch, law = c["free_lunch"], c["scaling_law"]
    assert lunch["tokens"] == pytest.approx(36.4 / 56.0 - 1) and lunch["accuracy"] == pytest.approx(0.02)
    assert lunch["holds"]  # -35% at +2 points
    assert law["tokens_per_problem"] == [36.4, 29.0, 21.0, 16.0] and law["strictly_falling"]
    assert law["fall"] == pytest.approx(1 - 16.0 / 36.4) and law["accuracy_at_least_base"] and law["holds"]


@pytest.mark.parametrize("change, broken", [
    (lambda b, t: t.__setitem__(0, (0.62, 40.0)), "free_lunch"),      # only 29% fewer tokens
    (lambda b, t: t.__setitem__(1, (0.55, 36.4)), "scaling_law"),     # flat from N=1 to N=2
    (lambda b, t: t.__setitem__(3, (0.30, 31.5)), "scaling_law"),     # falls strictly, but only 13.5%
    (lambda b, t: t.__setitem__(3, (0.01, 16.0)), "scaling_law"),     # below the base's accuracy at N=4
    (lambda b, t: t.__setitem__(0, (0.595, 36.4)), "scaling_law"),    # half a point below the base at N=1
    (lambda b, t: t.__setitem__(3, (0.30, 16.0, 0.9)), "scaling_law"),  # the fall is the budget's cut
])
def test_each_claim_fails_when_its_numbers_do(tmp_path, change, broken):
    base = [(0.60, 56.0), (0.30, 33.0), (0.10, 22.0), (0.02, 16.5)]
    bcr = [(0.62, 36.4), (0.55, 29.0), (0.40, 21.0), (0.30, 16.0)]
    change(base, bcr)
    c = report.claims(_run_dir(tmp_path, base, bcr), [1, 2, 3, 4])
    assert not c[broken]["holds"]
    assert c[{"free_lunch": "scaling_law", "scaling_law": "free_lunch"}[broken]]["holds"]


def test_the_free_lunch_is_read_at_its_own_budget_when_the_run_has_one(tmp_path):
    # bcr.py --lunch-budget: the free lunch compares N=1 with room to finish, not the N=1 row of the
    # table, where the training budget cuts the verbose base; the law still reads the table
    base = [(0.60, 46.0), (0.30, 33.0), (0.10, 22.0), (0.02, 16.5)]
    bcr = [(0.62, 36.4), (0.55, 29.0), (0.40, 21.0), (0.30, 16.0)]
    res = _run_dir(tmp_path, base, bcr)
    assert not report.claims(res, [1, 2, 3, 4])["free_lunch"]["holds"]  # -21% at the table's budget
    res["lunch"] = {"budget": 150, "base": {"accuracy": 0.70, "tokens_per_problem": 56.0},
                    "bcr": {"accuracy": 0.695, "tokens_per_problem": 36.4}}
    c = report.claims(res, [1, 2, 3, 4])
    assert c["free_lunch"]["tokens"] == pytest.approx(36.4 / 56.0 - 1) and c["free_lunch"]["budget"] == 150
    assert c["free_lunch"]["accuracy"] == pytest.approx(-0.005) and c["free_lunch"]["holds"]
    assert c["scaling_law"]["holds"] and c["scaling_law"]["tokens_per_problem"] == [36.4, 29.0, 21.0, 16.0]
    res["lunch"]["bcr"]["accuracy"] = 0.68  # 2 points below the base with room to finish
    assert not report.claims(res, [1, 2, 3, 4])["free_lunch"]["holds"]
    out = []
    report.print_claims(report.claims(res, [1, 2, 3, 4]), [1, 2, 3, 4], log=out.append)
    assert out[0].startswith("free lunch at N=1 (budget 150): tokens per problem -35.0%, accuracy -2.0 points")


def test_a_less_accurate_free_lunch_fails_both_claims(tmp_path):
    base = [(0.60, 56.0), (0.30, 33.0), (0.10, 22.0), (0.02, 16.5)]
    bcr = [(0.58, 36.4), (0.55, 29.0), (0.40, 21.0), (0.30, 16.0)]  # 2 points below the base at N=1
    c = report.claims(_run_dir(tmp_path, base, bcr), [1, 2, 3, 4])
    assert not c["free_lunch"]["holds"] and not c["scaling_law"]["holds"]


def test_seed_table_reads_finished_runs(tmp_path):
    # scripts/toy_seeds.py on a run directory that already has its scaling.json: read, not run again
    base = [(0.60, 56.0), (0.30, 33.0), (0.10, 22.0), (0.02, 16.5)]
    bcr = [(0.62, 36.4), (0.55, 36.4), (0.40, 21.0), (0.30, 16.0)]  # flat from N=1 to N=2
    (tmp_path / "b0-s0").mkdir()
    _run_dir(tmp_path / "b0-s0", base, bcr)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, os.path.join(root, "scripts", "toy_seeds.py"), "--base-seeds", "0",
                          "--seeds", "0", "--length-penalty", "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    row = [x for x in out.splitlines() if x.startswith("| 0, 0 |")][-1]
    assert "0.600 -> 0.620" in row and "56.0 -> 36.4 (-35%) yes" in row
    assert "36.4 / 36.4 / 21.0 / 16.0 (-56% from N=1 to 4, 0% cut) **no**" in row  # not strictly falling
    assert row.endswith("| - |")  # no log: no time
    seeds = json.load(open(tmp_path / "seeds.json"))
    assert seeds["b0-s0"]["claims"]["free_lunch"]["holds"] and seeds["b0-s0"]["seconds"] is None
    # with the run's log, the total time bcr.py printed there
    (tmp_path / "b0-s0.log").write_text("step 0 ... 12s\nwrote scaling.json\ntotal time 275s\n")
    out = subprocess.run([sys.executable, os.path.join(root, "scripts", "toy_seeds.py"), "--base-seeds", "0",
                          "--seeds", "0", "--length-penalty", "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    assert [x for x in out.splitlines() if x.startswith("| 0, 0 |")][-1].endswith("| 275 s |")
