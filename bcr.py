"""
bcr.py: Batched Contextual Reinforcement (arXiv 2604.02322), the method and its training loop.

BCR is GRPO with a different prompt and a different reward:

  - prompt: N problems at once, in one context, as "### Problem k" blocks, with the instruction to
    finish problem k with a line "Answer k: \\boxed{...}";
  - budget: one generation budget B (max new tokens) shared by the whole response;
  - reward: the mean over the N problems of per-problem correctness. No length term. A problem
    whose answer is not complete inside the budget scores 0.

Tokens therefore cost something only when they crowd another problem's answer out of the budget:
an implicit budget. The model learns to drop the reasoning it does not need (re-checks, restated
results) while keeping the steps that make answers right.

The loop, one step:
  1. draw P prompts of N problems each; sample G completions per prompt (sample.generate); with
     --stop-at-last-answer (the toy's default) a completion ends once its "Answer N:" line is
     complete, as a stop string would end it (end_at_last_answer says why);
  2. reward each completion (reward.score), advantages within each group of G (grpo.group_advantages);
  3. one GRPO update on the batch (grpo.grpo_step); log one JSON line; checkpoint now and then.

Baselines in the same loop, by flag:
  --n 1                            plain GRPO on one problem per prompt
  --length-penalty LAMBDA          explicit r - LAMBDA * len / L_max (L_max = budget), the paper's
                                   collapsing baseline
  --reward truncation --target-len L   1(correct) * 1(len <= L)  (The Art of Efficient Reasoning)

Simplifications, on purpose: one process, one device, rollouts and training alternate (no async
actor); one optimizer step per rollout batch by default (so the policy ratio starts at 1 and
clipping only matters with --mini-batches > 1); the old policy's log-probs are the sampler's.

`python bcr.py` with no argument runs the embedded toy world (toy.py): warm start if no cached base
model, evaluate the base model at N = 1..4, train, evaluate again, print the table and write
scaling.json in the run directory.
"""
import argparse
import copy
import json
import math
import os
import random
import shutil
import sys
import time

import numpy as np
import torch

import grpo
import reward as rw
import sample

# ---------------------------------------------------------------------------------------------
# the N-problem prompt


def build_prompt(tokenizer, questions, style="bcr", system=None):
    """Token ids of the prompt for one or more problems, through the tokenizer's chat template.

    style "bcr": N problems as "### Problem k" blocks and the instruction to end problem k with
    "Answer k: \\boxed{answer}" (also used for N=1). style "standard": the usual single-problem
    prompt, "put the final answer in \\boxed{}".
    """
    n = len(questions)
    if n == 0:
        raise ValueError("build_prompt: no questions")
    if style == "standard":
        if n != 1:
            raise ValueError(f"the standard prompt holds one problem, got {n}")
        content = f"Solve the problem. Put the final answer in \\boxed{{}}.\n\n{questions[0]}"
    elif style == "bcr":
        head = f"Solve these {n} problems in order. End problem k with the line: Answer k: \\boxed{{answer}}"
        content = head + problem_blocks(questions)
    else:
        raise ValueError(f"unknown prompt style {style!r} (use 'bcr' or 'standard')")
    return chat_prompt_ids(tokenizer, content, system)


def problem_blocks(questions):
    """The N problems of a BCR prompt: "\n\n### Problem k\n{question}" for k = 1..N."""
    return "".join(f"\n\n### Problem {k}\n{q}" for k, q in enumerate(questions, 1))


def chat_prompt_ids(tokenizer, content, system=None):
    """Token ids of one user turn (after an optional system turn), ready for the assistant's reply."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if not isinstance(ids, list):  # some versions return a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


# ---------------------------------------------------------------------------------------------
# reward


def complete_part(text, finished):
    """The part of a response whose answers count: all of it if the model stopped by itself,
    else everything up to its last full line (an answer cut by the budget is no answer)."""
    if finished:
        return text
    cut = text.rfind("\n")
    return text[:cut] if cut != -1 else ""


def problem_correctness(text, golds, finished, style="bcr"):
    """Per-problem correctness [bool] * N of one response."""
    text = complete_part(text, finished)
    if style == "standard":
        return [rw.grade(text, golds[0])]
    return rw.score(text, golds)


def last_answer_end(text, n):
    """Character offset just past the answer of the line "Answer n:" (the close of its \\boxed{...},
    else the end of the line), None while that answer is not complete in `text`."""
    m = next((m for m in rw._ANSWER_LINE_RE.finditer(text) if int(m.group(1)) == n), None)
    if m is None:
        return None
    line_end = text.find("\n", m.end())
    seg = text[m.end():] if line_end == -1 else text[m.end():line_end]
    boxes = [b for b in rw.find_boxes(seg) if seg[b[1] - 1] == "}"]  # "\\boxed 5" may still grow to "\\boxed 52"
    if boxes:
        return m.end() + boxes[0][1]
    return None if line_end == -1 else line_end


def end_at_last_answer(roll, tokenizer, n):
    """Stop each completion of `roll` once its "Answer n:" line is complete (an EOS right after it is
    kept), as a stop string would. In place; returns roll.

    Why: the reward cannot see what a response writes after its last answer, but GRPO would still
    push those tokens up or down with the rest of the rollout; in the toy world the rollouts that
    answer fast are also the ones with budget left over, so writing on past the last answer (a
    made-up "### Problem 4") was reinforced and took over, at every N (README). Not for models that
    think before answering (an answer line inside the thinking would stop them): off by default
    for the hub presets.
    """
    eos = tokenizer.eos_token_id
    for i in range(len(roll.lengths)):
        toks = roll.tokens(i)
        if last_answer_end(tokenizer.decode(toks, skip_special_tokens=True), n) is None:
            continue
        lo, hi = 1, len(toks)  # the shortest prefix that holds the complete answer
        while lo < hi:
            mid = (lo + hi) // 2
            if last_answer_end(tokenizer.decode(toks[:mid], skip_special_tokens=True), n) is None:
                lo = mid + 1
            else:
                hi = mid
        roll.cut(i, lo + 1 if lo < len(toks) and toks[lo] == eos else lo)
    return roll


def rollout_reward(correct, length, args):
    """The scalar reward of one rollout (see the module docstring for each kind)."""
    acc = sum(correct) / len(correct)
    if args.reward == "truncation":
        return acc * float(length <= args.target_len)
    r = acc
    if args.length_penalty:
        r = r - args.length_penalty * length / args.budget
    return r


# ---------------------------------------------------------------------------------------------
# data


BENCHMARKS = {  # names resolved in --data-dir (the layout of ../shared/data)
    "gsm8k": "gsm8k_test.jsonl", "gsm8k_train": "gsm8k_train.jsonl", "math500": "math500.jsonl",
    "aime24": "aime24.jsonl", "aime25": "aime25.jsonl", "amc23": "amc23.jsonl", "minerva": "minerva.jsonl",
    "olympiadbench": "olympiadbench.jsonl", "deepscaler": "deepscaler_subset.jsonl",
}
HUB_DATASETS = {  # name -> (repo, file, question field, answer field), fetched when online
    "deepscaler-hub": ("agentica-org/DeepScaleR-Preview-Dataset", "deepscaler.json", "problem", "answer"),
    "math500-hub": ("HuggingFaceH4/MATH-500", "test.jsonl", "problem", "answer"),
}
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shared", "data")


def read_problems(path, question_field="question", answer_field="answer"):
    """Problems from a JSONL file (one object per line) or a JSON array, as {"id","question","answer"}."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        rows = [(i + 1, r) for i, r in enumerate(json.loads(text))]
    else:
        rows = []
        for i, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                rows.append((i, json.loads(line)))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e.msg}): {line[:80]!r}") from None
    out = []
    for i, r in rows:
        if not isinstance(r, dict):
            raise ValueError(f"{path}:{i}: expected a JSON object, got {type(r).__name__}")
        for field in (question_field, answer_field):
            if field not in r:
                raise ValueError(f"{path}:{i}: missing field {field!r} (has {sorted(r)})")
        out.append({"id": str(r.get("id", f"{os.path.basename(path)}-{i}")), "question": str(r[question_field]),
                    "answer": str(r[answer_field])})
    if not out:
        raise ValueError(f"{path}: no problems")
    return out


def load_problems(spec, data_dir=DEFAULT_DATA_DIR, split="train", seed=0, n=None):
    """'toy', a benchmark name in data_dir, a .json/.jsonl path, or a named hub dataset."""
    if spec == "toy":
        import toy

        return toy.make_problems(n or (100_000 if split == "train" else 600), split, seed)
    if os.path.exists(spec):
        return read_problems(spec)
    if spec in BENCHMARKS:
        path = os.path.join(data_dir, BENCHMARKS[spec])
        if not os.path.exists(path):
            raise FileNotFoundError(f"benchmark {spec!r}: {path} not found (set --data-dir)")
        return read_problems(path)
    if spec in HUB_DATASETS:
        from huggingface_hub import hf_hub_download

        repo, fname, qf, af = HUB_DATASETS[spec]
        return read_problems(hf_hub_download(repo, fname, repo_type="dataset"), qf, af)
    raise ValueError(f"unknown data {spec!r}: use 'toy', a .jsonl path, one of {sorted(BENCHMARKS)} "
                     f"(in --data-dir) or one of {sorted(HUB_DATASETS)}")


# ---------------------------------------------------------------------------------------------
# presets

PRESETS = {
    # the embedded toy world: trains in minutes on 2 CPU cores
    "toy": dict(model="toy", data="toy", eval_data="toy", n=3, budget=150, group=8, prompts=16, steps=40, lr=3e-4,
                temperature=1.0, micro_batch=128, eval_n=[1, 2, 3, 4], eval_problems=600, eval_budget=None,
                dtype="float32", beta=0.0, save_every=20, stop_at_last_answer=True),
    # paper scale, one GPU: JustRL-DeepSeek-1.5B is a drop-in for the distilled R1 via --model
    "r1-1.5b": dict(model="deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", data="deepscaler-hub", eval_data="math500", n=3, budget=5120,
                    group=8, prompts=16, steps=200, lr=1e-6, temperature=0.6, micro_batch=4, eval_n=[1, 2, 3, 4, 5],
                    eval_problems=500, eval_budget=None, dtype="bfloat16", beta=0.0, save_every=10,
                    stop_at_last_answer=False),
    "qwen3-4b": dict(model="Qwen/Qwen3-4B-Thinking-2507", data="deepscaler-hub", eval_data="math500", n=3, budget=8000, group=8,
                     prompts=8, steps=200, lr=1e-6, temperature=0.6, micro_batch=2, eval_n=[1, 2, 3, 4, 5],
                     eval_problems=500, eval_budget=None, dtype="bfloat16", beta=0.0, save_every=10,
                     stop_at_last_answer=False),
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="Batched Contextual Reinforcement: GRPO on N problems per prompt "
                                             "with one shared token budget.")
    ap.add_argument("--preset", default="toy", help=f"one of {sorted(PRESETS)}; flags below override it")
    ap.add_argument("--model", help="'toy', a local directory or a hub id")
    ap.add_argument("--data", help="'toy', a .jsonl path (question, answer), a benchmark name or a hub dataset")
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    ap.add_argument("--n", type=int, help="problems per prompt (1 = plain GRPO)")
    ap.add_argument("--budget", type=int, help="max new tokens for the whole response")
    ap.add_argument("--group", type=int, help="rollouts per prompt (G)")
    ap.add_argument("--prompts", type=int, help="prompts per step (P)")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--temperature", type=float)
    ap.add_argument("--micro-batch", type=int)
    ap.add_argument("--mini-batches", type=int, default=1, help="optimizer steps per rollout batch")
    ap.add_argument("--beta", type=float, help="KL coefficient against a frozen reference (0: none loaded)")
    ap.add_argument("--clip-low", type=float, default=0.2)
    ap.add_argument("--clip-high", type=float, default=0.28)
    ap.add_argument("--agg", default="token-mean", choices=grpo.AGGS)
    ap.add_argument("--no-std", action="store_true", help="advantages without dividing by the group std")
    ap.add_argument("--reward", default="bcr", choices=["bcr", "truncation"])
    ap.add_argument("--length-penalty", type=float, default=0.0, help="LAMBDA in r - LAMBDA * len / budget")
    ap.add_argument("--target-len", type=int, default=0, help="L in the truncation reward 1(correct)*1(len<=L)")
    ap.add_argument("--stop-at-last-answer", action=argparse.BooleanOptionalAction,
                    help="end a response once its 'Answer N:' line is complete, in training and evaluation "
                         "(toy: on; off for models that think before answering)")
    ap.add_argument("--format-weight", type=float, default=0.0, help="weight of 'every problem has an answer'")
    ap.add_argument("--eval-data", help="held-out problems to evaluate on (toy: its test split)")
    ap.add_argument("--eval-n", type=int, nargs="+")
    ap.add_argument("--eval-problems", type=int)
    ap.add_argument("--eval-budget", type=int, help="budget at evaluation (default: the training budget)")
    ap.add_argument("--no-eval", action="store_true", help="train only")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"])
    ap.add_argument("--save-every", type=int)
    ap.add_argument("--grad-checkpointing", action="store_true")
    ap.add_argument("--fused-logprobs", action="store_true",
                    help="training log-probs with the optional Triton kernel (CUDA; pip install triton)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base-seed", type=int, default=0, help="seed of the toy warm start (cached per seed)")
    ap.add_argument("--out", default=None, help="run directory (default out/<preset>)")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/ckpt")
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    if args.preset not in PRESETS:
        ap.error(f"unknown preset {args.preset!r}; choose from {sorted(PRESETS)}")
    for k, v in PRESETS[args.preset].items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    args.out = args.out or os.path.join("out", args.preset)
    args.eval_budget = args.eval_budget or args.budget
    if args.reward == "truncation" and args.target_len <= 0:
        ap.error("--reward truncation needs --target-len L > 0")
    if args.fused_logprobs and grpo.triton is None:
        ap.error("--fused-logprobs needs triton: pip install triton")
    if args.n < 1 or args.group < 2:
        ap.error("--n must be >= 1 and --group >= 2 (advantages compare rollouts within a group)")
    return args


# ---------------------------------------------------------------------------------------------
# model loading and checkpoints


def load_pretrained(spec, dtype=torch.float32):
    """(model, tokenizer) from a hub id, a local directory (a run's ckpt) or a .gguf file, which
    transformers de-quantizes into a plain model (needs the gguf package)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw, model_kw = {}, {}
    if spec.endswith(".gguf"):
        if not os.path.exists(spec):
            raise FileNotFoundError(f"model {spec!r}: no such .gguf file")
        spec, kw["gguf_file"] = os.path.split(os.path.abspath(spec))
        try:  # newer transformers can keep GGUF weights in their quantized blocks: ask for dense ones,
            # which we can train and save_pretrained (older 5.x always de-quantize, with no such option)
            from transformers import GgufConfig

            model_kw["quantization_config"] = GgufConfig(dequantize=True)
        except ImportError:
            pass
    tok = AutoTokenizer.from_pretrained(spec, **kw)
    model = AutoModelForCausalLM.from_pretrained(spec, dtype=dtype, **kw, **model_kw)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


def load_model(args, log=print):
    """(model, tokenizer) on args.device; the toy base model is trained if not cached."""
    dtype = getattr(torch, args.dtype)
    if args.model == "toy":
        import toy

        model, tok = toy.load_or_train_base(toy.base_dir(args.base_seed), seed=args.base_seed, log=log)
    else:
        model, tok = load_pretrained(args.model, dtype)
    return model.to(device=args.device, dtype=dtype), tok


def _atomic_torch_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(run_dir, model, tok, opt, step, rng):
    """<run>/ckpt: model + tokenizer (save_pretrained), optimizer, step and RNG states.
    Written to ckpt.tmp and renamed, so an interrupted save never replaces a good checkpoint."""
    final, tmp = os.path.join(run_dir, "ckpt"), os.path.join(run_dir, "ckpt.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    _atomic_torch_save({"step": step, "opt": opt.state_dict(), "py_rng": rng.getstate(),
                        "torch_rng": torch.get_rng_state(), "np_rng": np.random.get_state()},
                       os.path.join(tmp, "train_state.pt"))
    old = final + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(final):
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(run_dir, args):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = os.path.join(run_dir, "ckpt")
    if not os.path.exists(os.path.join(path, "train_state.pt")):
        raise FileNotFoundError(f"--resume: no checkpoint in {path}")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, args.dtype)).to(args.device)
    tok = AutoTokenizer.from_pretrained(path)
    state = torch.load(os.path.join(path, "train_state.pt"), weights_only=False)
    return model, tok, state


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
    old = torch.zeros((B, L + T))
    old[:, L:] = roll.logprobs
    return {"input_ids": ids.to(device), "attention_mask": att.to(device), "completion_mask": cmask.to(device),
            "old_logp": old.to(device)}


def train_step(model, ref, tok, opt, problems, rng, step, args):
    """Rollouts, rewards, advantages and one GRPO update. Returns the step's log record."""
    t0 = time.time()
    groups = [rng.sample(problems, args.n) for _ in range(args.prompts)]
    style = "bcr"
    prompts = [build_prompt(tok, [p["question"] for p in g], style) for g in groups]
    model.eval()
    roll = sample.generate(model, prompts, args.group, args.budget, args.temperature,
                           eos_token_ids=[tok.eos_token_id], pad_token_id=tok.pad_token_id,
                           seed=args.seed * 1_000_003 + step)
    if args.stop_at_last_answer:
        end_at_last_answer(roll, tok, args.n)
    t_roll = time.time() - t0
    texts = roll.texts(tok)
    rewards, correct_all, answered = [], [], []
    for i, text in enumerate(texts):
        golds = [p["answer"] for p in groups[i // args.group]]
        part = complete_part(text, bool(roll.finished[i]))
        correct = problem_correctness(text, golds, bool(roll.finished[i]))
        fmt = sum(a is not None for a in rw.split_answers(part, len(golds))) / len(golds)
        r = rollout_reward(correct, int(roll.lengths[i]), args)
        if args.format_weight:
            r = (1 - args.format_weight) * r + args.format_weight * fmt
        rewards.append(r)
        correct_all.append(sum(correct) / len(correct))
        answered.append(fmt)
    R = torch.tensor(rewards)
    adv = grpo.group_advantages(R, args.group, scale_by_std=not args.no_std)
    batch = make_batch(roll, tok.pad_token_id, args.device)
    batch["adv"] = adv.to(args.device)
    if ref is not None:
        with torch.no_grad():
            batch["ref_logp"] = grpo.token_logprobs(ref, batch["input_ids"], batch["attention_mask"],
                                                    batch["completion_mask"], args.temperature)
    model.train()
    B = R.numel()
    mb_size = math.ceil(B / args.mini_batches)
    stats = {}
    for s in range(0, B, mb_size):  # --mini-batches > 1: several optimizer steps per rollout batch
        sub = {k: v[s:s + mb_size] for k, v in batch.items()}
        stats = grpo.grpo_step(model, opt, sub, args.micro_batch, args.clip_low, args.clip_high, args.beta,
                               args.agg, max_len=args.budget, temperature=args.temperature,
                               fused=args.fused_logprobs)
    model.eval()
    zero_var = (R.view(-1, args.group).std(-1) == 0).float().mean().item()
    n_tok = int(roll.lengths.sum())
    return {
        "step": step, "reward": R.mean().item(), "accuracy": float(np.mean(correct_all)),
        "answered": float(np.mean(answered)), "tokens_per_problem": n_tok / (B * args.n),
        "truncation_rate": 1 - roll.finished.float().mean().item(), "zero_var_groups": zero_var,
        "clip_frac": stats["clip_frac"], "kl_ref": stats["kl_ref"], "approx_kl_old": stats["approx_kl_old"],
        "ratio_max": stats["ratio_max"], "grad_norm": stats["grad_norm"], "lr": opt.param_groups[0]["lr"],
        "step_seconds": time.time() - t0, "rollout_tokens_per_s": n_tok / max(t_roll, 1e-9),
    }


# ---------------------------------------------------------------------------------------------
# the whole run


def train(args, model, tok, log=print):
    """BCR training from `model`; returns the trained model. Logs to <out>/log.jsonl."""
    from tqdm import tqdm

    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    problems = load_problems(args.data, args.data_dir, "train", seed=args.base_seed)
    if args.n > len(problems):
        raise ValueError(f"--n {args.n} is larger than the {len(problems)} training problems")
    longest = max(len(build_prompt(tok, [p["question"] for p in problems[:args.n]])), 1)
    ctx = getattr(model.config, "max_position_embeddings", None)
    if ctx is not None and longest + args.budget > ctx:
        raise ValueError(f"N={args.n} problems take {longest} prompt tokens; with --budget {args.budget} that "
                         f"exceeds the model's context of {ctx} tokens")
    opt = grpo.MasterAdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    start = 0
    if args.resume:
        model, tok, state = load_checkpoint(args.out, args)
        opt = grpo.MasterAdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
        opt.load_state_dict(state["opt"])
        rng.setstate(state["py_rng"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["np_rng"])
        start = state["step"]
        log(f"resumed from {args.out}/ckpt at step {start}")
    if args.grad_checkpointing:
        model.gradient_checkpointing_enable()
    ref = copy.deepcopy(model).eval().requires_grad_(False) if args.beta > 0 else None  # only when used
    logf = open(os.path.join(args.out, "log.jsonl"), "a" if args.resume else "w")
    bar = tqdm(range(start, args.steps), desc="BCR", initial=start, total=args.steps, dynamic_ncols=True,
               disable=not sys.stderr.isatty() and os.environ.get("BCR_BAR") != "1")
    for step in bar:
        rec = train_step(model, ref, tok, opt, problems, rng, step, args)
        logf.write(json.dumps(rec) + "\n")
        logf.flush()
        bar.set_postfix(reward=f"{rec['reward']:.3f}", acc=f"{rec['accuracy']:.3f}",
                        tok=f"{rec['tokens_per_problem']:.1f}", trunc=f"{rec['truncation_rate']:.2f}")
        if bar.disable and (step % 5 == 0 or step == args.steps - 1):  # no live bar: log lines instead
            log(f"step {step:4d}  reward {rec['reward']:.3f}  acc {rec['accuracy']:.3f}  "
                f"tokens/problem {rec['tokens_per_problem']:.1f}  trunc {rec['truncation_rate']:.2f}  "
                f"{rec['step_seconds']:.1f}s")
        if (step + 1) % args.save_every == 0 or step == args.steps - 1:
            save_checkpoint(args.out, model, tok, opt, step + 1, rng)
    logf.close()
    return model


def run_label(args):
    """What the trained model is called in the printout: BCR or the baseline the flags select."""
    if args.reward == "truncation":
        return "trunc"
    if args.length_penalty:
        return "lenpen"
    return "GRPO" if args.n == 1 else "BCR"


def print_table(res, ns, label="BCR", log=print):
    """Base vs trained, per N (res["bcr"] holds the trained model's row, whatever its reward)."""
    lines = [f"{'N':>2} | {'base acc':>8} {'base tok/prob':>13} | {label + ' acc':>10} {label + ' tok/prob':>14} | {'tokens':>7}",
             "-" * 68]
    for n in ns:
        b, t = res["base"][str(n)], res["bcr"][str(n)]
        d = (t["tokens_per_problem"] / b["tokens_per_problem"] - 1) * 100
        lines.append(f"{n:>2} | {b['accuracy']:>8.3f} {b['tokens_per_problem']:>13.1f} | "
                     f"{t['accuracy']:>10.3f} {t['tokens_per_problem']:>14.1f} | {d:>+6.1f}%")
    log("\n".join(lines))


def main(argv=None):
    args = parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "args.json"), "w") as f:
        json.dump(vars(args), f, indent=1)
    model, tok = load_model(args)
    import eval as ev

    res = {}
    test = None
    if not args.no_eval:
        test = load_problems(args.eval_data, args.data_dir, "test", seed=args.base_seed, n=args.eval_problems) \
            if args.eval_data == "toy" else load_problems(args.eval_data, args.data_dir)[: args.eval_problems]
        print(f"evaluating the base model on {len(test)} held-out problems at N = {args.eval_n} "
              f"(budget {args.eval_budget})")
        res["base"] = ev.scaling_table(model, tok, test, args.eval_n, args.eval_budget, args.temperature, seed=1234,
                                        stop_at_last_answer=args.stop_at_last_answer)
    model = train(args, model, tok)
    if not args.no_eval:
        label = run_label(args)
        print(f"evaluating the {label} model")
        res["bcr"] = ev.scaling_table(model, tok, test, args.eval_n, args.eval_budget, args.temperature, seed=1234,
                                        stop_at_last_answer=args.stop_at_last_answer)
        print_table(res, args.eval_n, label)
        with open(os.path.join(args.out, "scaling.json"), "w") as f:
            json.dump(res, f, indent=1)
        print(f"wrote {os.path.join(args.out, 'scaling.json')}")
    print(f"total time {time.time() - t0:.0f}s")
    return res


if __name__ == "__main__":
    main()
