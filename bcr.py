"""
bcr.py: Batched Contextual Reinforcement (arXiv 2604.02322), the training loop.

BCR is GRPO with a different prompt and a different reward (reward.py):

  - prompt: N problems at once, in one context, as "### Problem k" blocks, with the instruction to
    finish problem k with a line "Answer k: \\boxed{...}";
  - budget: one generation budget B (max new tokens) shared by the whole response;
  - reward: the mean over the N problems of per-problem correctness. No length term. A problem
    whose answer is not complete inside the budget scores 0.

Tokens cost something only when they crowd another problem's answer out of the budget: an
implicit budget. The model learns to drop the reasoning it does not need, keeping what it needs.

The loop, one step:
  1. draw P prompts of N problems each; sample G completions per prompt (eval.rollouts); with
     --stop-at-last-answer (the toy's default) a completion ends once its "Answer N:" line is
     complete, as a stop string would end it (see STOP_RULE below);
  2. reward each completion (reward.problem_correctness, reward.rollout_reward), advantages
     within each group of G (grpo.group_advantages);
  3. one GRPO update on the batch (grpo.grpo_step); log one JSON line; checkpoint now and then.

Baselines in the same loop, by flag:
  --n 1                                plain GRPO on one problem per prompt
  --length-penalty LAMBDA              explicit r - LAMBDA * len / B, the paper's collapsing baseline
  --reward truncation --target-len L   1(correct) * 1(len <= L)  (The Art of Efficient Reasoning)

Simplifications, on purpose: one process, one device, rollouts and training alternate (no async
actor); one optimizer step per rollout batch by default (so the policy ratio starts at 1 and
clipping only matters with --mini-batches > 1).

`python bcr.py` runs the embedded toy world (toy.py): warm start if no cached base model, evaluate
the base at N = 1..4 under the training budget and at N=1 with room to finish (the free lunch,
--lunch-budget), train on prompts of N = 1..4 problems in turn, evaluate again, print the table,
write <out>/scaling.json. A run killed at any point continues with --resume.
"""
import argparse
import json
import math
import os
import random
import signal
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

import ddp
import eval as ev
import grpo
import memory
import reward as rw
import toy
from data import CKPTS, DEFAULT_DATA_DIR, check_context, load_checkpoint, load_model, load_problems, save_checkpoint
from report import claims, print_claims, print_table, run_label

# STOP_RULE (--stop-at-last-answer, on for the toy, off for the hub presets): without it, BCR taught
# the toy model to write on after its last answer (a made-up "### Problem 4"). The reward cannot
# see those tokens, but the rollouts that answer fast, which get high rewards, are the ones with
# budget left to write on, so GRPO pushed the filler up with the rest (docs/toy_world.md). Off for
# models that think before answering: an answer line inside the thinking would stop them.

# ---------------------------------------------------------------------------------------------
# configuration: the toy preset is the argparse defaults; a hub preset lists what it changes, and why

HUB = dict(  # shared by the paper-scale presets
    data="deepmath",  # DeepMath-103K, the paper's training set (data.py drops answers the grader cannot check)
    group_by="difficulty",  # the paper: groups of N problems of similar difficulty, a fixed list (<out>/groups.json)
    n=[3],  # the paper trains at N=3 (the toy trains on N = 1..4 in turn)
    eval_data="math500",  # MATH-500: the paper's main benchmark, and quick to evaluate
    eval_n=[1, 2, 3, 4, 5],  # the paper's task-scaling range
    eval_problems=500, eval_budget=None, lunch_budget=None,  # the free lunch: N=1 under the training budget
    lr=1e-6,  # full fine-tuning of a 1.5B-4B model; the toy's 3e-4 would destroy it
    temperature=0.6,  # what DeepSeek and Qwen recommend for these models
    dtype="bfloat16", grad_checkpointing=True,  # memory: weights, activations of 4 x 5k-token rows
    stop_at_last_answer=False,  # thinking models may write "Answer k:" lines while they think
    steps=200, save_every=10,  # hours of GPU time: checkpoint often
)
PRESETS = {
    "toy": {},  # the defaults of parse_args
    "r1-1.5b": dict(HUB, model="deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",  # JustRL-DeepSeek-1.5B via --model
                    budget=5120,  # the paper's shared budget for N=3 on a 1.5B model
                    micro_batch=4),
    "qwen3-4b": dict(HUB, model="Qwen/Qwen3-4B-Thinking-2507",
                     budget=8000,  # the paper's budget for the 4B model
                     prompts=8, micro_batch=2),  # half the rollouts per step: 2.7x the weights
}


def build_parser():
    ap = argparse.ArgumentParser(description="Batched Contextual Reinforcement: GRPO on N problems per prompt "
                                             "with one shared token budget.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = ap.add_argument
    a("--preset", default="toy", help=f"one of {sorted(PRESETS)}; flags override it")
    a("--model", default="toy", help="'toy', a local directory, a .gguf file or a hub id")
    a("--data", default="toy", help="'toy', a .jsonl path (question, answer), a benchmark name or a hub dataset")
    a("--group-by", default="random", choices=["random", "difficulty"],
      help="a prompt's N problems: drawn at random, or from a fixed list of groups of similar difficulty")
    a("--data-dir", default=DEFAULT_DATA_DIR, help="where benchmark names are looked up")
    a("--n", type=int, nargs="+", default=[1, 2, 3, 4],
      help="problems per prompt (1 = plain GRPO); several (--n 1 2 3 4): the step's prompts take them in turn")
    a("--budget", type=int, default=toy.BUDGET, help="max new tokens for the whole response")
    a("--group", type=int, default=8, help="rollouts per prompt (G)")
    a("--prompts", type=int, default=16, help="prompts per step (P)")
    a("--steps", type=int, default=50)
    a("--lr", type=float, default=3e-4)
    a("--temperature", type=float, default=1.0)
    a("--micro-batch", type=int, default=128, help="rows per forward/backward")
    a("--mini-batches", type=int, default=1, help="optimizer steps per rollout batch")
    a("--beta", type=float, default=0.0, help="KL coefficient against the frozen base (0: none loaded)")
    a("--clip-low", type=float, default=0.2)
    a("--clip-high", type=float, default=0.28)
    a("--agg", default="token-mean", choices=grpo.AGGS)
    a("--no-std", action="store_true", help="advantages without dividing by the group std (Dr. GRPO)")
    a("--reward", default="bcr", choices=["bcr", "truncation"])
    a("--length-penalty", type=float, default=0.0, help="LAMBDA in r - LAMBDA * len / budget")
    a("--target-len", type=int, default=0, help="L in the truncation reward 1(correct)*1(len<=L)")
    a("--format-weight", type=float, default=0.0, help="weight of 'every problem has an answer'")
    a("--stop-at-last-answer", action=argparse.BooleanOptionalAction, default=True,
      help="end a response once its 'Answer N:' line is complete (see STOP_RULE in bcr.py)")
    a("--thinking", action=argparse.BooleanOptionalAction, default=None,
      help="answers count only after </think> (default: when the chat template opens <think>)")
    a("--instruction", default=None, help="the BCR instruction, a format string with {n} (reward.BCR_INSTRUCTION)")
    a("--eval-data", default="toy", help="held-out problems to evaluate on (toy: its test split)")
    a("--eval-n", type=int, nargs="+", default=[1, 2, 3, 4])
    a("--eval-problems", type=int, default=toy.EVAL_PROBLEMS)
    a("--eval-budget", type=int, default=None, help="budget at evaluation (default: the training budget)")
    a("--lunch-budget", type=int, default=toy.LUNCH_BUDGET,
      help="budget of the free lunch's N=1 evaluation, a single problem with room to finish (none: the "
           "N=1 row of the table)")
    a("--no-eval", action="store_true", help="train only")
    a("--dtype", default="float32", choices=["float32", "bfloat16"])
    a("--grad-checkpointing", action=argparse.BooleanOptionalAction, default=False)
    a("--save-every", type=int, default=20)
    a("--fused-logprobs", action="store_true", help="training log-probs with the optional Triton kernel (CUDA)")
    a("--seed", type=int, default=0)
    a("--base-seed", type=int, default=0, help="seed of the toy warm start (cached per seed)")
    a("--out", default=None, help="run directory (default out/<preset>)")
    a("--resume", action="store_true", help="continue from <out>/ckpt")
    a("--device", default=None, help="default: cuda if available, else cpu")
    a("--plan", action="store_true", help="print the memory plan (memory.py) from the model's config and exit")
    a("--gpu-mem", type=float, default=None, help="GiB the run may use on the GPU (default: its free memory)")
    return ap


def parse_args(argv=None):
    """Flags over the preset over the defaults; every value checked before anything is loaded."""
    ap = build_parser()
    preset = ap.parse_known_args(argv)[0].preset
    if preset not in PRESETS:
        ap.error(f"--preset {preset!r}: unknown preset; choose from {sorted(PRESETS)}")
    known = vars(ap.parse_args([]))
    bad = sorted(set(PRESETS[preset]) - set(known))
    if bad:
        ap.error(f"preset {preset!r} sets unknown keys {bad}")
    ap.set_defaults(**PRESETS[preset])
    args = ap.parse_args(argv)
    args.out = args.out or os.path.join("out", args.preset)
    args.eval_budget = args.eval_budget or args.budget
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.rank, args.world = 0, int(os.environ.get("WORLD_SIZE", "1"))  # torchrun sets WORLD_SIZE (ddp.py)
    args.rollout_rows = args.eval_rows = None  # row chunks: memory.check_run plans them on a GPU
    for err in check_args(args):
        ap.error(err)
    return args


def check_args(args):
    """One message per bad value, naming the flag, the value and what is allowed."""
    def need(ok, flag, allowed):
        return [] if ok else [f"{flag} {getattr(args, flag[2:].replace('-', '_'))!r}: must be {allowed}"]
    errs = need(min(args.n) >= 1, "--n", "a list of N >= 1") + need(args.budget >= 1, "--budget", ">= 1 token")
    errs += need(args.group_by == "random" or len(args.n) == 1, "--n", "one N with --group-by difficulty")
    errs += need(args.group >= 2, "--group", ">= 2 (advantages compare the rollouts of a group)")
    errs += need(args.prompts >= 1, "--prompts", ">= 1") + need(args.steps >= 0, "--steps", ">= 0")
    errs += need(args.lr > 0, "--lr", "> 0") + need(args.micro_batch >= 1, "--micro-batch", ">= 1")
    errs += need(args.temperature > 0, "--temperature", "> 0 for training (0 is greedy: a group's rollouts "
                                                        "would all be the same, with no learning signal)")
    errs += need(1 <= args.mini_batches <= args.prompts * args.group, "--mini-batches",
                 f"between 1 and the {args.prompts * args.group} rollouts of a step")
    errs += need(args.beta >= 0, "--beta", ">= 0") + need(args.save_every >= 1, "--save-every", ">= 1")
    errs += need(0 <= args.clip_low < 1 and args.clip_high >= 0, "--clip-low", "in [0, 1), with --clip-high >= 0")
    errs += need(args.eval_budget >= 1, "--eval-budget", ">= 1 token")
    errs += need(args.lunch_budget is None or args.lunch_budget >= 1, "--lunch-budget", ">= 1 token")
    errs += need(min(args.eval_n) >= 1, "--eval-n", "a list of N >= 1")
    errs += need(args.eval_problems >= 1, "--eval-problems", ">= 1")
    errs += need(0 <= args.format_weight <= 1, "--format-weight", "in [0, 1]")
    errs += need(args.length_penalty >= 0, "--length-penalty", ">= 0")
    errs += need(args.reward != "truncation" or args.target_len > 0, "--target-len", "> 0 with --reward truncation")
    for flag, v in (("--data", args.data), ("--eval-data", args.eval_data), ("--model", args.model)):
        if v.endswith((".json", ".jsonl", ".gguf")) and not os.path.exists(v):
            errs.append(f"{flag} {v!r}: no such file")
    if args.world > 1 and (args.prompts % args.world or args.mini_batches != 1):
        errs.append(f"--prompts {args.prompts} over {args.world} processes: must divide evenly, with --mini-batches 1")
    if args.fused_logprobs and grpo.triton is None:
        errs.append("--fused-logprobs needs triton: pip install triton")
    if args.resume and not any(os.path.exists(os.path.join(args.out, d, "train_state.pt")) for d in CKPTS):
        errs.append(f"--resume: no checkpoint in {os.path.join(args.out, 'ckpt')}")
    return errs


# ---------------------------------------------------------------------------------------------
# resume (checkpoints are written and read by data.py)


def restore_rng(state, rng):
    rng.setstate(state["py_rng"])
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["np_rng"])


# ---------------------------------------------------------------------------------------------
# one training step


def make_batch(roll, pad_id, device):
    """[left-padded prompt | completion] tensors for the trainer, aligned with the sampler's log-probs."""
    B, T = roll.completion_ids.shape
    L = max(len(p) for p in roll.prompt_ids)
    ids = torch.full((B, L + T), pad_id, dtype=torch.long)
    att = torch.zeros((B, L + T), dtype=torch.long)
    for i, p in enumerate(roll.prompt_ids):
        ids[i, L - len(p):L] = torch.tensor(p)
        att[i, L - len(p):L] = 1
    ids[:, L:] = roll.completion_ids
    cmask = torch.zeros((B, L + T), dtype=torch.long)
    cmask[:, L:] = (torch.arange(T)[None, :] < roll.lengths[:, None]).long()  # EOS included
    att = att + cmask
    sampler = torch.zeros((B, L + T))
    sampler[:, L:] = roll.logprobs
    return {"input_ids": ids.to(device), "attention_mask": att.to(device), "completion_mask": cmask.to(device),
            "sampler_logp": sampler.to(device)}


@torch.no_grad()
def no_grad_logprobs(model, batch, args):
    """grpo.token_logprobs of the batch's completions, micro-batch by micro-batch, without gradients."""
    m, keys = args.micro_batch, ("input_ids", "attention_mask", "completion_mask")
    return torch.cat([grpo.token_logprobs(model, *(batch[k][s:s + m] for k in keys), args.temperature,
                                          fused=args.fused_logprobs)
                      for s in range(0, batch["input_ids"].shape[0], m)])


def train_step(model, ref, tok, opt, problems, rng, step, args):
    """Rollouts, rewards, advantages and GRPO updates. Returns the step's log record."""
    t0 = time.time()
    if args.group_by == "random":  # prompt j holds args.n[j % len(args.n)] problems
        groups = [rng.sample(problems, args.n[j % len(args.n)]) for j in range(args.prompts)]
    else:  # P groups of the fixed list that data.group_problems made (<out>/groups.json)
        groups = rng.sample(problems.groups, args.prompts)
    mine = ddp.share(range(args.prompts), args.rank, args.world)  # this rank's prompts (all of them: one process)
    groups = [groups[i] for i in mine]
    prompts = [rw.build_prompt(tok, [p["question"] for p in g], instruction=args.instruction) for g in groups]
    model.eval()
    seeds = [(args.seed * 1_000_003 + step) * 4096 + i for i in mine]  # per prompt: the same on any rank
    ns = [len(g) for g in groups]
    roll = ev.rollouts(model, tok, prompts, ns, args.group, args.budget, args.temperature, seeds,
                       args.stop_at_last_answer, max_rows=args.rollout_rows)
    t_roll = time.time() - t0
    rewards, correct_all, answered = [], [], []
    for i, text in enumerate(roll.texts(tok)):
        golds = [p["answer"] for p in groups[i // args.group]]
        n = ns[i // args.group]
        answers = rw.final_answers(text, n, bool(roll.finished[i]), args.thinking)
        correct = rw.judge(answers, golds)
        fmt = sum(a is not None for a in answers) / n
        rewards.append(rw.rollout_reward(correct, int(roll.lengths[i]), args.budget, args.length_penalty,
                                         args.target_len if args.reward == "truncation" else 0, fmt,
                                         args.format_weight))
        correct_all.append(sum(correct) / n)
        answered.append(fmt)
    R = torch.tensor(rewards)
    batch = make_batch(roll, tok.pad_token_id, args.device)
    batch["adv"] = grpo.group_advantages(R, args.group, scale_by_std=not args.no_std).to(args.device)
    # pi_old is the trainer's own forward, not the sampler's log-probs (in bf16 those differ: other kernels
    # and shapes), so that the ratio is exactly 1 on the on-policy step. With one optimizer step per batch
    # (--mini-batches 1) that forward is the update's own, its gradient stopped (grpo.py, "On-policy");
    # with several, later mini-batches step after earlier updates and need pi_old from a forward before
    # any. The sampler's log-probs (make_batch) are kept to log the mismatch (grpo.accumulate_gradients).
    model.train()
    batch["old_logp"] = no_grad_logprobs(model, batch, args) if args.mini_batches > 1 else None
    if ref is not None:  # the frozen base's log-probs, micro-batched the same way
        batch["ref_logp"] = no_grad_logprobs(ref, batch, args)
    B, B_all = R.numel(), ddp.total(R.numel())
    mb = math.ceil(B / args.mini_batches)
    stats = []
    for s in range(0, B, mb):  # --mini-batches > 1: several optimizer steps per rollout batch
        sub = {k: None if v is None else v[s:s + mb] for k, v in batch.items()}
        totals = (ddp.total(sub["completion_mask"].sum().item()), ddp.total(len(sub["adv"])))  # all ranks'
        st = grpo.grpo_step(model, opt, sub, args.micro_batch, args.clip_low, args.clip_high, args.beta, args.agg,
                            max_len=args.budget, temperature=args.temperature, fused=args.fused_logprobs,
                            totals=totals, sum_grads=ddp.sum_grads)
        stats.append((len(sub["adv"]) / B_all, st))  # weights summing to 1 over mini-batches and ranks
    model.eval()
    # the record of the whole batch: every rank's rows (one process: its own), then means over them
    parts = ddp.gather({"reward": rewards, "accuracy": correct_all, "answered": answered, "stats": stats,
                        "length": roll.lengths.tolist(), "finished": roll.finished.tolist(),
                        "n": [ns[i // args.group] for i in range(len(rewards))]})
    every = {k: [x for p in parts for x in p[k]] for k in parts[0]}
    R, n_tok = torch.tensor(every["reward"]), sum(every["length"])
    mean = {k: sum(w * st[k] for w, st in every["stats"]) for k in ("clip_frac", "kl_ref", "approx_kl_old",
                                                                     "grad_norm")}
    first = [p["stats"][0][1] for p in parts]  # each rank's first (on-policy) optimizer step
    return {
        "step": step, "reward": R.mean().item(), "accuracy": float(np.mean(every["accuracy"])),
        "answered": float(np.mean(every["answered"])),
        "tokens_per_problem": n_tok / sum(every["n"]),
        **({f"tokens_per_problem_n{k}": sum(x for x, m in zip(every["length"], every["n"]) if m == k)
            / sum(m for m in every["n"] if m == k) for k in sorted(set(every["n"]))} if len(args.n) > 1 else {}),
        "truncation_rate": 1 - float(np.mean(every["finished"])),
        "zero_var_groups": (R.view(-1, args.group).std(-1) == 0).float().mean().item(),
        **mean, "ratio_max": max(st["ratio_max"] for _, st in every["stats"]), "optimizer_steps": len(stats),
        "on_policy_ratio_dev": max(max(st["ratio_max"] - 1, 1 - st["ratio_min"]) for st in first),
        # the sampler against the trainer, over the rows of each rank's first optimizer step (the others
        # step after an update): their mean, and the largest
        "sampler_logp_mismatch_mean": float(np.mean([st["sampler_logp_mismatch_mean"] for st in first])),
        "sampler_logp_mismatch_max": max(st["sampler_logp_mismatch_max"] for st in first),
        "lr": opt.param_groups[0]["lr"], "step_seconds": time.time() - t0,
        "rollout_tokens_per_s": n_tok / max(t_roll, 1e-9),
    }


# ---------------------------------------------------------------------------------------------
# the whole run


def _step_of(line):
    """The step of a log line; infinity for a line cut by a kill."""
    return json.loads(line)["step"] if line.endswith("\n") else float("inf")


def train(args, model, tok, problems, ref=None, state=None, log=print):
    """BCR training of `model` on `problems`, from checkpoint `state` when resuming. Logs one JSON
    line per step to <out>/log.jsonl; returns the trained model. Ctrl-C stops after the current
    step, with a checkpoint."""
    os.makedirs(args.out, exist_ok=True)
    if max(args.n) > len(problems):
        raise ValueError(f"--n {max(args.n)} is larger than the {len(problems)} training problems")
    check_context(model, tok, problems, max(args.n), args.budget, args.instruction)
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    opt = grpo.MasterAdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    start = 0
    if state is not None:
        opt.load_state_dict(state["opt"])
        restore_rng(state, rng)
        start = state["step"]
        log(f"resumed at step {start}")
    if args.grad_checkpointing:
        # transformers >= 5.2x calls it activation checkpointing; older 5.x only has the old name
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    log_path = os.path.join(args.out, "log.jsonl") if args.rank == 0 else os.devnull  # rank 0 logs and saves
    if args.rank == 0:  # on resume keep the records of the steps the checkpoint holds (a kill may have logged more)
        kept = [x for x in open(log_path) if _step_of(x) < start] if state and os.path.exists(log_path) else []
        with open(log_path + ".tmp", "w") as f:
            f.writelines(kept)
        os.replace(log_path + ".tmp", log_path)
    stop = []  # Ctrl-C: finish the step, save, stop; a second Ctrl-C stops at once

    def on_sigint(*_):
        stop.append(1)
        signal.signal(signal.SIGINT, old_handler)
    old_handler = signal.signal(signal.SIGINT, on_sigint)
    bar = tqdm(range(start, args.steps), desc="BCR", initial=start, total=args.steps, dynamic_ncols=True,
               disable=args.rank > 0 or not sys.stderr.isatty() and os.environ.get("BCR_BAR") != "1")
    with open(log_path, "a") as logf:
        for step in bar:
            rec = train_step(model, ref, tok, opt, problems, rng, step, args)
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            bar.set_postfix(reward=f"{rec['reward']:.3f}", acc=f"{rec['accuracy']:.3f}",
                            tok=f"{rec['tokens_per_problem']:.1f}", trunc=f"{rec['truncation_rate']:.2f}")
            stopping = ddp.total(len(stop)) > 0  # every rank stops after the same step
            if bar.disable and args.rank == 0 and (step % 5 == 0 or step == args.steps - 1):  # no bar: log lines
                log(f"step {step:4d}  reward {rec['reward']:.3f}  acc {rec['accuracy']:.3f}  "
                    f"tokens/problem {rec['tokens_per_problem']:.1f}  trunc {rec['truncation_rate']:.2f}  "
                    f"{rec['step_seconds']:.1f}s")
            if ((step + 1) % args.save_every == 0 or step == args.steps - 1 or stopping) and args.rank == 0:
                try:
                    save_checkpoint(args.out, model, tok, opt, step + 1, rng)
                except OSError as e:  # a full disk: say so and stop, no traceback
                    raise SystemExit(f"bcr.py: {e}") from e
            if stopping:
                log(f"interrupted: checkpoint of step {step + 1} in {args.out}/ckpt; continue with --resume")
                break
    signal.signal(signal.SIGINT, old_handler)
    return model


def main(argv=None):
    args = parse_args(argv)
    if memory.check_run(args):  # --plan: print it and stop; on a GPU: does the run fit? (before any load)
        return None
    args.rank, args.world, args.device = ddp.setup(args.device)
    torch.manual_seed(args.seed)
    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    if args.rank > 0:  # rank 0 loads first: a toy warm start or a download is then cached for the others
        ddp.barrier()
    # the data first: a bad file fails in a second, not after the warm start or the base evaluation
    try:
        problems = load_problems(args.data, args.data_dir, "train", seed=args.base_seed, group_by=args.group_by,
                                 group_n=args.n[0], group_seed=args.seed,
                                 groups_path=os.path.join(args.out, "groups.json"))
        test = [] if args.no_eval else load_problems(args.eval_data, args.data_dir, "test", seed=args.base_seed,
                                                     n=args.eval_problems)[: args.eval_problems]
    except (ValueError, FileNotFoundError) as e:  # the user's data: an error message, not a traceback
        build_parser().error(str(e))
    if test and max(args.eval_n) > len(test):
        build_parser().error(f"--eval-n {max(args.eval_n)}: only {len(test)} problems to evaluate on")
    if max(args.n) > len(problems):
        build_parser().error(f"--n {max(args.n)}: only {len(problems)} training problems in {args.data!r}")
    state = None
    if args.resume:  # the checkpoint's weights; the base is loaded again only as the KL reference
        model, tok, state = load_checkpoint(args.out, args.device, args.dtype)
    else:
        model, tok = load_model(args.model, args.device, args.dtype, args.base_seed)
    if args.rank == 0:
        ddp.barrier()
    if args.thinking is None:
        args.thinking = rw.opens_thinking(tok)
    if args.rank == 0:
        with open(os.path.join(args.out, "args.json"), "w") as f:
            json.dump(vars(args), f, indent=1)
    ref = load_model(args.model, args.device, args.dtype, args.base_seed)[0].requires_grad_(False) \
        if args.beta > 0 else None
    evaluate = dict(ns=args.eval_n, budget=args.eval_budget, temperature=args.temperature, seed=toy.EVAL_SEED,
                    stop_at_last_answer=args.stop_at_last_answer, thinking=args.thinking,
                    batch_rows=args.eval_rows)
    # the free lunch: N=1 with room to finish, as a single problem is usually run (--lunch-budget)
    lunch = dict(evaluate, ns=[1], budget=args.lunch_budget) if args.lunch_budget else None
    res, base_path, base_lunch = {}, os.path.join(args.out, "base_eval.json"), None
    evaluating = not args.no_eval and args.rank == 0  # under torchrun rank 0 evaluates
    if evaluating:
        if args.resume and os.path.exists(base_path):
            saved = json.load(open(base_path))  # {table, lunch}; a run from before --lunch-budget: the table
            res["base"], base_lunch = (saved["table"], saved["lunch"]) if "table" in saved else (saved, None)
            print(f"base model: evaluation read from {base_path}")
        else:
            print(f"evaluating the base model on {len(test)} held-out problems at N = {args.eval_n} "
                  f"(budget {args.eval_budget})" + (f" and at N=1 (budget {args.lunch_budget})" if lunch else ""))
            base = load_model(args.model, args.device, args.dtype, args.base_seed)[0] if args.resume else model
            res["base"] = ev.scaling_table(base, tok, test, **evaluate)
            base_lunch = ev.scaling_table(base, tok, test, **lunch)["1"] if lunch else None
            with open(base_path, "w") as f:
                json.dump({"table": res["base"], "lunch": base_lunch}, f, indent=1)
    ddp.barrier()
    model = train(args, model, tok, problems, ref, state)
    if evaluating:
        label = run_label(args)
        print(f"evaluating the {label} model")
        res["bcr"] = ev.scaling_table(model, tok, test, **evaluate)
        if lunch and base_lunch:
            res["lunch"] = {"budget": args.lunch_budget, "base": base_lunch,
                            "bcr": ev.scaling_table(model, tok, test, **lunch)["1"]}
        print_table(res, args.eval_n, label)
        res["claims"] = claims(res, args.eval_n)
        print_claims(res["claims"], args.eval_n)
        with open(os.path.join(args.out, "scaling.json"), "w") as f:
            json.dump(res, f, indent=1)
        print(f"wrote {os.path.join(args.out, 'scaling.json')}")
    print(f"total time {time.time() - t0:.0f}s")
    return res


if __name__ == "__main__":
    main()
