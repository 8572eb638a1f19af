"""
integrations/trl_bcr.py: BCR in TRL's GRPOTrainer.

    from integrations.trl_bcr import bcr_dataset, make_reward_func
    train = bcr_dataset(problems, n=3, num_prompts=3000)          # a datasets.Dataset: prompt, answers
    GRPOTrainer(model=..., reward_funcs=make_reward_func(budget=5120), train_dataset=train,
                args=GRPOConfig(max_completion_length=5120, num_generations=8, ...))

TRL calls a reward function with prompts, completions, completion_ids and every dataset column as
keyword arguments, and takes a list of floats. A completion of max_completion_length tokens was cut
by the budget: only its complete lines count, as in bcr.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root

from integrations import common  # noqa: E402


def make_reward_func(budget, thinking=False):
    """The reward function for GRPOTrainer(reward_funcs=...), for a budget of `budget` new tokens."""
    def bcr_reward(prompts, completions, completion_ids, answers, **kwargs):
        out = []
        for completion, ids, golds in zip(completions, completion_ids, answers):
            text = completion if isinstance(completion, str) else completion[-1]["content"]  # conversational
            out.append(common.score(text, golds, finished=len(ids) < budget, thinking=thinking)["score"])
        return out
    bcr_reward.__name__ = "bcr"  # TRL logs each reward under its function's name
    return bcr_reward


def bcr_rows(problems, n, num_prompts, seed=0):
    """Rows in TRL's conversational format: "prompt" (chat messages) and "answers" (JSON list string)."""
    return [{"prompt": [{"role": "user", "content": r["content"]}], "answers": r["answers"]}
            for r in common.make_rows(problems, n, num_prompts, seed)]


def bcr_dataset(problems, n, num_prompts, seed=0):
    import datasets  # TRL's own dependency, not ours

    return datasets.Dataset.from_list(bcr_rows(problems, n, num_prompts, seed))
