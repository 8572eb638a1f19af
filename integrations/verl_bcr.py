"""
integrations/verl_bcr.py: BCR in verl.

    python integrations/verl_bcr.py --data deepscaler-hub --n 3 --prompts 3000 --out bcr_train.parquet
    python -m verl.trainer.main_ppo data.train_files=bcr_train.parquet data.max_response_length=5120 \
        actor_rollout_ref.rollout.n=8 algorithm.adv_estimator=grpo \
        reward.custom_reward_function.path=integrations/verl_bcr.py reward.custom_reward_function.name=compute_score

verl calls compute_score(data_source, solution_str, ground_truth, extra_info) for each response,
with solution_str decoded without special tokens; our rows store the N golds as a JSON list string
in reward_model.ground_truth. verl does not say whether a response was cut by max_response_length:
an answer whose box the cut left open is no answer, but a bare answer cut mid-number would count,
so the BCR instruction asks for boxed answers. Set extra_info["thinking"] for thinking models.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root

from integrations import common  # noqa: E402


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """verl's custom reward: a dict whose "score" is the reward; its other keys are logged."""
    info = extra_info or {}
    return common.score(solution_str, ground_truth, finished=info.get("finished", True),
                        thinking=info.get("thinking", False))


def make_verl_rows(problems, n, num_prompts, seed=0, thinking=False):
    """verl's parquet rows: data_source, prompt (chat messages), reward_model.ground_truth, extra_info."""
    return [{"data_source": "bcr", "prompt": [{"role": "user", "content": r["content"]}], "ability": "math",
             "reward_model": {"style": "rule", "ground_truth": r["answers"]},
             "extra_info": {"ids": r["ids"], "n": n, "thinking": thinking}}
            for r in common.make_rows(problems, n, num_prompts, seed)]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Write BCR prompts as a verl parquet file (needs pandas + pyarrow).")
    ap.add_argument("--data", required=True)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--thinking", action="store_true")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import pandas  # verl's own dependency, not ours

    pandas.DataFrame(make_verl_rows(common.load(args.data), args.n, args.prompts, args.seed, args.thinking)) \
        .to_parquet(args.out)
    print(f"wrote {args.prompts} BCR prompts of {args.n} problems to {args.out}")
