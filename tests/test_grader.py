"""grader.py (and reward.split_answers): hand-written cases (equal and not equal), the N-problem
parser, reward hacking, bounded time, and real benchmark answers from ../shared/data when present."""
import collections
import json
import os
import subprocess
import sys
import threading
import time

import pytest

import grader as gr
import reward as rw

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")

EQUAL = [
    # strings and normalisation
    ("5", "5"), ("$5$", "5"), ("5.", "5"), (" 5 ", "5"), ("\\text{5}", "5"), ("\\textbf{12}", "12"),
    ("\\left(1,2\\right)", "(1,2)"), ("\\dfrac{1}{2}", "\\frac{1}{2}"), ("\\tfrac{3}{4}", "\\frac34"),
    ("\\frac12", "\\frac{1}{2}"), ("90^\\circ", "90"), ("90^{\\circ}", "90"), ("50\\%", "50"), ("50%", "50"),
    ("1,000", "1000"), ("1,234,567", "1234567"), ("12.0", "12"), ("12.00", "12"), ("x = 5", "5"), ("x=5", "5"),
    ("\\theta = \\frac{\\pi}{2}", "\\frac{\\pi}{2}"), ("k=3", "3"), ("\\displaystyle\\frac{1}{2}", "\\frac12"),
    ("\\mathrm{B}", "B"), ("\\text{(C)}", "(C)"), ("10\\,000", "10000"), ("1{,}000", "1000"),
    # numbers: exact, never through float
    ("0.5", "\\frac{1}{2}"), ("\\frac{1}{2}", "0.5"), ("-0.25", "-\\frac{1}{4}"), ("-\\frac{1}{4}", "-0.25"),
    ("2/4", "\\frac{1}{2}"), ("0.33", "\\frac{1}{3}"), ("0.333", "\\frac{1}{3}"), ("0.67", "\\frac{2}{3}"),
    ("0.667", "\\frac23"), ("1.5", "\\frac{3}{2}"), ("3.0", "3"), ("+3", "3"), ("007", "7"), (".5", "0.5"),
    ("2^{100}", "1267650600228229401496703205376"),
    # expressions
    ("\\sqrt{2}/2", "\\frac{\\sqrt2}{2}"), ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}"), ("2x+2", "2(x+1)"),
    ("x^2+2x+1", "(x+1)^2"), ("3\\sqrt{13}", "\\sqrt{117}"), ("2\\pi", "\\pi\\cdot 2"), ("\\pi r^2", "r^2\\pi"),
    ("\\frac{x}{2}", "0.5x"), ("a b", "ba"), ("\\sqrt[3]{8}", "2"), ("4^{1/2}", "2"), ("e^{0}", "1"),
    ("\\frac{\\pi}{6}", "\\frac{1}{6}\\pi"), ("2 \\times 3", "6"), ("6 \\div 2", "3"), ("10^{3}", "1000"),
    ("\\sin^2 x + \\cos^2 x", "1"), ("|{-3}|", "3"), ("5!", "120"), ("\\frac{14}{3}", "\\frac{28}{6}"),
    ("x_1 + x_2", "x_2 + x_1"), ("\\infty", "\\infty"), ("-\\infty", "-\\infty"),
    # structures
    ("(1,2)", "(1, 2)"), ("[1,2)", "[1, 2)"), ("(-\\infty, 3]", "(-\\infty,3]"), ("\\{1,2,3\\}", "\\{3,1,2\\}"),
    ("1, 2, 3", "3, 2, 1"), ("(0,\\frac{1}{2})", "(0, 0.5)"), ("(1,2)\\cup(3,4)", "(3,4)\\cup(1,2)"),
    ("y = 2x + 1", "y = 1 + 2x"), ("x+y=1", "1=x+y"), ("\\left[ 2, 5 \\right]", "[2,5]"),
    ("(3, \\frac{\\pi}{2})", "(3,\\frac{\\pi}{2})"),
    ("2, -2", "-2, 2"), ("\\{-1, 1\\}", "\\{1,-1\\}"),
]

NOT_EQUAL = [
    ("5", "6"), ("123457", "123456"), ("0.5", "50"), ("50", "0.5"), ("2^{100}+1", "1267650600228229401496703205376"),
    ("0.3", "\\frac{1}{3}"), ("0.34", "\\frac{1}{3}"), ("0.66", "\\frac{2}{3}"), ("1.41", "\\sqrt{2}"),
    ("\\frac{1}{2}", "\\frac{1}{3}"), ("-5", "5"), ("1000", "1,0000"), ("12", "1.2"), ("", "5"), ("5", ""),
    ("x+1", "x-1"), ("2x", "x^2"), ("\\sqrt{2}", "2"), ("\\pi", "3.14"), ("(1,2)", "(2,1)"), ("(1,2)", "[1,2]"),
    ("[1,2)", "(1,2]"), ("(1,2)", "1,2"), ("\\{1,2\\}", "\\{1,2,3\\}"), ("1,2,3", "1,2"), ("1,2,2", "1,1,2"),
    ("(1,2)\\cup(3,4)", "(1,2)"), ("y=2x+1", "y=2x-1"), ("\\infty", "-\\infty"), ("10^{10^{10^{10}}}", "1"),
    ("(x+1)^{10000}", "x"), ("2^{2^{2^{2^{2}}}}", "3"), ("A", "B"), ("\\text{(A)}", "(B)"), ("\\le", "\\left"),
    ("5 \\le x", "5"), ("3/0", "3"), ("\\frac{1}{0}", "1"), ("1e5", "100000"), ("12", "21"), ("1/2", "2"),
    ("2,3", "23"), ("(0,\\frac{1}{2})", "(0, 0.6)"), ("\\sin x", "\\cos x"), ("x_1", "x_2"), ("5!", "5"),
    (None, "5"), ("5", None),
]


@pytest.mark.parametrize("pred,gold", EQUAL)
def test_equal(pred, gold):
    assert gr.is_equiv(pred, gold)


@pytest.mark.parametrize("pred,gold", NOT_EQUAL)
def test_not_equal(pred, gold):
    assert not gr.is_equiv(pred, gold)


EXTRACT = [
    ("so the answer is \\boxed{12}.", "12"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("first \\boxed{3} then \\boxed{4}", "4"),
    ("nested \\boxed{\\{1, \\{2\\}\\}}", "\\{1, \\{2\\}\\}"),
    ("\\fbox{7}", "7"),
    ("\\boxed 5", "5"),
    ("old \\boxed 5 new \\boxed{12}", "12"),
    ("The answer is 42.", "42"),
    ("The final answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
    ("work...\n#### 1234", "1234"),
    ("Answer: 17", "17"),
    ("no answer here", None),
    ("unbalanced \\boxed{12", None),
    ("<think>maybe \\boxed{3}</think> so \\boxed{4}", "4"),
    ("<think>maybe \\boxed{3}</think> I am done.", None),
    ("\\boxed{a}" + "x" * 300 + "\\boxed{b}", "b"),
]


@pytest.mark.parametrize("text,want", EXTRACT)
def test_extract_answer(text, want):
    assert gr.extract_answer(text) == want


SPLIT = [
    # clean
    ("Answer 1: \\boxed{3}\nAnswer 2: \\boxed{5}", 2, ["3", "5"]),
    # missing answer
    ("Answer 1: \\boxed{3}\nI give up.", 2, ["3", None]),
    # out of order
    ("Answer 2: \\boxed{5}\nAnswer 1: \\boxed{3}", 2, ["3", "5"]),
    # duplicated problem numbers: the last one wins
    ("Answer 1: \\boxed{3}\nwait\nAnswer 1: \\boxed{4}", 1, ["4"]),
    # truncated last problem (unbalanced box)
    ("Answer 1: \\boxed{3}\nAnswer 2: \\boxed{1", 2, ["3", None]),
    # Problem 1 never confused with Problem 10
    ("Answer 10: \\boxed{9}\nAnswer 1: \\boxed{2}", 10, ["2"] + [None] * 8 + ["9"]),
    ("Answer 10: \\boxed{9}", 3, [None, None, None]),
    # variants of the marker
    ("Answer 1:: \\boxed{3}\n**Answer 2:** \\boxed{5}\nAnswer 3: 12", 3, ["3", "5", "12"]),
    ("**Answer 1**: $7$.", 1, ["7"]),
    # answers inside <think> do not count when a final part exists
    ("<think>Answer 1: \\boxed{3}</think>\nAnswer 1: \\boxed{4}", 1, ["4"]),
    ("<think>Answer 1: \\boxed{3}</think>\nI will not say.", 1, [None]),
    # a final summary block overrides the work
    ("### Problem 1\nAnswer 1: \\boxed{3}\n### Problem 2\nAnswer 2: \\boxed{4}\n"
     "Summary:\nAnswer 1: \\boxed{6}\nAnswer 2: \\boxed{4}",
     2, ["6", "4"]),
    # fallback: last box inside the problem's own section
    ("### Problem 1\nso \\boxed{3}\n### Problem 2\nthus \\boxed{8} no \\boxed{9}", 2, ["3", "9"]),
    ("## Problem 1\n\\boxed{3}\n## Problem 10\n\\boxed{4}", 10, ["3"] + [None] * 8 + ["4"]),
    ("**Problem 2**\n\\boxed{4}", 2, [None, "4"]),
    # an answer written for problem j is never credited to problem k
    ("### Problem 1\nAnswer 2: \\boxed{5}", 2, [None, "5"]),
    ("", 2, [None, None]),
]


@pytest.mark.parametrize("text,n,want", SPLIT)
def test_split_answers(text, n, want):
    assert rw.split_answers(text, n) == want


HACKS = [
    # several boxes for one problem: a hedge earns nothing
    ("Answer 1: \\boxed{1} \\boxed{2} \\boxed{3}", ["2"], [False]),
    ("Answer 1: \\boxed{1} or \\boxed{2}", ["1"], [False]),
    # the same box twice is not a hedge
    ("Answer 1: \\boxed{2} \\boxed{2}", ["2"], [True]),
    # every problem's answer stuffed in one line: each marker gets only its own box
    ("Answer 1: \\boxed{4} Answer 2: \\boxed{7} Answer 3: \\boxed{9}", ["4", "7", "9"], [True, True, True]),
    ("Answer 1: \\boxed{4} Answer 2: \\boxed{4} Answer 3: \\boxed{4}", ["4", "7", "9"], [True, False, False]),
    # one answer claimed for all problems
    ("Answer 1, 2, 3: \\boxed{4}", ["4", "4", "4"], [False, False, False]),
    # no labels at all and exactly N boxes: read in order (issue #19; this was [False, False] before)
    ("\\boxed{4} \\boxed{7}", ["4", "7"], [True, True]),
    ("\\boxed{7} \\boxed{4}", ["4", "7"], [False, False]),
    # no labels and a box count that is not N: nothing can be assigned
    ("\\boxed{4} \\boxed{7} \\boxed{9}", ["4", "7"], [False, False]),
    # a list of candidates is not a match for a single answer
    ("Answer 1: \\boxed{1, 2, 3}", ["2"], [False]),
]


@pytest.mark.parametrize("text,golds,want", HACKS)
def test_reward_hacking(text, golds, want):
    assert rw.problem_correctness(text, golds, finished=True) == want


def test_grade_and_score():
    assert gr.grade("We get \\boxed{\\frac{1}{2}}.", "0.5")
    assert not gr.grade("We get \\boxed{\\frac{1}{3}}.", "0.5")
    assert rw.problem_correctness("Answer 1: \\boxed{3}\nAnswer 2: \\boxed{4}", ["3", "5"], True) == [True, False]


ADVERSARIAL = ["10^{10^{10^{10}}}", "(x+1)^{10000}", "2^{2^{2^{2^{2}}}}", "x" * 100_000, "{" * 5000, "}" * 5000,
               "\\frac{" * 2000, "(" * 3000 + "1" + ")" * 3000, "9" * 5000 + "^{" + "9" * 5000 + "}",
               "\\sqrt{" * 1000 + "2" + "}" * 1000]


@pytest.mark.parametrize("bad", ADVERSARIAL)
def test_bounded_time(bad):
    gr.warmup()
    for pred, gold in ((bad, "1"), ("1", bad), (bad, bad + "1")):
        t = time.perf_counter()
        gr.is_equiv(pred, gold)
        assert time.perf_counter() - t < gr.TIMEOUT_S + 0.5
    t = time.perf_counter()
    gr.grade("\\boxed{" + bad + "}", "1")
    assert time.perf_counter() - t < gr.TIMEOUT_S + 0.5


def test_timeout_is_counted_false_and_recovers():
    gr.warmup()
    before = gr.STATS["timeouts"]
    old = gr.TIMEOUT_S
    gr.TIMEOUT_S = 0.001  # nothing sympy does finishes in 1 ms: a forced timeout
    try:
        assert gr.is_equiv("\\sin^2 x + \\cos^2 x", "1") is False
    finally:
        gr.TIMEOUT_S = old
    assert gr.STATS["timeouts"] == before + 1
    assert gr.is_equiv("\\sin^2 x + \\cos^2 x", "1")  # the worker restarts


def test_works_from_threads():
    out = []
    ths = [threading.Thread(target=lambda: out.append(gr.is_equiv("\\sqrt{8}", "2\\sqrt{2}"))) for _ in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(10)
    assert out == [True] * 4


def _load(path):
    with open(path) as f:
        return [json.loads(x) for x in f if x.strip()]


def _real_sets():
    """(name, [(reference text, gold answer)], grader, required own-answer rate) for each benchmark."""
    gsm = [(r["answer"], r["answer"].split("####")[-1].strip().replace(",", ""))
           for r in _load(os.path.join(DATA, "gsm8k/raw/test.jsonl"))]
    math500 = [(r["solution"], r["answer"]) for r in _load(os.path.join(DATA, "math500/raw/test.jsonl"))]
    minerva = [(r["solution"], n["answer"]) for r, n in zip(_load(os.path.join(DATA, "minerva/raw/test.jsonl")),
                                                            _load(os.path.join(DATA, "minerva.jsonl")))]
    # OlympiadBench's worked solutions state their result in prose (no box, no marker, in 604 of 675
    # rows), so its reference is the dataset's own final_answer field, as a model would box it
    olymp = [(f"\\boxed{{{r['final_answer'][0]}}}", n["answer"])
             for r, n in zip(_load(os.path.join(DATA, "olympiadbench/raw/test.jsonl")),
                             _load(os.path.join(DATA, "olympiadbench.jsonl")))]
    return [("gsm8k", gsm, 1.0), ("math500", math500, 0.99), ("minerva", minerva, 0.99), ("olympiadbench", olymp, 0.99)]


@pytest.mark.skipif(not os.path.exists(os.path.join(DATA, "gsm8k")), reason="../shared/data not present")
def test_real_benchmark_references():
    """A reference graded against its own answer is right; against another problem's, wrong."""
    report = []
    for name, rows, need in _real_sets():
        own = [gr.grade(s, a) for s, a in rows]
        shift = [(i, (i + 7) % len(rows)) for i in range(len(rows))]
        # a shifted pair whose gold answers are the same answer is not a false positive
        fps = [i for i, j in shift if gr.grade(rows[i][0], rows[j][1]) and not gr.is_equiv(rows[j][1], rows[i][1])]
        misses = [i for i, ok in enumerate(own) if not ok]
        report.append(f"{name}: own answer {sum(own)}/{len(rows)} (misses at rows {misses[:20]}), "
                      f"other problem's answer: {len(fps)} false positives {fps[:10]}")
        print(report[-1])
        assert sum(own) / len(rows) >= need, report[-1]
        assert len(fps) / len(rows) <= 0.005, report[-1]


# ----------------------------------------------------------------------------------------------
# the labelled sets in tests/data (issue #19): answer pairs and multi-problem responses

HERE = os.path.join(os.path.dirname(__file__), "data")


def agreement_report(pairs=None, verbose=True):
    """Agreement with the labels and false-positive rate, per kind and overall, of the labelled
    answer pairs (grade(pred, gold): a pred may be a bare answer or a whole response).
    Returns {kind: (n, agree, negatives, false_positives)}; run `pytest -s -k report` to see it."""
    pairs = pairs if pairs is not None else _load(os.path.join(HERE, "answer_pairs.jsonl"))
    per = collections.defaultdict(lambda: [0, 0, 0, 0])
    misses = []
    for p in pairs:
        got = gr.grade(p["pred"], p["gold"])
        for key in (p["kind"], "ALL"):
            row = per[key]
            row[0] += 1
            row[1] += got == p["equal"]
            row[2] += not p["equal"]
            row[3] += got and not p["equal"]
        if got != p["equal"]:
            misses.append(p)
    if verbose:
        for kind, (n, agree, neg, fp) in sorted(per.items(), key=lambda kv: kv[0] == "ALL"):
            print(f"{kind:24s} agree {agree:4d}/{n:<4d} {100 * agree / n:6.1f}%   "
                  f"false positives {fp}/{neg} ({100 * fp / max(neg, 1):.1f}%)")
        for p in misses[:30]:
            print("MISS", p["kind"], p["equal"], repr(p["pred"][-80:]), repr(p["gold"]))
    return {k: tuple(v) for k, v in per.items()}


def test_answer_pairs_report():
    pairs = _load(os.path.join(HERE, "answer_pairs.jsonl"))
    assert len(pairs) >= 400
    assert all({"pred", "gold", "equal", "kind", "source"} <= set(p) for p in pairs)
    gr.warmup()
    per = agreement_report(pairs)
    n, agree, neg, fp = per["ALL"]
    assert agree / n >= 0.97, per
    assert fp / neg <= 0.01, per
    for kind, (n, agree, _, _) in per.items():
        assert agree / n >= 0.9, (kind, per[kind])


def test_answer_pairs_through_is_equiv():
    """The bare-answer pairs agree through is_equiv too (the pred is not run through extraction)."""
    pairs = [p for p in _load(os.path.join(HERE, "answer_pairs.jsonl")) if not p["kind"].startswith("real_")]
    wrong = [p for p in pairs if gr.is_equiv(p["pred"], p["gold"]) != p["equal"]]
    assert len(wrong) <= 0.03 * len(pairs), wrong[:10]
    assert not [p for p in wrong if not p["equal"]], "false positives through is_equiv"


def test_multi_responses():
    """Per-slot verdicts of multi-problem responses (summary blocks, tables, Question k / Qk,
    section markers, N boxes without labels, hedges, cross-crediting)."""
    rows = _load(os.path.join(HERE, "multi_responses.jsonl"))
    slots = right = 0
    wrong = []
    for r in rows:
        got = rw.problem_correctness(r["response"], r["golds"], finished=True)
        slots += len(got)
        right += sum(g == w for g, w in zip(got, r["correct"]))
        if got != r["correct"]:
            wrong.append((r["kind"], got, r["correct"], r["response"][:80]))
    print(f"multi-problem slots judged right: {right}/{slots}")
    assert right / slots >= 0.95, wrong


# pairs that need sympy (tens of ms of CPU each); the trigonometric ones sympy cannot settle
LOAD_PAIRS = [
    ("\\sin^2 x + \\cos^2 x", "1", True), ("\\tan^2 x + 1", "\\sec^2 x", True),
    ("\\sqrt{5+2\\sqrt{6}}", "\\sqrt{2}+\\sqrt{3}", True), ("\\cos(3x)", "4\\cos^3 x - 3\\cos x", True),
    ("3x+6y-2=0", "y=-\\frac{1}{2}x+\\frac{1}{3}", True), ("\\frac{x^3-1}{x-1}", "x^2+x+1", True),
    ("(x+1)^{8}(x-2)^{3}", "x^{11}+2x^{10}-8x^{9}-24x^{8}+6x^{7}+84x^{6}+56x^{5}-72x^{4}-135x^{3}-82x^{2}-24x-8",
     False),
    ("\\frac{\\sin(5x)}{\\sin x}", "16\\cos^4 x - 12\\cos^2 x + 1", None),
    ("\\cos^6 x + \\sin^6 x", "1 - 3\\sin^2 x \\cos^2 x", None),
    ("\\tan(3x)", "\\frac{3\\tan x - \\tan^3 x}{1 - 3\\tan^2 x}", None),
]


def _fresh_verdicts(pairs):
    gr._WORKER._kill()  # a fresh worker: sympy's own cache must not make the second run cheaper
    gr.warmup()
    return [gr.is_equiv(a, b) for a, b, _ in pairs]


def test_verdicts_do_not_depend_on_load():
    """The sympy time limit counts the worker's CPU time, so 4 CPU-burning processes beside it
    slow it down but do not change a verdict. TIMEOUT_S is set to a few times the CPU these
    checks need: under load their wall time exceeds it, their CPU time does not."""
    old = gr.TIMEOUT_S
    gr.TIMEOUT_S = 0.4
    try:
        idle = _fresh_verdicts(LOAD_PAIRS)
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
        try:
            time.sleep(0.2)
            t = time.perf_counter()
            busy = _fresh_verdicts(LOAD_PAIRS)
            busy_s = time.perf_counter() - t
        finally:
            for p in burners:
                p.kill()
                p.wait()
    finally:
        gr.TIMEOUT_S = old
    print(f"busy run: {busy_s:.2f}s wall for {len(LOAD_PAIRS)} pairs")
    assert busy == idle
    assert [v for v, (_, _, want) in zip(idle, LOAD_PAIRS) if want is not None] == \
        [want for _, _, want in LOAD_PAIRS if want is not None]
