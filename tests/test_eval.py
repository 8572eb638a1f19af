"""eval.py: pass@k by hand, budget accounting, per-problem token attribution, the comparison table."""
import json
import math

import pytest

import eval as ev
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
    lbc = ev.length_by_correctness(rows, verdicts, tok, 1)
    assert lbc["correct"]["count"] == 3 and lbc["incorrect"]["count"] == 1


def _results(acc1, tok1):
    return {"meta": {"model": "m", "data": "d"}, "scaling": {"1": {"accuracy": acc1, "tokens_per_problem": tok1},
                                                          "2": {"accuracy": 0.5, "tokens_per_problem": 50.0}}}


def test_compare_table(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "results.json").write_text(json.dumps(_results(0.80, 100.0)))
    (b / "results.json").write_text(json.dumps(_results(0.82, 60.0)))
    table = ev.compare(str(a), str(b))
    line1 = [x for x in table.splitlines() if x.strip().startswith("1 |")][0]
    assert "80.0" in line1 and "82.0" in line1 and "+2.0" in line1 and "-40.0%" in line1
    with pytest.raises(FileNotFoundError):
        ev.compare(str(a), str(tmp_path / "missing"))


def test_evaluate_runs_every_table_on_a_tiny_model(tok, tmp_path):
    model = toy.make_model(tok).eval()
    probs = toy.make_problems(6, "test", 0)
    res = ev.evaluate(model, tok, probs, [1, 2], 16, 1.0, 2, 0)
    assert set(res["scaling"]) == {"1", "2", "1-standard"}
    assert list(res["budget_curve"]["2"]) == ["1", "2", "4", "8", "16"]
    assert "2" in res["batch_vs_single"]
    ev.write_outputs(res, str(tmp_path), {"model": "tiny"})
    assert (tmp_path / "results.json").exists() and (tmp_path / "budget_curve.csv").exists()
