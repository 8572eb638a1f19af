"""
integrations/common.py: BCR's prompts and reward for RL engines that scale past one GPU.

The engines (verl, TRL, OpenRLHF) sample, batch and update; BCR only changes two things, and both
come from this repository's reward.py, so that an engine trains on exactly the reward bcr.py uses:
  - the data: N problems per prompt in the BCR format, with the N gold answers stored as a JSON
    list string (make_rows);
  - the reward: the mean over the N problems of per-problem correctness, with the budget-cut and
    thinking rules (score).
What makes a run BCR in an engine: the response length limit = the shared budget (e.g. 5120 for
N=3 on a 1.5B model), a group of G samples per prompt, no length term, the thinking flag set when
the chat template opens <think>.
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root

import data  # noqa: E402
import reward as rw  # noqa: E402


def make_rows(problems, n, num_prompts, seed=0):
    """num_prompts BCR rows of n problems each, drawn uniformly at random (seeded): dicts with the user
    message ("content"), the golds as a JSON list string ("answers") and the problems' ids."""
    rng = random.Random(seed)
    rows = []
    for _ in range(num_prompts):
        group = rng.sample(problems, n)
        content = rw.BCR_INSTRUCTION.format(n=n) + rw.problem_blocks([p["question"] for p in group])
        rows.append({"content": content, "answers": json.dumps([p["answer"] for p in group]),
                     "ids": [p["id"] for p in group], "n": n})
    return rows


def score(response, golds, finished=True, thinking=False):
    """BCR's reward of one response and what to log: {"score", "accuracy", "answered", "correct_k"...}.
    golds: a list, or its JSON string. score == accuracy: no length term."""
    golds = json.loads(golds) if isinstance(golds, str) else list(golds)
    answers = rw.final_answers(response, len(golds), finished, thinking)
    correct = rw.judge(answers, golds)
    out = {"score": sum(correct) / len(golds), "accuracy": sum(correct) / len(golds),
           "answered": sum(a is not None for a in answers) / len(golds)}
    out.update({f"correct_{k}": float(c) for k, c in enumerate(correct, 1)})
    return out


def load(spec, data_dir=data.DEFAULT_DATA_DIR):
    """Problems by the names bcr.py takes: 'toy', a .jsonl path, a benchmark name, a hub dataset."""
    return data.load_problems(spec, data_dir)
