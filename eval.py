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

--plot draws the task-scaling curve, the budget curve and the length histograms (matplotlib,
optional); with --compare it draws both runs on the same axes. --compare prints the base-vs-trained
table in the paper's layout (accuracy and tokens per benchmark, changes in points and in %).

Also the rollouts that bcr.py trains on: the BCR format with its stop rule (rollouts). The prompt
builder and the verdicts are reward.py's, the same as in training; data.py loads problems and models.

Thinking models (R1-style, Qwen3-Thinking: the chat template opens "<think>"): answers count only
after "</think>" (reward.final_answers), and tokens are charged to a problem only after the
thinking, which is shared by all N problems and so belongs to none of them.
"""
import argparse
import contextlib
import csv
import json
import math
import os
import statistics
import sys
import time

import torch
from tqdm import tqdm

import reward as rw
import sample
import toy
from data import DEFAULT_DATA_DIR, load_model, load_problems

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:  # optional: only --plot needs it
    plt = None

# ---------------------------------------------------------------------------------------------
# rollouts in the BCR format, and the tables


def rollouts(model, tok, prompts, n, samples, budget, temperature, seed, stop_at_last_answer=False):
    """sample.generate for prompts of n problems each; with stop_at_last_answer a response ends once
    its "Answer n:" line is complete, as a stop string would end it (bcr.py says why)."""
    roll = sample.generate(model, prompts, samples, budget, temperature, eos_token_ids=[tok.eos_token_id],
                           pad_token_id=tok.pad_token_id, seed=seed)
    if stop_at_last_answer:
        roll.stop_at(tok, lambda text: rw.last_answer_end(text, n) is not None)
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


def generate_rows(model, tok, problems, n, budget, temperature, samples, seed, style="bcr", batch_rows=512,
                  stop_at_last_answer=False):
    """Generate for consecutive groups of n problems, batch_rows rows per sampler call; one record
    per (prompt, sample). The stop rule applies to the BCR format only."""
    groups = [problems[i:i + n] for i in range(0, len(problems) - n + 1, n)]
    if not groups:
        raise ValueError(f"N={n} problems per prompt, but only {len(problems)} problems to evaluate on")
    prompts = [rw.build_prompt(tok, [p["question"] for p in g], style) for g in groups]
    per_call = max(1, batch_rows // samples)
    rows = []
    for c, s in enumerate(range(0, len(prompts), per_call)):
        roll = rollouts(model, tok, prompts[s:s + per_call], n, samples, budget, temperature, seed * 1000 + c,
                        stop_at_last_answer and style == "bcr")
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
                  thinking=False):
    """{str(N): {accuracy, tokens_per_problem, truncation_rate, ...}} in the BCR format; bcr.py uses this."""
    out = {}
    for n in ns:
        rows = generate_rows(model, tok, problems, n, budget, temperature, samples, seed + n,
                             stop_at_last_answer=stop_at_last_answer)
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
             thinking=False):
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
                                     stop_at_last_answer=stop_at_last_answer), n, "bcr")
    tables("1-standard", generate_rows(model, tok, problems, 1, budget, temperature, samples, seed,
                                       style="standard"), 1, "standard")
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
# output: results.json = {"meta": {...}, "benchmarks": {name: the dict evaluate() returns}}


def write_outputs(results, out_dir, meta):
    """results: {benchmark name: evaluate()'s dict}. Writes results.json and one CSV per table."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"meta": meta, "benchmarks": results}, f, indent=1)

    def table(name, header, rows):
        with open(os.path.join(out_dir, name), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["benchmark"] + header)
            w.writerows(rows)

    items = results.items()
    table("scaling.csv", ["N", "accuracy", "tokens_per_problem", "truncation_rate", "problems"],
          [[b, n, r["accuracy"], r["tokens_per_problem"], r["truncation_rate"], r["problems"]]
           for b, res in items for n, r in res["scaling"].items()])
    table("budget_curve.csv", ["N", "budget", "accuracy"],
          [[b, n, bud, acc] for b, res in items for n, curve in res["budget_curve"].items()
           for bud, acc in curve.items()])
    table("length_by_correctness.csv", ["N", "which", "count", "mean", "median", "p90"],
          [[b, n, which, s["count"], s["mean"], s["median"], s["p90"]]
           for b, res in items for n, d in res["length_by_correctness"].items() for which, s in d.items()])
    table("batch_vs_single.csv", ["N", "tokens_saved", "accuracy_change"],
          [[b, n, d["tokens_saved"], d["accuracy_change"]] for b, res in items
           for n, d in res["batch_vs_single"].items()])


def load_results(d):
    p = os.path.join(d, "results.json")
    if not os.path.exists(p):
        raise FileNotFoundError(f"{p} not found (run eval.py --out {d} first)")
    with open(p) as f:
        r = json.load(f)
    if "benchmarks" not in r:
        raise ValueError(f"{p}: no 'benchmarks' key; not a results.json written by eval.py")
    return r


def plot(runs, out_dir):
    """runs: [(label, results.json dict)], one or two (a base and a trained model). Per benchmark:
    <bench>_task_scaling.png (tokens per problem and accuracy against N), <bench>_budget_curve.png
    (accuracy against budget, one line per N) and <bench>_lengths.png (histograms of tokens per
    problem, correct and incorrect, one panel per run and N). Returns the paths written."""
    if plt is None:
        print("--plot needs matplotlib, which is optional: pip install matplotlib")
        return []
    os.makedirs(out_dir, exist_ok=True)
    paths, styles = [], ["--", "-"] if len(runs) == 2 else ["-"] * len(runs)
    benches = [b for b in runs[0][1]["benchmarks"] if all(b in r["benchmarks"] for _, r in runs)]

    def save(fig, name):
        fig.tight_layout()
        paths.append(os.path.join(out_dir, name))
        fig.savefig(paths[-1], dpi=110)

    for bench in benches:
        res = [(label, r["benchmarks"][bench]) for label, r in runs]
        ns = [n for n in res[0][1]["scaling"] if n.isdigit()]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.3))
        for (label, r), ls in zip(res, styles):
            xs = [int(n) for n in ns]
            ax1.plot(xs, [r["scaling"][n]["tokens_per_problem"] for n in ns], "o" + ls, label=label)
            ax2.plot(xs, [r["scaling"][n]["accuracy"] for n in ns], "s" + ls, label=label)
        ax1.set(xlabel="N (problems per prompt)", ylabel="tokens per problem", title=f"{bench}: tokens per problem")
        ax2.set(xlabel="N (problems per prompt)", ylabel="accuracy", ylim=(0, 1.02), title=f"{bench}: accuracy")
        for ax in (ax1, ax2):
            ax.set_xticks([int(n) for n in ns])
            ax.legend()
        save(fig, f"{bench}_task_scaling.png")

        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        for (label, r), ls in zip(res, styles):
            for i, n in enumerate(ns):
                curve = r["budget_curve"][n]
                ax.plot([int(b) for b in curve], list(curve.values()), "o" + ls, color=f"C{i}", label=f"{label}, N={n}")
        ax.set_xscale("log", base=2)
        budgets = sorted({int(b) for _, r in res for n in ns for b in r["budget_curve"][n]})
        ax.set_xticks(budgets, [str(b) for b in budgets])  # the measured budgets, not powers of two
        ax.minorticks_off()
        ax.set(xlabel="token budget (whole response)", ylabel="accuracy", ylim=(0, 1.02),
               title=f"{bench}: budget curve")
        ax.legend(fontsize=7, ncol=len(res))
        save(fig, f"{bench}_budget_curve.png")

        fig, axes = plt.subplots(len(res), len(ns), figsize=(2.6 * len(ns), 2.2 * len(res)), squeeze=False,
                                 sharex=True)
        top = max([max(v, default=0) for _, r in res for n in ns for v in r["lengths"][n].values()] + [1])
        bins = [top * i / 30 for i in range(31)]
        for row, (label, r) in zip(axes, res):
            for ax, n in zip(row, ns):
                ax.hist(r["lengths"][n]["correct"], bins=bins, alpha=0.6, label="correct")
                ax.hist(r["lengths"][n]["incorrect"], bins=bins, histtype="step", lw=1.5, label="incorrect")
                ax.set_title(f"{label}, N={n}", fontsize=9)
                if not any(r["lengths"][n].values()):
                    ax.text(0.5, 0.5, "no answer lines", transform=ax.transAxes, ha="center", va="center")
        axes[-1][0].set_xlabel("tokens per problem")
        axes[0][0].legend(fontsize=7)
        save(fig, f"{bench}_lengths.png")
    plt.close("all")
    return paths


def compare(dir_a, dir_b):
    """Base (A) vs trained (B) in the paper's layout: per benchmark and N, accuracy and tokens per
    problem of both, the change in points and in %; an average row per N over the benchmarks."""
    a, b = load_results(dir_a), load_results(dir_b)
    lines = [f"A = {a['meta'].get('model', dir_a)} ({dir_a}),  B = {b['meta'].get('model', dir_b)} ({dir_b})",
             f"{'benchmark':>14} {'N':>10} | {'acc A':>6} {'acc B':>6} {'d pts':>6} | "
             f"{'tok A':>8} {'tok B':>8} {'d %':>7}"]
    benches = [x for x in a["benchmarks"] if x in b["benchmarks"]]
    if not benches:
        raise ValueError(f"--compare: no benchmark in both runs ({sorted(a['benchmarks'])} vs "
                         f"{sorted(b['benchmarks'])})")

    def line(name, n, ra, rb):
        dp = (rb["accuracy"] - ra["accuracy"]) * 100
        ta, tb = ra["tokens_per_problem"], rb["tokens_per_problem"]
        dt = (tb / ta - 1) * 100 if ta else float("nan")
        return (f"{name:>14} {n:>10} | {ra['accuracy'] * 100:>6.1f} {rb['accuracy'] * 100:>6.1f} {dp:>+6.1f} | "
                f"{ra['tokens_per_problem']:>8.1f} {rb['tokens_per_problem']:>8.1f} {dt:>+6.1f}%")

    by_n = {}
    for bench in benches:
        sa, sb = a["benchmarks"][bench]["scaling"], b["benchmarks"][bench]["scaling"]
        for n in sa:
            if n in sb:
                lines.append(line(bench, n, sa[n], sb[n]))
                by_n.setdefault(n, []).append((sa[n], sb[n]))
    if len(benches) > 1:  # the paper's "Avg." row: plain means over the benchmarks
        for n, pairs in by_n.items():
            mean = [{k: statistics.mean(p[i][k] for p in pairs) for k in ("accuracy", "tokens_per_problem")}
                    for i in (0, 1)]
            lines.append(line(f"average ({len(pairs)})", n, *mean))
    return "\n".join(lines)


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
def sampling(top_p, rows, desc="eval", log=print, every=60):
    """For one evaluation run: sample with top-p, and show a progress bar over `rows` rows with the
    generated tokens/s and the time left (a log line a minute instead when stderr is not a terminal).
    generate_rows calls this module's rollouts() by name, once per sampler call, the one place that
    sees every call's tokens: so the run swaps in a rollouts that mirrors it plus both, and puts the
    original back after. `every`: seconds between log lines."""
    bar = tqdm(total=rows, desc=desc, unit="row", dynamic_ncols=True, smoothing=0.1,
               disable=not sys.stderr.isatty() and os.environ.get("BCR_BAR") != "1")
    plain, t0, seen = rollouts, time.time(), {"rows": 0, "tokens": 0, "logged": time.time()}

    def tracked(model, tok, prompts, n, samples, budget, temperature, seed, stop_at_last_answer=False):
        roll = sample.generate(model, prompts, samples, budget, temperature, top_p=top_p,
                               eos_token_ids=[tok.eos_token_id], pad_token_id=tok.pad_token_id, seed=seed)
        if stop_at_last_answer:
            roll.stop_at(tok, lambda text: rw.last_answer_end(text, n) is not None)
        seen["tokens"] += int(roll.lengths.sum())
        seen["rows"] += len(roll.lengths)
        bar.update(len(roll.lengths))  # a disabled bar counts nothing: seen["rows"] does
        speed = seen["tokens"] / max(time.time() - t0, 1e-9)
        bar.set_postfix_str(f"{speed:.0f} tok/s")
        if bar.disable and time.time() - seen["logged"] >= every:
            seen["logged"] = time.time()
            left = (time.time() - t0) / seen["rows"] * max(rows - seen["rows"], 0)
            log(f"{desc}: {seen['rows']}/{rows} rows, {speed:.0f} tokens/s, about {left / 60:.1f} min left")
        return roll

    globals()["rollouts"] = tracked
    try:
        yield bar
    finally:
        globals()["rollouts"] = plain
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
    with sampling(args.top_p, rows_planned([len(v) for v in data.values()], args.n, args.samples)):
        for name, problems in data.items():
            print(f"{args.model} on {name}: {len(problems)} problems, N = {args.n}, budget {budget}, "
                  f"{args.samples} sample(s), T = {args.temperature}, top-p {args.top_p}", flush=True)
            results[name] = evaluate(model, tok, problems, args.n, budget, args.temperature, args.samples,
                                     args.seed, args.budgets, stop, thinking)
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
