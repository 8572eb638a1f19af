"""
Watch the toy base learn to read: how often it names problem j's numbers right, j = 2, 3, 4,
when the reference solutions of problems 1..j-1 are given (teacher forcing), on held-out N=4
prompts. Problem 1 is read from the start; the others form late and one after another, at a pace
the seed sets (docs/toy_world.md, issue #20).

    python scripts/toy_reading_probe.py --seed 2                  # a warm start, probed every 100 steps
    python scripts/toy_reading_probe.py --seed 2 --lr 2e-3 --steps 1400
    python scripts/toy_reading_probe.py --model out/toy-base-v6-s2   # a saved base, once

"x2 0.95" means: after "### Problem 2\\nx2 = ", the greedy next token was problem 2's first number
in 95% of the prompts; "y2": its second number, after "x2 = <first> \\ny2 =". toy.reading_check
is the end-to-end test (greedy solutions, every number of every problem); this probe isolates the
lookups.
"""
import argparse
import os
import random
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import toy  # noqa: E402
from data import load_model  # noqa: E402
from reward import build_prompt  # noqa: E402


def probe(model, tok, groups, which="x"):
    """For j = 2..N: the fraction of prompts (groups of N questions) whose greedy token after the
    reference solutions of problems 1..j-1 (care drawn as in training, from random.Random(0) in
    every prompt) and "### Problem j\\nxj = " is problem j's first number; which="y": after
    "### Problem j\\nxj = a \\nyj =", its second number."""
    n = len(groups[0])
    right = [0] * (n - 1)
    with torch.no_grad():
        for qs in groups:
            prompt, golds = build_prompt(tok, qs, "bcr"), [toy.needed_lines(q)[-1] for q in qs]
            for j in range(2, n + 1):
                # the same reference solutions of problems 1..j-1 for every j: a fresh Random(0)
                done = toy.solution_text(qs[:j - 1], golds[:j - 1], random.Random(0))
                a, b = qs[j - 1].split(" + ")
                ask, want = (f"x{j} = ", a + " ") if which == "x" else (f"x{j} = {a} \ny{j} =", " " + b)
                ids = torch.tensor([prompt + tok(f"{done}\n### Problem {j}\n{ask}",
                                                 add_special_tokens=False)["input_ids"]])
                right[j - 2] += tok.decode([int(model(ids).logits[0, -1].argmax())]) == want
    return [r / len(groups) for r in right]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="warm-start seed")
    ap.add_argument("--steps", type=int, default=1100)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--model", default=None, help="probe this saved base once instead of warm-starting")
    ap.add_argument("--prompts", type=int, default=60, help="held-out N=4 prompts")
    args = ap.parse_args()
    held = toy.make_problems(4 * args.prompts, "test", 0)
    groups = [[p["question"] for p in held[i:i + 4]] for i in range(0, len(held), 4)]

    def show(model, tok):
        return "  ".join(f"{w}{j} {r:.2f}" for w in "xy" for j, r in enumerate(probe(model, tok, groups, w), 2))
    if args.model:
        print(show(*load_model(args.model)))
    else:
        toy.warm_start(seed=args.seed, steps=args.steps, lr=args.lr, probe=show)


if __name__ == "__main__":
    main()
