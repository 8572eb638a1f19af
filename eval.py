"""
eval.py: measure what BCR claims, on any Hugging Face model and any benchmark.

    python eval.py --model PATH_OR_HUB_ID --data NAME_OR_JSONL [NAME ...] [--n 1 2 3 4 5] [--budget B]
                   [--samples K] [--temperature T] [--top-p P] [--out DIR] [--plot]
    python eval.py --preset r1-1.5b [--model PATH]   # sample as bcr.py's preset trains (EVAL_PRESETS)
    python eval.py --compare DIR_A DIR_B [--plot --out DIR]

A benchmark name is read from --data-dir (its normalised file, or a folder in the hub's layout),
else downloaded from the hub and cached (data.py). A tqdm bar shows rows done, tokens/s and the
time left (a log line a minute when stderr is not a terminal).

Tables, per benchmark (all written to DIR as results.json and CSV files):
  - task scaling: for each N, accuracy, generated tokens per problem (response tokens / N) and the
    truncation rate, with N problems per prompt in the BCR format; N=1 also in the standard
    single-problem format;
  - budget curve: accuracy at budgets B/16, B/8, B/4, B/2, B (2k..32k for B=32768), read off one
    long generation per sample: an answer counts at budget b only if its line is complete within
    the first b tokens (the same rule as training);
  - length conditioned on correctness: mean, median and p90 tokens of correct and of incorrect
    answers (for N > 1 each problem is charged the tokens from the previous answer line to its own);
  - batch vs single: the same problems one at a time (N=1) and N at a time: tokens saved and the
    accuracy change (DRQA's measurement);
  - mean@k and pass@k over k samples per prompt (pass@k with the unbiased estimator
    1 - C(n-c, k) / C(n, k)).

--plot draws the task-scaling curve, the budget curve and the length histograms; --compare prints
the base-vs-trained table in the paper's layout (report.py).

Also the rollouts that bcr.py trains on: the BCR format with its stop rule (rollouts). The prompt
builder and the verdicts are reward.py's, the same as in training; data.py loads problems and models.

Thinking models (R1-style, Qwen3-Thinking: the chat template opens "<think>"): answers count only
after "</think>" (reward.final_answers), and tokens are charged to a problem only after the
thinking, which is shared by all N problems and so belongs to none of them.
"""
import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time

import torch
from tqdm import tqdm

import memory
import reward as rw
import sample
import toy
from data import DEFAULT_DATA_DIR, load_model, load_problems
from report import compare, load_results, plot, write_outputs

# ---------------------------------------------------------------------------------------------
# rollouts in the BCR format, and the tables


def rollouts(model, tok, prompts, n, samples, budget, temperature, seed, stop_at_last_answer=False, top_p=1.0,
             max_rows=None, progress=None):
    """sample.generate for prompts of n problems each (n: one for all, or a list, one per prompt);
    with stop_at_last_answer a response ends once its "Answer n:" line is complete, as a stop string
    would end it (bcr.py says why). seed: one per prompt (or an int); progress(roll) is called with
    each finished rollout."""
    roll = sample.generate(model, prompts, samples, budget, temperature, top_p=top_p, eos_token_ids=[tok.eos_token_id],
                           pad_token_id=tok.pad_token_id, seed=seed, max_rows=max_rows)
    if stop_at_last_answer:
        ns = n if isinstance(n, list) else [n] * len(prompts)
        roll.stop_at(tok, [lambda text, k=k: rw.last_answer_end(text, k) is not None
                           for k in ns for _ in range(samples)])
    if progress is not None:
        progress(roll)
    return roll


def pass_at_k(n, c, k):
    """Unbiased pass@k for one problem with n samples of which c are correct (Chen et al. 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def tokens_per_problem(token_ids, tokenizer, n, thinking=False):
    """Tokens charged to each problem: from the end of the previous answer line to the end of its
    own; None for a problem with no answer line. Only after the thinking: the tokens up to the
    last "</think>" are shared by all N problems and charged to none (with thinking=True and no
    "</think>", every problem gets None). Offsets come from decoding token by token."""
    pieces = tokenizer.batch_decode([[t] for t in token_ids], skip_special_tokens=True)
    cum, offsets = 0, []
    for p in pieces:
        cum += len(p)
        offsets.append(cum)  # characters decoded after token i
    text = "".join(pieces)
    think_end = text.rfind("</think>")
    if thinking and think_end == -1:
        return [None] * n
    start = 0 if think_end == -1 else think_end + len("</think>")

    def token_at(char_end):  # tokens needed to decode the first char_end characters
        return next((i + 1 for i, o in enumerate(offsets) if o >= char_end), len(offsets))

    out, prev_tok = [], token_at(start) if start else 0
    for end in rw.answer_line_ends(text[start:], n):
        if end is None:
            out.append(None)
            continue
        tok_end = token_at(start + end)
        out.append(max(tok_end - prev_tok, 0))
        prev_tok = tok_end
    return out


def generate_rows(model, tok, problems, n, budget, temperature, samples, seed, style="bcr", batch_rows=None,
                  stop_at_last_answer=False, top_p=1.0, progress=None):
    """Generate for consecutive groups of n problems, batch_rows rows per sampler call; one record
    per (prompt, sample). The stop rule applies to the BCR format only. batch_rows (default): on
    CUDA as many rows as the free memory holds (memory.eval_rows: a power of two), else 512."""
    groups = [problems[i:i + n] for i in range(0, len(problems) - n + 1, n)]
    if not groups:
        raise ValueError(f"N={n} problems per prompt, but only {len(problems)} problems to evaluate on")
    prompts = [rw.build_prompt(tok, [p["question"] for p in g], style) for g in groups]
    if batch_rows is None:
        device = next(model.parameters()).device
        batch_rows = 512 if device.type != "cuda" else \
            memory.eval_rows(model, budget, max(map(len, prompts)), samples, device)
    per_call = max(1, batch_rows // samples)
    rows = []
    for s in range(0, len(prompts), per_call):
        seeds = [seed * 1_000_003 + i for i in range(s, s + len(prompts[s:s + per_call]))]  # per prompt: no chunk
        roll = rollouts(model, tok, prompts[s:s + per_call], n, samples, budget, temperature, seeds,  # changes them
                        stop_at_last_answer and style == "bcr", top_p, progress=progress)
        for i in range(len(roll.lengths)):
            g = groups[s + i // samples]
            rows.append({"group": s + i // samples, "sample": i % samples, "golds": [p["answer"] for p in g],
                         "ids": [p["id"] for p in g], "tokens": roll.tokens(i), "finished": bool(roll.finished[i])})
    return rows


def grade_rows(rows, tok, n, style, budget=None, thinking=False):
    """Per-problem verdicts of each row, optionally as if the budget had been `budget` tokens."""
    out = []
    for r in rows:
        toks = r["tokens"] if budget is None else r["tokens"][:budget]
        finished = r["finished"] and len(r["tokens"]) <= len(toks)
        text = tok.decode(toks, skip_special_tokens=True)
        out.append(rw.problem_correctness(text, r["golds"], finished, thinking, style))
    return out


def summarize(rows, verdicts, n):
    """Accuracy, tokens per problem (all response tokens / N, the paper's measure), truncation rate;
    mean@k and pass@k with k samples per prompt."""
    k = max(r["sample"] for r in rows) + 1
    flat = [v for vs in verdicts for v in vs]
    toks = sum(len(r["tokens"]) for r in rows)
    res = {"accuracy": sum(flat) / len(flat), "tokens_per_problem": toks / (len(rows) * n),
           "truncation_rate": sum(not r["finished"] for r in rows) / len(rows), "problems": len(flat) // k,
           "samples": k}
    if k > 1:  # pass@k over the k samples of each problem
        per = {}
        for r, vs in zip(rows, verdicts):
            for j, v in enumerate(vs):
                per.setdefault((r["group"], j), []).append(v)
        res[f"mean@{k}"] = res["accuracy"]
        res[f"pass@{k}"] = statistics.mean(pass_at_k(len(v), sum(v), k) for v in per.values())
        res["pass@1"] = statistics.mean(pass_at_k(len(v), sum(v), 1) for v in per.values())
    return res


def scaling_table(model, tok, problems, ns, budget, temperature, seed=0, samples=1, stop_at_last_answer=False,
                  thinking=False, batch_rows=None):
    """{str(N): {accuracy, tokens_per_problem, truncation_rate, ...}} in the BCR format; bcr.py uses this."""
    out = {}
    for n in ns:
        rows = generate_rows(model, tok, problems, n, budget, temperature, samples, seed + n,
                             stop_at_last_answer=stop_at_last_answer, batch_rows=batch_rows)
        out[str(n)] = summarize(rows, grade_rows(rows, tok, n, "bcr", thinking=thinking), n)
    return out


def _length_stats(xs):
    if not xs:
        return {"count": 0, "mean": None, "median": None, "p90": None}
    s = sorted(xs)
    return {"count": len(s), "mean": statistics.mean(s), "median": statistics.median(s),
            "p90": s[min(len(s) - 1, math.ceil(0.9 * len(s)) - 1)]}


def problem_lengths(rows, verdicts, tok, n, thinking=False):
    """Tokens of each answered problem, split by correctness: {"correct": [...], "incorrect": [...]}.
    At N=1 a problem is charged its whole response; at N > 1, see tokens_per_problem."""
    out = {"correct": [], "incorrect": []}
    for r, vs in zip(rows, verdicts):
        per = [len(r["tokens"])] if n == 1 else tokens_per_problem(r["tokens"], tok, n, thinking)
        for t, v in zip(per, vs):
            if t is not None:
                out["correct" if v else "incorrect"].append(t)
    return out


def length_by_correctness(lengths):
    """Mean, median and p90 of problem_lengths' correct and incorrect lists."""
    return {k: _length_stats(v) for k, v in lengths.items()}


def evaluate(model, tok, problems, ns, budget, temperature, samples, seed, budgets=None, stop_at_last_answer=False,
             thinking=False, batch_rows=None, top_p=1.0, progress=None):
    """Every table for one model on one benchmark; returns the results dict."""
    budgets = budgets or sorted({max(1, budget // d) for d in (16, 8, 4, 2, 1)})
    res = {"scaling": {}, "budget_curve": {}, "length_by_correctness": {}, "batch_vs_single": {}, "lengths": {}}

    def tables(key, rows, n, style):
        verdicts = grade_rows(rows, tok, n, style, thinking=thinking)
        res["scaling"][key] = summarize(rows, verdicts, n)
        res["lengths"][key] = problem_lengths(rows, verdicts, tok, n, thinking)
        res["length_by_correctness"][key] = length_by_correctness(res["lengths"][key])
        res["budget_curve"][key] = {str(b): summarize(rows, grade_rows(rows, tok, n, style, b, thinking), n)["accuracy"]
                                    for b in budgets}
        print(f"N={key}: " + json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                         for k, v in res["scaling"][key].items()}), flush=True)

    for n in ns:
        tables(str(n), generate_rows(model, tok, problems, n, budget, temperature, samples, seed + n,
                                     stop_at_last_answer=stop_at_last_answer, batch_rows=batch_rows, top_p=top_p,
                                     progress=progress), n, "bcr")
    tables("1-standard", generate_rows(model, tok, problems, 1, budget, temperature, samples, seed,
                                       style="standard", batch_rows=batch_rows, top_p=top_p, progress=progress),
           1, "standard")
    if 1 in ns:
        single = res["scaling"]["1"]
        for n in ns:
            if n > 1:  # the same problems, one at a time vs n at a time
                multi = res["scaling"][str(n)]
                res["batch_vs_single"][str(n)] = {
                    "tokens_saved": 1 - multi["tokens_per_problem"] / single["tokens_per_problem"],
                    "accuracy_change": multi["accuracy"] - single["accuracy"]}
    return res


# ---------------------------------------------------------------------------------------------
# presets and the run: --preset P evaluates as bcr.py's training preset P samples (this file cannot
# import bcr, which imports it: tests/test_data.py checks that EVAL_PRESETS agrees with bcr.PRESETS)

EVAL_PRESETS = {
    "toy": {},  # the flags' defaults: float32, T = 1, top-p 1, the toy's budget and stop rule
    # top-p 0.95 with T = 0.6: what DeepSeek (R1 distills) and Qwen (Qwen3 thinking) recommend for these
    # models; training samples at top-p 1 (sample.py: the sampler's log-probs are then the policy's)
    "r1-1.5b": dict(model="deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", data=["math500"], n=[1, 2, 3, 4, 5],
                    dtype="bfloat16", temperature=0.6, top_p=0.95, budget=5120, stop_at_last_answer=False),
    "qwen3-4b": dict(model="Qwen/Qwen3-4B-Thinking-2507", data=["math500"], n=[1, 2, 3, 4, 5],
                     dtype="bfloat16", temperature=0.6, top_p=0.95, budget=8000, stop_at_last_answer=False),
}


def rows_planned(sizes, ns, samples):
    """Rows (prompts x samples) that evaluate() generates for benchmarks of these sizes: P // N prompts
    per N, and P for the standard N=1 prompt."""
    return sum((sum(p // n for n in ns) + p) * samples for p in sizes)


@contextlib.contextmanager
def progress_bar(rows, desc="eval", log=print, every=60):
    """A progress(roll) callback for one evaluation run: a bar over `rows` rows with the generated
    tokens/s and the time left (a log line every `every` seconds when stderr is not a terminal)."""
    bar = tqdm(total=rows, desc=desc, unit="row", dynamic_ncols=True, smoothing=0.1,
               disable=not sys.stderr.isatty() and os.environ.get("BCR_BAR") != "1")
    t0, seen = time.time(), {"rows": 0, "tokens": 0, "logged": time.time()}

    def progress(roll):
        seen["tokens"] += int(roll.lengths.sum())
        seen["rows"] += len(roll.lengths)
        bar.update(len(roll.lengths))  # a disabled bar counts nothing: seen["rows"] does
        speed = seen["tokens"] / max(time.time() - t0, 1e-9)
        bar.set_postfix_str(f"{speed:.0f} tok/s")
        if bar.disable and time.time() - seen["logged"] >= every:
            seen["logged"] = time.time()
            left = (time.time() - t0) / seen["rows"] * max(rows - seen["rows"], 0)
            log(f"{desc}: {seen['rows']}/{rows} rows, {speed:.0f} tokens/s, about {left / 60:.1f} min left")
    try:
        yield progress
    finally:
        bar.close()


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="toy", choices=sorted(EVAL_PRESETS),
                    help="evaluate as this bcr.py preset samples (dtype, T, top-p, budget, stop rule); flags override")
    ap.add_argument("--model", help="'toy', a run's ckpt directory, a hub id or a .gguf path")
    ap.add_argument("--data", nargs="+", default=["toy"],
                    help="one or more of: 'toy', a benchmark name, a .jsonl path, a hub dataset")
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    ap.add_argument("--n", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--budget", type=int, default=None,
                    help=f"max new tokens per prompt (toy: {toy.BUDGET}, as bcr.py trains and evaluates; else 32768)")
    ap.add_argument("--budgets", type=int, nargs="+", help="budget-curve points (default B/16 .. B)")
    ap.add_argument("--problems", type=int, default=None,
                    help=f"use the first M problems of each benchmark (toy: {toy.EVAL_PROBLEMS})")
    ap.add_argument("--samples", type=int, default=1, help="samples per prompt (k in mean@k, pass@k)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=1.0, help="sample from the smallest set of tokens of this mass")
    ap.add_argument("--seed", type=int, default=toy.EVAL_SEED)
    ap.add_argument("--base-seed", type=int, default=0, help="--model toy: the warm-start seed of the base model")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--out", default="out/eval", help="run directory (with --compare: where --plot writes)")
    ap.add_argument("--plot", action="store_true", help="also write PNGs (needs matplotlib)")
    ap.add_argument("--stop-at-last-answer", action=argparse.BooleanOptionalAction,
                    help="end a response once its 'Answer N:' line is complete, as bcr.py does "
                         "(default: on for the toy)")
    ap.add_argument("--thinking", action=argparse.BooleanOptionalAction,
                    help="answers count only after </think> (default: when the chat template opens <think>)")
    ap.add_argument("--compare", nargs=2, metavar=("DIR_A", "DIR_B"))
    return ap


def parse_args(argv=None):
    """(parser, args): flags over the preset over the defaults."""
    ap = build_parser()
    ap.set_defaults(**EVAL_PRESETS[ap.parse_known_args(argv)[0].preset])
    args = ap.parse_args(argv)
    if not 0 < args.top_p <= 1:
        ap.error(f"--top-p {args.top_p}: must be in (0, 1]")
    return ap, args


def main(argv=None):
    ap, args = parse_args(argv)
    if args.compare:
        print(compare(*args.compare))
        if args.plot:
            runs = [(os.path.basename(os.path.normpath(d)), load_results(d)) for d in args.compare]
            for p in plot(runs, args.out):
                print(f"wrote {p}")
        return
    if not args.model:
        ap.error("--model is required (or --compare DIR_A DIR_B)")
    if "toy" in args.data and len(args.data) > 1:
        ap.error("--data toy cannot share a run with other benchmarks (its budget and stop rule differ)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    is_toy = args.data == ["toy"]
    budget = args.budget or (toy.BUDGET if is_toy else 32768)
    stop = is_toy if args.stop_at_last_answer is None else args.stop_at_last_answer
    data = {}  # load every benchmark before the model: a bad name fails in a second, not after loading
    for spec in args.data:
        if spec == "toy":
            data["toy"] = load_problems("toy", split="test", n=args.problems or toy.EVAL_PROBLEMS)
        else:
            name = os.path.splitext(os.path.basename(spec))[0] if os.path.exists(spec) else spec
            if name in data:
                ap.error(f"--data: two benchmarks named {name!r} ({args.data})")
            data[name] = load_problems(spec, args.data_dir)[: args.problems]
    model, tok = load_model(args.model, device, args.dtype, args.base_seed)
    thinking = rw.opens_thinking(tok) if args.thinking is None else args.thinking
    results = {}
    with progress_bar(rows_planned([len(v) for v in data.values()], args.n, args.samples)) as progress:
        for name, problems in data.items():
            print(f"{args.model} on {name}: {len(problems)} problems, N = {args.n}, budget {budget}, "
                  f"{args.samples} sample(s), T = {args.temperature}, top-p {args.top_p}", flush=True)
            results[name] = evaluate(model, tok, problems, args.n, budget, args.temperature, args.samples,
                                     args.seed, args.budgets, stop, thinking, top_p=args.top_p, progress=progress)
    meta = {"model": args.model, "preset": args.preset, "data": args.data, "budget": budget, "samples": args.samples,
            "temperature": args.temperature, "top_p": args.top_p, "dtype": args.dtype, "seed": args.seed,
            "problems": {k: len(v) for k, v in data.items()}, "stop_at_last_answer": stop, "thinking": thinking}
    write_outputs(results, args.out, meta)
    if args.plot:
        for p in plot([(os.path.basename(os.path.normpath(args.out)), {"benchmarks": results})], args.out):
            print(f"wrote {p}")
    print(f"wrote {args.out}/results.json and CSVs")


if __name__ == "__main__":
    main()
