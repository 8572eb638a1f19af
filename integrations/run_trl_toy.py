"""
integrations/run_trl_toy.py: a few real GRPOTrainer steps of TRL on the toy world, with BCR prompts
and our reward (CPU, minutes). Needs `pip install trl` (not a dependency of this repository).

    python integrations/run_trl_toy.py --model out/toy-base-v11-s0 --steps 5
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root

import trl  # noqa: E402  (the engine: this script's own dependency)

import data  # noqa: E402
import toy  # noqa: E402
from integrations import trl_bcr as bcr_trl  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--model", default="toy", help="'toy' (the cached base, warm-started if absent) or a directory")
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--n", type=int, default=3)
ap.add_argument("--out", default="out/trl-toy")
args = ap.parse_args()
model, tok = data.load_model(args.model)
train = bcr_trl.bcr_dataset(toy.make_problems(10_000, "train", 0), args.n, 64 * args.steps)
config = trl.GRPOConfig(output_dir=args.out, max_completion_length=toy.BUDGET, num_generations=8,
                        per_device_train_batch_size=16, max_steps=args.steps, learning_rate=3e-4, temperature=1.0,
                        beta=0.0, logging_steps=1, report_to=[], use_cpu=True, bf16=False, save_strategy="no")
trainer = trl.GRPOTrainer(model=model, processing_class=tok, reward_funcs=bcr_trl.make_reward_func(toy.BUDGET),
                          args=config, train_dataset=train)
trainer.train()
for rec in trainer.state.log_history:
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in rec.items()})
