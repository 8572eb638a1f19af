"""The toy world: problems, reference solutions, tokenizer and a short warm start."""
import random

import pytest
import torch

import bcr
import reward
import toy


def test_needed_lines_hand_computed():
    assert toy.needed_lines("47+38") == ["47+38", "40+30+7+8", "70+15", "85"]
    assert toy.needed_lines("10+50") == ["10+50", "10+50+0+0", "60+0", "60"]
    assert toy.needed_lines("59+59") == ["59+59", "50+50+9+9", "100+18", "118"]


def test_every_line_of_every_solution_evaluates_to_the_answer():
    # needed lines and re-checks are all equal to the answer, so redundancy never changes it
    rng = random.Random(0)
    for p in toy.make_problems(300, "train", 0):
        for line in toy.solution_steps(p["question"], rng):
            expr = line
            for prefix in toy.CHECKS + ["so the sum is "]:
                expr = expr.removeprefix(prefix)
            assert sum(int(x) for x in expr.split("+")) == int(p["answer"]), (p, line)


def test_redundancy_is_random_and_bounded():
    rng = random.Random(1)
    sols = [toy.solution_steps("47+38", rng) for _ in range(2000)]
    counts = [sum(l.startswith(tuple(toy.CHECKS)) for l in sol) for sol in sols]
    assert min(counts) == 0 and max(counts) == 4 * toy.MAX_CHECKS
    assert abs(sum(counts) / len(counts) - 4 * toy.MAX_CHECKS / 2) < 0.2  # uniform 0..MAX_CHECKS per line
    # the k-th re-check of a line opens with CHECKS[k-1]: what comes next never depends on counting
    for sol in sols[:200]:
        for prev, line in zip(sol, sol[1:]):
            for k, c in enumerate(toy.CHECKS[1:], 1):
                if line.startswith(c):
                    assert prev == toy.CHECKS[k - 1] + line[len(c):], sol
    assert toy.solution_steps("47+38", rng, redundant=False) == toy.needed_lines("47+38")


def test_splits_are_disjoint_and_test_problems_distinct():
    test = toy.make_problems(600, "test", 0)
    train = toy.make_problems(5000, "train", 0)
    tq = {p["question"] for p in test}
    assert len(tq) == 600
    assert not tq & {p["question"] for p in train}
    assert all(p["answer"] == str(eval(p["question"])) for p in test[:50])
    with pytest.raises(ValueError, match="held-out problems"):
        toy.make_problems(10_000, "test", 0)


def test_reference_solution_scores_one_and_tokenizes_round_trip():
    tok = toy.make_tokenizer()
    probs = toy.make_problems(3, "test", 0)
    qs, golds = [p["question"] for p in probs], [p["answer"] for p in probs]
    text = toy.solution_text(qs, golds, random.Random(0))
    assert bcr.problem_correctness(text, golds, True) == [True, True, True]
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    # the problem headers and re-check openings are single tokens, numbers are written digit by digit
    assert tok("### Problem 2\n47+38\ncheck again: 47", add_special_tokens=False)["input_ids"] == tok.convert_tokens_to_ids(
        ["### Problem 2\n", "4", "7", "+", "3", "8", "\n", "check again: ", "4", "7"])
    std = toy.solution_text(qs[:1], golds[:1], random.Random(0), style="standard")
    assert reward.grade(std, golds[0])


def test_warm_start_learns_and_saves(tmp_path):
    # a few steps: the loss falls and the saved model reloads with the same outputs
    logs = []
    model, tok = toy.warm_start(str(tmp_path / "base"), seed=0, steps=24, problems_per_step=4, log=logs.append)
    first = float(logs[1].split()[4])  # "step 0  N=1  loss X  0s"
    last = float(logs[-1].split()[4])
    assert last < first - 1.0, logs
    from transformers import AutoModelForCausalLM

    again = AutoModelForCausalLM.from_pretrained(str(tmp_path / "base"))
    x = torch.tensor([bcr.build_prompt(tok, ["12+34"])])
    torch.testing.assert_close(again(x).logits, model(x).logits)
