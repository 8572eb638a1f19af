"""
toy.py: a toy world small enough to run BCR end to end on a laptop CPU.

No pretrained model small enough to train on a CPU can do math, so the default run trains its own
base model from scratch, like nanoGPT's shakespeare_char. Everything downstream (bcr.py, sample.py,
grpo.py, eval.py) sees an ordinary Hugging Face tokenizer and LlamaForCausalLM, so the toy and a
real hub model go through the same lines of code.

The world:
  - problems: is a sum of two numbers from 10 to 29 more than 40 ("27 + 18 > 40?", answer "yes" or
    "no"; 42% of them are yes); one problem in four, chosen by a hash of its text, is held out for
    evaluation (102 problems, each asked several times when more are wanted); answers are checked
    by reward.py like any answer;
  - reference solutions of problem k at one of three levels of *effort*, each cheaper and less
    reliable than the one before (the graded trade of a reasoning model, which BCR's budget prices):
      exact     name the two numbers ("x2 = 27 ", "y2 = 18"), split them into tens and units, add
                each, add the two ("20+10+7+8" -> "30+15" -> "45"), and compare the sum with 40:
                always right (33 tokens at the least, header and answer line included);
      estimate  name and split only, and compare the tens alone ("20+10": 30 and some units, so
                "no"): wrong when the units carry the sum over 40, right 83% of the time (24
                tokens);
      guess     no lines, yes or no at random: right half the time (8 tokens). Only for problems
                after the first, as a solver short of room gives up on the last ones.
    (EFFORT: 70 / 10 / 20% of the references; problem 1 is worked exactly 7 times in 8.)
    Each line of a solution is a small table lookup on the lines just above. Naming the numbers is
    reading problem k out of the prompt;
  - *redundant* reasoning mixed in at random, which never changes the answer: each problem is
    worked at a level of care from 0 to 2, uniformly, and each of its computed lines is re-checked
    that many times ("wait, check: 30+15", "check again: 30+15", each re-check with its own
    opening so that the model need not count repeats); an exact solution restates its sum with
    probability 1/2 ("so the sum is 45"). A minimal exact solution is 62% of the average
    reference of a lone problem (33 of 53 tokens);
  - a supervised warm start (plain cross-entropy) gives the *base model*, verbose, trained on
    prompts of N = 1..4 problems and on reading drills (name the numbers of every problem of a
    prompt, asked in a random order), without which it reads problem 1 only (docs/toy_world.md).
    It ends with a reading check: greedy solutions to held-out N=4 BCR prompts, and how often
    they name every number of every problem right (reading_check).

So length can be cut for free (drop the re-checks) or at a price (a cheaper level of effort). At
N=1 a BCR-trained model should take the first only (the free lunch); as N grows and the shared
budget tightens, it should spend less effort on each problem (the task-scaling law). Sums alone
(toy v8 and before) had no cheaper level the model could learn, and its length could not follow
the budget (docs/toy_world.md, issue #20).

The tokenizer is character level (printable ASCII and newline), so the computed lines are written
digit by digit and every step is a lookup in the same small one-digit tables (side by side, one
token per two-digit number everywhere reached 66-75% at N=1 where digits reached 89%). On top come
the chat-template markers and whole-phrase tokens for the fixed text of prompts and solutions
("### Problem 1\n", "Answer ", "\\boxed{", "wait, check: ", " > 40?", "yes", ...), as a trained BPE vocabulary
would have, so that sequences stay short on a CPU; one token per number ("27 ", " 18") and per
name ("x2 = ", "y2 =") of a solution; and one token per *problem as it stands in a prompt*, its
header and sum together ("### Problem 2\n27 + 18", 4 x 400 tokens; " > 40?" follows it). The embedding of that
token is tied to the sum of its parts' embeddings, header 2 + "27 " + " 18" (tied_parts), so a
held-out problem, never seen in training, has a meaningful token; so is a name's, header 2 + "x".
A name then finds its number by one lookup on the content of a single prompt token: "x2 = "
attends to the token that shares its part "header 2" and copies that token's "27 " part, the same
attention pattern for every k. With the header and the numbers in separate tokens the
lookup needs two hops (find header 2, then the token one or three places after it), which a model
this small learned on some warm-start seeds and not on others (docs/toy_world.md, issue #20).
The tie holds in the warm start only: BCR then trains the saved model like any hub model. It is a
real transformers.PreTrainedTokenizerFast with a chat template, EOS and PAD, saved and loaded with
save_pretrained / from_pretrained.
"""
import argparse
import hashlib
import random
import time

import torch
from tokenizers import Tokenizer, decoders, models
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from grpo import token_logprobs
from reward import build_prompt, chat_prompt_ids, problem_blocks
from sample import generate

# the toy preset's evaluation, defined once (bcr.py and eval.py read these): held-out problems,
# the budget of the whole response (the training budget) and the sampling seed
EVAL_PROBLEMS, BUDGET, EVAL_SEED = 600, 64, 1234
# the free lunch is measured at N=1 as a single problem is usually run: with room to finish (the
# base's longest solution is about 80 tokens), not under the training budget, which cuts the base
LUNCH_BUDGET = 150

# each computed line is re-checked 0 to 2 times (one level per problem); the k-th re-check starts with CHECKS[k-1], so
# the model sees from the last line alone how many came before (a tiny model cannot count repeats). A third round
# (toy v10 tried one) made the base so long that BCR's first steps under the 64-token budget were all cut, and it
# learned to estimate even a lone problem (docs/toy_world.md, issue #20)
CHECKS = ["wait, check: ", "check again: "]
MAX_CHECKS = len(CHECKS)

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
                    *CHECKS, "so the sum is ", "Name the numbers of these ", " problems.", ASK, "yes", "no"])
    # the header "### Problem k\n" of a response, the names of the numbers of problem k ("x2 = ",
    # "y2 =") and the numbers as a solution writes them ("27 ", " 18") are one token each
    tok.add_tokens([f"### Problem {k}\n" for k in range(1, 10)])
    tok.add_tokens([f"x{k} = " for k in range(1, 10)] + [f"y{k} =" for k in range(1, 10)])
    tok.add_tokens([f"{a} " for a in range(LO, HI + 1)] + [f" {b}" for b in range(LO, HI + 1)])
    # and each problem block of a prompt, "### Problem 2\n27 + 18", is one token (its embedding is
    # tied to the sum of its parts: tied_parts); added last, it is matched before its parts
    tok.add_tokens([fused_text(k, a, b) for k, a, b in _fused_keys()])
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "left"
    return tok


def _fused_keys():
    """(k, a, b) of every problem block that has a token of its own: k = 1..MAX_N, a, b in LO..HI."""
    return [(k, a, b) for k in range(1, MAX_N + 1) for a in range(LO, HI + 1) for b in range(LO, HI + 1)]


def fused_text(k, a, b):
    """Problem k of a prompt as problem_blocks writes it after its blank line: one token."""
    return f"### Problem {k}\n{a} + {b}"


def tied_parts(tok):
    """The tokens whose embedding is tied to the sum of other tokens' embeddings, as groups
    (ids, [part ids, ...]) where row i of each tensor belongs to the same token:
      - each problem block of a prompt, "### Problem k\na + b" = "### Problem k\n" + "a " + " b";
      - each name of a number, "x<k> = " = "### Problem k\n" + "x" and "y<k> =" = "### Problem k\n" + "y"
        (the characters "x" and "y" occur in no toy text: they are the names' roles).
    So the name of problem k's first number and problem k's block share the part "header k", and one
    attention pattern (match the header part, copy the "a " part) reads every problem k."""
    def ids(texts):
        return torch.tensor(tok.convert_tokens_to_ids(texts))
    keys = _fused_keys()
    blocks = (ids([fused_text(k, a, b) for k, a, b in keys]),
              [ids([f"### Problem {k}\n" for k, _, _ in keys]), ids([f"{a} " for _, a, _ in keys]),
               ids([f" {b}" for _, _, b in keys])])
    ks = range(1, 10)
    names = (ids([f"x{k} = " for k in ks] + [f"y{k} =" for k in ks]),
             [ids([f"### Problem {k}\n" for k in ks] * 2), ids(["x"] * len(ks) + ["y"] * len(ks))])
    return [blocks, names]


def tie_embeddings(model, groups):
    """E[token] = the sum of E[part] over its parts, for every tied token (in place, no grad)."""
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        for tied, parts in groups:
            emb[tied] = sum(emb[p] for p in parts)


def fold_tied_grads(model, groups):
    """The chain rule of E[token] = sum of its parts: each tied row's gradient is added to its
    parts' rows and zeroed, so the optimizer moves the parts and tie_embeddings then rebuilds the
    tied rows. (With the embedding tied to the output layer, a tied row's gradient also holds the
    output-side term, as for any token.) No part is itself tied, so the groups fold in any order."""
    grad = model.get_input_embeddings().weight.grad
    for tied, parts in groups:
        g = grad[tied].clone()
        grad[tied] = 0
        for p in parts:
            grad.index_add_(0, p, g)


def make_model(tokenizer, seed=0):
    """A ~1M-parameter Llama: 4 layers, width 128 (head size 32: smaller heads are slower on CPU).

    initializer_range 0.05 (HF default 0.02): with 0.02 reading drills alone sat at the loss of
    guessing every number for 600+ steps, with 0.05 the lookups formed at step 120-150, and the
    warm start reads every problem by step 500 instead of 600-900 (docs/toy_world.md, issue #20)."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=384, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, initializer_range=0.05,
        max_position_embeddings=1024, rope_theta=10000.0,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(cfg)


# ---------------------------------------------------------------------------------------------
# problems and reference solutions


LO, HI = 10, 29  # problems are sums of two numbers in LO..HI ("27 + 18")
MAX_N = 4  # the most problems a toy prompt holds (the warm start's N = 1..MAX_N)


def is_heldout(question):
    """One problem in 4, picked by a hash of its text, is reserved for evaluation."""
    return int(hashlib.md5(question.encode()).hexdigest(), 16) % 4 == 0


THRESHOLD = 40  # each problem asks whether a sum is more than this
ASK = f" > {THRESHOLD}?"  # the end of every question
# how often a reference problem is worked at each level of effort: exact, estimate, guess. The guess
# never for problem 1, which is a prompt's only problem at N=1 (problem 1 is then worked exactly
# 7 times in 8); for later problems often, so that the base writes whole runs of guesses ("### Problem
# 3 ... ### Problem 4 ...") and RL can find them: with 8% guesses, one RL seed of one base learned to
# repeat "### Problem 2" after a guess instead (docs/toy_world.md, issue #20)
EFFORT = {"exact": 0.70, "estimate": 0.10, "guess": 0.20}


def numbers(question):
    """(a, b) of "27 + 18 > 40?"."""
    if not question.endswith(ASK):
        raise ValueError(f"not a toy question: {question!r}")
    a, b = question[: -len(ASK)].split(" + ")
    return int(a), int(b)


def truth(a, b):
    return "yes" if a + b > THRESHOLD else "no"


def make_problems(n, split, seed):
    """n problems {"id","question","answer"}; the "train" and "test" splits are disjoint. The test
    split has 102 problems: the first 102 returned are all of them in a random order, the next 102
    all of them again in another order, and so on (an evaluation of 600 asks each 5 or 6 times)."""
    rng = random.Random(f"{split}-{seed}")
    if split == "test":
        pool = [q for q in (f"{a} + {b}{ASK}" for a in range(LO, HI + 1) for b in range(LO, HI + 1)) if is_heldout(q)]
        qs = []
        while len(qs) < n:
            qs += rng.sample(pool, min(len(pool), n - len(qs)))
    else:
        qs = []
        while len(qs) < n:
            q = f"{rng.randint(LO, HI)} + {rng.randint(LO, HI)}{ASK}"
            if not is_heldout(q):
                qs.append(q)
    return [{"id": f"toy-{split}-{i}", "question": q, "answer": truth(*numbers(q))} for i, q in enumerate(qs)]


def needed_lines(question, k=1):
    """The lines of problem k's exact solution: each is computed from the lines just above it only.

    "27 + 18 > 40?" -> "x1 = 27 ", "y1 = 18" (name the numbers: read them out of the prompt) ->
    "20+10+7+8" (split into tens and units) -> "30+15" (add tens, add units) -> "45"; the answer
    compares the last with THRESHOLD.
    """
    a, b = numbers(question)
    return [f"x{k} = {a} ", f"y{k} = {b}", f"{a // 10 * 10}+{b // 10 * 10}+{a % 10}+{b % 10}",
            f"{a // 10 * 10 + b // 10 * 10}+{a % 10 + b % 10}", str(a + b)]


def estimate(a, b):
    """The estimate's answer: the tens alone against THRESHOLD (30 and some units: "no")."""
    return "yes" if a // 10 * 10 + b // 10 * 10 > THRESHOLD - 10 else "no"


def solution_steps(question, rng, redundant=True, k=1, effort=EFFORT):
    """(lines, answer): a step-by-step solution of problem k and the answer it reaches.

    redundant=False: the exact solution, minimal (needed_lines) and right. Otherwise a level of
    effort drawn from `effort` (weights, EFFORT by default; no guess for k = 1): exact
    (needed_lines), estimate (the names and the split line, answered by estimate(), wrong when the
    units carry the sum over) or guess (no lines, yes or no at random); then one level of care
    c = 0..MAX_CHECKS for the problem, each computed line followed by c re-checks that repeat it
    ("wait, check: 30+15"), so the next line reads its inputs at the same place whether or not
    re-checks came between; and an exact solution's sum restated with probability 1/2 ("so the
    sum is 45").

    One level of care per problem, not one draw per line, so that a prompt's problems start at
    widely spread places in a response: with one draw per line the lengths bunched near the
    mean, and a base read problem 4 after three verbose solutions but not after three minimal
    ones, which is where BCR heads (docs/toy_world.md).
    """
    a, b = numbers(question)
    level = "exact"
    if redundant:
        weights = [w if (name != "guess" or k > 1) else 0.0 for name, w in effort.items()]
        level = rng.choices(list(effort), weights)[0]
    if level == "guess":
        return [], rng.choice(["yes", "no"])
    steps = needed_lines(question, k)
    if level == "estimate":
        steps = steps[:3]  # the names and the split line
    care = rng.randint(0, MAX_CHECKS) if redundant else 0
    lines = []
    for i, line in enumerate(steps):
        lines.append(line)
        if i >= 2:
            lines += [c + line for c in CHECKS[:care]]
    if level == "exact" and redundant and rng.random() < 0.5:
        lines.append(f"so the sum is {a + b}")
    return lines, (estimate(a, b) if level == "estimate" else truth(a, b))


def solution_text(questions, rng, style="bcr", redundant=True, effort=EFFORT):
    """Reference response for one prompt: N problems in the BCR format, or one in the standard one.
    Each problem's answer line states the answer its own lines reach (an estimate or a guess can
    be wrong)."""
    if style == "standard":
        lines, answer = solution_steps(questions[0], rng, redundant, effort=effort)
        return "\n".join(lines + ["\\boxed{" + answer + "}"])
    parts = []
    for k, q in enumerate(questions, 1):
        lines, answer = solution_steps(q, rng, redundant, k, effort)
        parts.append("\n".join([f"### Problem {k}"] + lines + [f"Answer {k}: \\boxed{{{answer}}}"]))
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# supervised warm start


def sft_example(tokenizer, problems, rng, style):
    """(input_ids, labels) with the loss on the response and its EOS only."""
    qs = [p["question"] for p in problems]
    prompt_ids = build_prompt(tokenizer, qs, style=style)
    resp = solution_text(qs, rng, style=style)
    resp_ids = tokenizer(resp, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return prompt_ids + resp_ids, [-100] * len(prompt_ids) + resp_ids


def _collate(examples, pad_id):
    """Right-padded input_ids, labels (-100 = no loss) and attention mask."""
    width = max(len(x) for x, _ in examples)
    ids = torch.full((len(examples), width), pad_id)
    labels = torch.full((len(examples), width), -100)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (x, y) in enumerate(examples):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return ids, labels, mask


READ_LINES = 2  # the first needed lines of a solution, which read the problem out of the prompt


def reading_prompt(tokenizer, questions):
    """A reading drill's prompt: the N problems in the BCR block format under another instruction,
    so that the lookups are the ones a BCR prompt needs."""
    content = f"Name the numbers of these {len(questions)} problems." + problem_blocks(questions)
    return chat_prompt_ids(tokenizer, content)


def reading_answer(questions, order):
    """The drill's answer: for each problem k of `order`, its header and its reading lines."""
    return "\n".join("\n".join([f"### Problem {k}"] + needed_lines(questions[k - 1], k)[:READ_LINES]) for k in order)


def naming_example(tokenizer, problems, rng):
    """(input_ids, labels) of a reading drill: the problems asked in a random order
    ("### Problem 3\nx3 = 48 \ny3 = 19\n### Problem 1\n..."). Short, and every line is a lookup
    in the prompt by problem index, so it trains that lookup far more densely than full solutions."""
    qs = [p["question"] for p in problems]
    ids = reading_prompt(tokenizer, qs)
    resp = reading_answer(qs, rng.sample(range(1, len(qs) + 1), len(qs)))
    resp_ids = tokenizer(resp, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return ids + resp_ids, [-100] * len(ids) + resp_ids


def reads_all(questions, text):
    """Does a response name the numbers of every problem right (in any order)? Problem k's block
    must hold its header and its reading lines ("### Problem 2\nx2 = 12 \ny2 = 59"), as a drill
    answer and a BCR solution both do."""
    return all(reading_answer(questions, [k]) in text for k in range(1, len(questions) + 1))


READ_BUDGET = 120  # new tokens per problem in the reading check: a greedy base's solution is about 80


def reading_check(model, tokenizer, problems, n=4):
    """The fraction of N-problem BCR prompts (len(problems) // n of them, greedy) whose response
    names the numbers of every problem right (reads_all). It reads BCR prompts, not drills: that is
    the reading BCR needs, and a base can answer every drill right yet misread problem 2 of a
    prompt in the middle of a solution (docs/toy_world.md: 100% on drills, 0% here)."""
    groups = [[p["question"] for p in problems[i:i + n]] for i in range(0, len(problems) // n * n, n)]
    roll = generate(model, [build_prompt(tokenizer, qs, "bcr") for qs in groups], 1, READ_BUDGET * n, temperature=0,
                    eos_token_ids=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, seed=0)
    return sum(map(reads_all, groups, roll.texts(tokenizer))) / len(groups)


def warm_start(seed=0, steps=1100, lr=3e-3, problems_per_step=12, max_n=MAX_N, drills_per_step=12, log=print,
               probe=None):
    """Train the base model from scratch; returns (model, tokenizer). eval.load_model caches it.

    Plain supervised fine-tuning. Each step takes prompts of one size N (cycling 1..max_n; half
    the N=1 steps use the standard single-problem prompt) and their verbose reference responses,
    problems_per_step // N prompts, so that every step holds about as many problems and costs
    about the same (12, not v7's 16: a quarter less to compute, for a 300-s run); plus
    drills_per_step reading drills (naming_example) in a batch of their own, so that the short
    drills are not padded to the width of the long solutions (12, not v10's 8: with fewer problems
    named, a fifth of them guessed, two warm-start seeds of 5 never learned to read the second
    number; docs/toy_world.md, issue #20). The loss is the
    cross-entropy on the response tokens and their EOS, averaged over the tokens of both batches.
    Without the drills the full solutions give "read problem k" too little signal and the base
    reads problem 1 only (README, "The toy world"). The embeddings of the problem blocks and of the
    names stay the sums of their parts' (tied_parts; fold_tied_grads before the step, tie_embeddings
    after). The learning rate warms up for 30 steps, stays constant, then decays linearly to lr / 10
    over the last 20% of the steps: most of the accuracy comes in that decay. probe(model,
    tokenizer), if given, runs at every logged step and what it returns is printed on that line
    (scripts/toy_reading_probe.py).
    """
    if not 1 <= max_n <= MAX_N:
        raise ValueError(f"warm_start: max_n must be 1..{MAX_N} (the problem blocks that have a token), "
                         f"got {max_n}")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tok = make_tokenizer()
    model = make_model(tok, seed)
    tied = tied_parts(tok)
    tie_embeddings(model, tied)
    log(f"warm start: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M-parameter Llama, {steps} steps of "
        f"supervised fine-tuning on the task, N = 1..{max_n}, {drills_per_step} reading drills per step")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.98))
    train = make_problems(200_000, "train", seed)
    model.train()
    t0 = time.time()
    for step in range(steps):
        n = 1 + step % max_n
        style = "standard" if (n == 1 and step % (2 * max_n) == 0) else "bcr"
        batches = [[sft_example(tok, rng.sample(train, n), rng, style)
                    for _ in range(max(1, problems_per_step // n))]]
        if drills_per_step:
            batches.append([naming_example(tok, rng.sample(train, rng.randint(min(2, max_n), max_n)), rng)
                            for _ in range(drills_per_step)])
        for g in opt.param_groups:  # warm-up, constant, then a linear decay to lr / 10 over the last 20%
            g["lr"] = lr * min(1.0, (step + 1) / 30, 0.1 + 0.9 * (steps - step) / (0.2 * steps))
        # one mean of -log p over the loss tokens of both batches; token_logprobs runs the output
        # layer (1,781 tokens wide) on those tokens only, not on the prompts and the padding
        loss, n_loss = 0.0, 0
        for ids, labels, mask in (_collate(b, tok.pad_token_id) for b in batches):
            loss = loss - token_logprobs(model, ids, mask, labels != -100).sum()
            n_loss += int((labels[:, 1:] != -100).sum())
        loss = loss / n_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        fold_tied_grads(model, tied)  # the problem blocks and the names stay the sums of their parts
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tie_embeddings(model, tied)
        if step % 100 == 0 or step == steps - 1:
            extra = f"  {probe(model, tok)}" if probe else ""  # scripts/toy_reading_probe.py
            log(f"  step {step:4d}  N={n}  loss {loss.item():.3f}  {time.time() - t0:.0f}s{extra}")
    model.eval()
    read = reading_check(model, tok, make_problems(400, "test", seed), 4)
    log(f"reading check: the base names every number of an N=4 prompt right in {read:.0%} of 100 held-out "
        f"BCR prompts (greedy)")
    return model, tok


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Print reference solutions of the toy world (bcr.py trains the base).")
    ap.add_argument("--show", type=int, default=3, help="how many problems, in one N-problem response")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    probs = make_problems(args.show, "train", args.seed)
    print(solution_text([p["question"] for p in probs], random.Random(args.seed)))
