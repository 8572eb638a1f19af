"""
Watch the toy base learn to read: how often it names problem j's numbers right, j = 2, 3, 4,
when the reference solutions of problems 1..j-1 are given (teacher forcing), on held-out N=4
prompts. Problem 1 is read from the start; the others form late and one after another, at a pace
the seed sets (docs/toy_world.md, issue #20).

    python scripts/toy_reading_probe.py --seed 2                  # a warm start, probed every 100 steps
    python scripts/toy_reading_probe.py --seed 2 --lr 2e-3 --steps 1400
    python scripts/toy_reading_probe.py --model out/toy-base-v11-s2   # a saved base, once
    python scripts/toy_reading_probe.py --model out/toy-base-v11-s2 --contexts   # where reading fails

"x2 0.95" means: after "### Problem 2\\nx2 = ", the greedy next token was problem 2's first number
in 95% of the prompts; "y2": its second number, after "x2 = <first> \\ny2 =". toy.reading_check
is the end-to-end test (greedy solutions, every number of every problem); this probe isolates the
lookups.

--contexts asks the same first-number lookup after other text: a reading drill's prompt or the BCR
prompt, followed by a drill's answer for problems 1..j-1 (names only) or by their reference
solutions, or by reference solutions whose names carry numbers found in no problem (11, 22, 28);
it prints, per context and j, how often the answer was right, another problem's first number, one
of the made-up numbers of the earlier names, or none of these (docs/toy_world.md, third session).
"""
import argparse
import collections
import os
import random
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import toy  # noqa: E402
from data import load_model  # noqa: E402
from reward import build_prompt  # noqa: E402


def greedy_next(model, tok, prompt, text):
    """The greedy next token (as text) after the prompt ids and the response text so far."""
    ids = torch.tensor([prompt + tok(text, add_special_tokens=False)["input_ids"]])
    return tok.decode([int(model(ids).logits[0, -1].argmax())])


# solutions worked exactly (care drawn as in training): every problem before j names its numbers
EXACT = {"exact": 1.0}


def probe(model, tok, groups, which="x"):
    """For j = 2..N: the fraction of prompts (groups of N questions) whose greedy token after the
    exact reference solutions of problems 1..j-1 (care drawn as in training, from random.Random(0) in
    every prompt) and "### Problem j\\nxj = " is problem j's first number; which="y": after
    "### Problem j\\nxj = a \\nyj =", its second number."""
    n = len(groups[0])
    right = [0] * (n - 1)
    with torch.no_grad():
        for qs in groups:
            prompt = build_prompt(tok, qs, "bcr")
            for j in range(2, n + 1):
                # the same reference solutions of problems 1..j-1 for every j: a fresh Random(0)
                done = toy.solution_text(qs[:j - 1], random.Random(0), effort=EXACT)
                a, b = map(str, toy.numbers(qs[j - 1]))
                ask, want = (f"x{j} = ", a + " ") if which == "x" else (f"x{j} = {a} \ny{j} =", " " + b)
                right[j - 2] += greedy_next(model, tok, prompt, f"{done}\n### Problem {j}\n{ask}") == want
    return [r / len(groups) for r in right]


CONTEXTS = ["drill prompt, drill answer", "BCR prompt, drill answer", "drill prompt, solutions",
            "BCR prompt, solutions", "BCR prompt, solutions, other names"]
OTHER = ["11", "22", "28"]  # first numbers for the names of problems 1..3 in the last context (LO..HI = 10..29)


def context_probe(model, tok, groups):
    """{context: {j: Counter of "right" / "problem i" / "a made-up name" / "none"}} for the
    first-number lookup of problem j (j = 2..N) after each of CONTEXTS. Groups holding a number of
    OTHER are skipped, so that the made-up names of the last context are numbers of no problem."""
    out = {c: {j: collections.Counter() for j in range(2, len(groups[0]) + 1)} for c in CONTEXTS}
    with torch.no_grad():
        for qs in groups:
            firsts = [str(toy.numbers(q)[0]) for q in qs]
            if set(firsts) & set(OTHER):
                continue
            for c in CONTEXTS:
                prompt = build_prompt(tok, qs, "bcr") if c.startswith("BCR") else toy.reading_prompt(tok, qs)
                for j in range(2, len(qs) + 1):
                    if "solutions" in c:
                        done = toy.solution_text(qs[:j - 1], random.Random(0), effort=EXACT)
                        if "other" in c:
                            for i in range(j - 1):
                                done = done.replace(f"x{i + 1} = {firsts[i]} ", f"x{i + 1} = {OTHER[i]} ")
                    else:
                        done = toy.reading_answer(qs, list(range(1, j)))
                    got = greedy_next(model, tok, prompt, f"{done}\n### Problem {j}\nx{j} = ")
                    hits = [i for i, a in enumerate(firsts, 1) if a + " " == got]  # the token "47 "
                    made_up = "other" in c and got in [f"{o} " for o in OTHER[:j - 1]]
                    out[c][j]["right" if j in hits else f"problem {hits[0]}" if hits else
                              "a made-up name" if made_up else "none"] += 1
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="warm-start seed")
    ap.add_argument("--steps", type=int, default=1100)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--model", default=None, help="probe this saved base once instead of warm-starting")
    ap.add_argument("--prompts", type=int, default=60, help="held-out N=4 prompts")
    ap.add_argument("--contexts", action="store_true", help="with --model: the lookup after other texts")
    args = ap.parse_args()
    if args.contexts and not args.model:
        ap.error("--contexts probes a saved base: give --model")
    held = toy.make_problems(4 * args.prompts, "test", 0)
    groups = [[p["question"] for p in held[i:i + 4]] for i in range(0, len(held), 4)]

    def show(model, tok):
        return "  ".join(f"{w}{j} {r:.2f}" for w in "xy" for j, r in enumerate(probe(model, tok, groups, w), 2))
    if args.contexts:
        for c, by_j in context_probe(*load_model(args.model), groups).items():
            print(f"{c:38s}", "  ".join(f"j={j}: " + ", ".join(f"{k} {v}" for k, v in sorted(cnt.items()))
                                          for j, cnt in by_j.items()))
    elif args.model:
        print(show(*load_model(args.model)))
    else:
        toy.warm_start(seed=args.seed, steps=args.steps, lr=args.lr, probe=show)


if __name__ == "__main__":
    main()
