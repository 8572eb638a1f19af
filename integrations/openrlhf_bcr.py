"""
integrations/openrlhf_bcr.py: BCR in OpenRLHF.

    python integrations/openrlhf_bcr.py --data deepscaler-hub --n 3 --prompts 3000 --out bcr_train.jsonl
    ... openrlhf.cli.train_ppo_ray --prompt_data bcr_train.jsonl --input_key prompt --label_key answers
        --apply_chat_template --generate_max_len 5120 --n_samples_per_prompt 8 --advantage_estimator group_norm
        --remote_rm_url integrations/openrlhf_bcr.py

OpenRLHF loads reward_func(queries, prompts, labels) from the file given as the remote reward URL;
a query is the prompt followed by the response (decoded with the chat template), a label our JSON
list of the N golds. It takes {"rewards", "scores", "extra_logs"}.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root

from integrations import common  # noqa: E402

THINKING = os.environ.get("BCR_THINKING", "0") == "1"  # set for models whose template opens <think>


def reward_func(queries, prompts, labels, **kwargs):
    rows = []
    for query, prompt, golds in zip(queries, prompts, labels):
        response = query[len(prompt):] if query.startswith(prompt) else query
        rows.append(common.score(response, golds, thinking=THINKING))
    rewards = torch.tensor([r["score"] for r in rows])
    return {"rewards": rewards, "scores": rewards,
            "extra_logs": {"answered": torch.tensor([r["answered"] for r in rows])}}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Write BCR prompts as an OpenRLHF JSONL file (prompt, answers).")
    ap.add_argument("--data", required=True)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.out, "w") as f:
        for r in common.make_rows(common.load(args.data), args.n, args.prompts, args.seed):
            f.write(json.dumps({"prompt": [{"role": "user", "content": r["content"]}], "answers": r["answers"]}) + "\n")
    print(f"wrote {args.prompts} BCR prompts of {args.n} problems to {args.out}")
