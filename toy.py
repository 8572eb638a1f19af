"""
toy.py: a toy world small enough to run BCR end to end on a laptop CPU.

No pretrained model small enough to train on a CPU can do math, so the default run trains its own
base model from scratch, like nanoGPT's shakespeare_char. Everything downstream (bcr.py, sample.py,
grpo.py, eval.py) sees an ordinary Hugging Face tokenizer and LlamaForCausalLM, so the toy and a
real hub model go through the same lines of code.

The world:
  - problems: sums of four one-digit numbers ("7+5+8+3"), answers checked by reward.py like any
    math answer;
  - reference solutions: copy the problem, then add the first two terms and copy the rest, one
    line per addition ("12+8+3", "20+3", "23"); these steps are *needed*: a tiny model cannot
    add four numbers in one go;
  - *redundant* reasoning mixed in at random, which never changes the answer: a re-check of the
    step just done ("wait, check: 12+8+3"; each step is re-checked again with probability
    P_REDUNDANT, so the number of re-checks is geometric) and a restated result ("so the sum is 23");
  - a supervised warm start (plain cross-entropy) gives the *base model*: accurate and verbose, on
    single problems and on N-problem prompts in the BCR format. Its batches mix the arithmetic
    lines alone (short, dense) with the task in its chat format and verbose references, like
    pretraining text mixed into instruction tuning.

So length can be cut wisely (drop the re-checks) or badly (drop a needed step). A BCR-trained
model should learn the first.

The tokenizer is character level (printable ASCII and newline) plus the chat-template markers and
whole-phrase tokens for the fixed text of prompts and solutions ("### Problem ", "Answer ",
"\\boxed{", "wait, check: ", ...) and for the numbers 10..99, as a trained BPE vocabulary would
have, so that sequences stay short on a CPU and a tiny model learns the format quickly. It is a real transformers.PreTrainedTokenizerFast with a chat
template, EOS and PAD, saved and loaded with save_pretrained / from_pretrained.
"""
import argparse
import hashlib
import itertools
import math
import os
import random
import time

import torch
from tokenizers import Tokenizer, decoders, models
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

P_REDUNDANT = 0.6  # probability of each redundant piece (re-checks repeat geometrically)

CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}<|system|>{{ m['content'] }}"
    "{% elif m['role'] == 'user' %}<|user|>{{ m['content'] }}"
    "{% else %}<|assistant|>{{ m['content'] }}<|end|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def make_tokenizer():
    """Character-level PreTrainedTokenizerFast with a chat template (no files needed)."""
    specials = ["<|pad|>", "<|end|>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>"]
    chars = [chr(i) for i in range(32, 127)] + ["\n"]
    vocab = {t: i for i, t in enumerate(specials + chars)}
    # BPE with no merges is exactly "one token per character"; Fuse joins them back on decode
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<|pad|>", eos_token="<|end|>", unk_token="<unk>")
    tok.add_special_tokens({"additional_special_tokens": ["<|system|>", "<|user|>", "<|assistant|>"]})
    # whole-phrase tokens for the fixed prompt and format text, as a trained BPE would have
    tok.add_tokens(["Solve these ", " problems in order. End problem k with the line: ",
                    "Solve the problem. Put the final answer in ", "### Problem ", "Answer ", "\\boxed{",
                    "wait, check: ", "so the sum is "])
    # two-digit numbers are single tokens, as in the number tokens of Llama 3 or GPT-4 tokenizers
    tok.add_tokens([str(i) for i in range(10, 100)])
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "left"
    return tok


def make_model(tokenizer, seed=0):
    """A ~1M-parameter Llama: 4 layers, width 128 (head size 32: smaller heads are slower on CPU)."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=384, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024, rope_theta=10000.0,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(cfg)


# ---------------------------------------------------------------------------------------------
# problems and reference solutions


TERMS = 4  # problems are sums of TERMS one-digit numbers


def is_heldout(question):
    """One problem in 10, picked by a hash of its text, is reserved for evaluation."""
    return int(hashlib.md5(question.encode()).hexdigest(), 16) % 10 == 0


def make_problems(n, split, seed):
    """n problems {"id","question","answer"}; the "train" and "test" splits are disjoint and
    test problems are distinct (there are 656 of them)."""
    rng = random.Random(f"{split}-{seed}")
    if split == "test":
        pool = [q for q in ("+".join(map(str, t)) for t in itertools.product(range(1, 10), repeat=TERMS)) if is_heldout(q)]
        if n > len(pool):
            raise ValueError(f"the toy world has {len(pool)} held-out problems, asked for {n}")
        qs = rng.sample(pool, n)
    else:
        qs = []
        while len(qs) < n:
            q = "+".join(str(rng.randint(1, 9)) for _ in range(TERMS))
            if not is_heldout(q):
                qs.append(q)
    return [{"id": f"toy-{split}-{i}", "question": q, "answer": str(sum(map(int, q.split("+"))))}
            for i, q in enumerate(qs)]


def solution_steps(question, rng, p_redundant=P_REDUNDANT):
    """The lines of a step-by-step solution, with random redundant lines.

    Needed: a copy of the problem, then one line per addition, each adding the first two terms of
    the line above and copying the rest ("7+5+8+3" -> "12+8+3" -> "20+3" -> "23").
    Redundant: after a needed line, "wait, check: 12+8+3" with probability p, repeated (so
    the number of re-checks is geometric), and "so the sum is 23" with probability p.
    """
    terms = [int(x) for x in question.split("+")]
    lines = [question]
    while len(terms) > 1:
        terms = [terms[0] + terms[1]] + terms[2:]
        line = "+".join(map(str, terms))
        lines.append(line)  # needed
        while p_redundant and rng.random() < p_redundant:
            lines.append(f"wait, check: {line}")  # redundant re-check of the step
    if p_redundant and rng.random() < p_redundant:
        lines.append(f"so the sum is {terms[0]}")  # redundant restatement
    return lines


def solution_text(questions, answers, rng, style="bcr", p_redundant=P_REDUNDANT):
    """Reference response for one prompt: N problems in the BCR format, or one in the standard one."""
    if style == "standard":
        return "\n".join(solution_steps(questions[0], rng, p_redundant)) + "\n\\boxed{" + answers[0] + "}"
    parts = []
    for k, (q, ans) in enumerate(zip(questions, answers), 1):
        lines = [f"### Problem {k}"] + solution_steps(q, rng, p_redundant) + [f"Answer {k}: \\boxed{{{ans}}}"]
        parts.append("\n".join(lines))
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# supervised warm start


def sft_example(tokenizer, problems, rng, style):
    """(input_ids, labels) with the loss on the response and its EOS only."""
    from bcr import build_prompt  # the same prompt builder as training and evaluation

    qs, ans = [p["question"] for p in problems], [p["answer"] for p in problems]
    prompt_ids = build_prompt(tokenizer, qs, style=style)
    resp = solution_text(qs, ans, rng, style=style)
    resp_ids = tokenizer(resp, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return prompt_ids + resp_ids, [-100] * len(prompt_ids) + resp_ids


def arithmetic_example(tokenizer, problems):
    """Dense example: the needed lines of several solutions back to back, loss after each
    problem line. Packing several puts most problems away from position 0, so the additions are
    learned by relative position, as they are needed inside a long task prompt."""
    ids, labels = [], []
    for p in problems:
        lines = solution_steps(p["question"], None, p_redundant=0.0)
        first = tokenizer(lines[0] + "\n", add_special_tokens=False)["input_ids"]
        rest = tokenizer("\n".join(lines[1:]) + "\n", add_special_tokens=False)["input_ids"]
        ids += first + rest
        labels += [-100] * len(first) + rest
    return ids, labels


def _collate(examples, pad_id):
    """Right-padded input_ids, labels (-100 = no loss) and attention mask."""
    width = max(len(x) for x, _ in examples)
    ids = torch.full((len(examples), width), pad_id)
    labels = torch.full((len(examples), width), -100)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (x, y) in enumerate(examples):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return ids, labels, mask


def warm_start(out_dir, seed=0, steps=700, lr=3e-3, max_n=4, log=print, on_step=None):
    """Train the base model from scratch and save it (model + tokenizer) with save_pretrained.

    Each batch mixes two kinds of examples, like pretraining text mixed into instruction tuning:
      - 16 arithmetic examples, each the needed lines of 5 solutions back to back: dense, they
        teach the additions quickly;
      - 16 task examples: a chat-formatted prompt of N problems (one N per batch, cycling 1..max_n;
        N=1 also in the standard single-problem style) and its verbose reference response.
    The loss is cross-entropy on everything after the problem line (arithmetic) or on the
    response and its EOS (task).
    """
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tok = make_tokenizer()
    model = make_model(tok, seed)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"warm start: {n_params / 1e6:.2f}M-parameter Llama, {steps} steps")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.98))
    train = make_problems(200_000, "train", seed)
    model.train()
    t0 = time.time()
    for step in range(steps):
        n = 1 + step % max_n
        style = "standard" if (n == 1 and step % (2 * max_n) == 0) else "bcr"
        batches = [[arithmetic_example(tok, rng.sample(train, 5)) for _ in range(16)],
                   [sft_example(tok, rng.sample(train, n), rng, style) for _ in range(16)]]
        for g in opt.param_groups:  # linear warm-up, then cosine decay to lr / 10
            g["lr"] = lr * min(1.0, (step + 1) / 30) * (0.55 + 0.45 * math.cos(math.pi * step / steps))
        opt.zero_grad(set_to_none=True)
        losses = []
        for exs in batches:  # two forward passes, each padded to its own length
            ids, labels, mask = _collate(exs, tok.pad_token_id)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            (loss / len(batches)).backward()
            losses.append(loss.item())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"  step {step:4d}  loss arithmetic {losses[0]:.4f} task {losses[1]:.4f}  {time.time() - t0:.0f}s")
        if on_step is not None:
            on_step(step, model, tok)
    model.eval()
    save_pretrained_atomic(model, tok, out_dir)
    return model, tok


def save_pretrained_atomic(model, tokenizer, out_dir):
    """save_pretrained into a temporary folder, then rename: a crash never leaves half a model."""
    tmp = out_dir.rstrip("/") + ".tmp"
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)


def load_or_train_base(out_dir, seed=0, log=print):
    """The cached base model if present, else a fresh warm start (reproducible from the seed)."""
    if os.path.exists(os.path.join(out_dir, "config.json")):
        log(f"base model: cached at {out_dir}")
        return AutoModelForCausalLM.from_pretrained(out_dir), AutoTokenizer.from_pretrained(out_dir)
    log(f"base model: none cached at {out_dir}, warm-starting from scratch (seed {seed})")
    return warm_start(out_dir, seed=seed, log=log)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Train the toy base model (bcr.py does this for you).")
    ap.add_argument("--out", default="out/toy-base")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--show", type=int, default=0, help="print N reference solutions and exit")
    args = ap.parse_args()
    if args.show:
        probs = make_problems(args.show, "train", args.seed)
        print(solution_text([p["question"] for p in probs], [p["answer"] for p in probs], random.Random(args.seed)))
    else:
        warm_start(args.out, seed=args.seed, steps=args.steps)
