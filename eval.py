"""
eval.py: measure what BCR claims, on any Hugging Face model and any benchmark.

    python eval.py --model PATH_OR_HUB_ID --data NAME_OR_JSONL [--n 1 2 3 4 5] [--budget B]
                   [--samples K] [--out DIR] [--plot]
    python eval.py --compare DIR_A DIR_B

Tables (all written to DIR as results.json and CSV files):
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

The prompt builder and the grader are bcr.build_prompt and reward.py, the same as in training.
"""
import argparse
import csv
import json
import math
import os
import statistics

import torch

import reward as rw
import sample
from bcr import DEFAULT_DATA_DIR, build_prompt, end_at_last_answer, load_problems, problem_correctness


def pass_at_k(n, c, k):
    """Unbiased pass@k for one problem with n samples of which c are correct (Chen et al. 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def answer_line_ends(text, n):
    """Character offset just past each problem's (last) "Answer k:" line and its newline, None if absent."""
    ends = [None] * n
    for m in rw._ANSWER_LINE_RE.finditer(text):
        k = int(m.group(1))
        if 1 <= k <= n:
            e = text.find("\n", m.end())
            ends[k - 1] = len(text) if e == -1 else e + 1
    return ends


def tokens_per_problem(token_ids, tokenizer, n):
    """Tokens charged to each problem: from the end of the previous answer line to the end of its
    own. Problems with no answer line get None. Offsets come from decoding token by token."""
    pieces = tokenizer.batch_decode([[t] for t in token_ids], skip_special_tokens=True)
    cum, offsets = 0, []
    for p in pieces:
        cum += len(p)
        offsets.append(cum)  # characters decoded after token i
    text = "".join(pieces)
    out, prev_tok = [], 0
    for end in answer_line_ends(text, n):
        if end is None:
            out.append(None)
            continue
        tok_end = next((i + 1 for i, o in enumerate(offsets) if o >= end), len(offsets))
        out.append(max(tok_end - prev_tok, 0))
        prev_tok = tok_end
    return out


def generate_rows(model, tok, problems, n, budget, temperature, samples, seed, style="bcr", batch_rows=512,
                  stop_at_last_answer=False):
    """Generate for consecutive groups of n problems; one record per (prompt, sample). With
    stop_at_last_answer, a BCR-format response ends once its "Answer n:" line is complete."""
    groups = [problems[i:i + n] for i in range(0, len(problems) - n + 1, n)]
    prompts = [build_prompt(tok, [p["question"] for p in g], style) for g in groups]
    per_call = max(1, batch_rows // samples)
    rows = []
    for c, s in enumerate(range(0, len(prompts), per_call)):
        roll = sample.generate(model, prompts[s:s + per_call], samples, budget, temperature,
                               eos_token_ids=[tok.eos_token_id], pad_token_id=tok.pad_token_id,
                               seed=seed * 1000 + c)
        if stop_at_last_answer and style == "bcr":
            end_at_last_answer(roll, tok, n)
        for i in range(len(roll.lengths)):
            g = groups[s + i // samples]
            rows.append({"group": s + i // samples, "sample": i % samples, "golds": [p["answer"] for p in g],
                         "ids": [p["id"] for p in g], "tokens": roll.tokens(i), "finished": bool(roll.finished[i])})
    return rows


def grade_rows(rows, tok, n, style, budget=None):
    """Per-problem verdicts of each row, optionally as if the budget had been `budget` tokens."""
    out = []
    for r in rows:
        toks = r["tokens"] if budget is None else r["tokens"][:budget]
        finished = r["finished"] and len(r["tokens"]) <= len(toks)
        out.append(problem_correctness(tok.decode(toks, skip_special_tokens=True), r["golds"], finished, style))
    return out


def summarize(rows, verdicts, n):
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


def scaling_table(model, tok, problems, ns, budget, temperature, seed=0, samples=1, stop_at_last_answer=False):
    """{str(N): {accuracy, tokens_per_problem, truncation_rate, ...}} in the BCR format; bcr.py uses this."""
    out = {}
    for n in ns:
        rows = generate_rows(model, tok, problems, n, budget, temperature, samples, seed + n,
                             stop_at_last_answer=stop_at_last_answer)
        out[str(n)] = summarize(rows, grade_rows(rows, tok, n, "bcr"), n)
    return out


def _length_stats(xs):
    if not xs:
        return {"count": 0, "mean": None, "median": None, "p90": None}
    s = sorted(xs)
    return {"count": len(s), "mean": statistics.mean(s), "median": statistics.median(s),
            "p90": s[min(len(s) - 1, math.ceil(0.9 * len(s)) - 1)]}


def length_by_correctness(rows, verdicts, tok, n):
    right, wrong = [], []
    for r, vs in zip(rows, verdicts):
        per = [len(r["tokens"])] if n == 1 else tokens_per_problem(r["tokens"], tok, n)
        for t, v in zip(per, vs):
            if t is not None:
                (right if v else wrong).append(t)
    return {"correct": _length_stats(right), "incorrect": _length_stats(wrong)}


def evaluate(model, tok, problems, ns, budget, temperature, samples, seed, budgets=None, stop_at_last_answer=False):
    """Every table for one model; returns the results dict."""
    budgets = budgets or sorted({max(1, budget // d) for d in (16, 8, 4, 2, 1)})
    res = {"scaling": {}, "budget_curve": {}, "length_by_correctness": {}, "batch_vs_single": {}}
    rows_by_n = {}
    for n in ns:
        rows = generate_rows(model, tok, problems, n, budget, temperature, samples, seed + n,
                             stop_at_last_answer=stop_at_last_answer)
        rows_by_n[n] = rows
        verdicts = grade_rows(rows, tok, n, "bcr")
        res["scaling"][str(n)] = summarize(rows, verdicts, n)
        res["length_by_correctness"][str(n)] = length_by_correctness(rows, verdicts, tok, n)
        res["budget_curve"][str(n)] = {str(b): summarize(rows, grade_rows(rows, tok, n, "bcr", b), n)["accuracy"]
                                      for b in budgets}
        print(f"N={n}: " + json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                       for k, v in res["scaling"][str(n)].items()}), flush=True)
    rows = generate_rows(model, tok, problems, 1, budget, temperature, samples, seed, style="standard")
    verdicts = grade_rows(rows, tok, 1, "standard")
    res["scaling"]["1-standard"] = summarize(rows, verdicts, 1)
    res["length_by_correctness"]["1-standard"] = length_by_correctness(rows, verdicts, tok, 1)
    print("N=1 standard: " + json.dumps(res["scaling"]["1-standard"]), flush=True)
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
# output


def write_outputs(res, out_dir, meta):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"meta": meta, **res}, f, indent=1)
    with open(os.path.join(out_dir, "scaling.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["N", "accuracy", "tokens_per_problem", "truncation_rate", "problems"])
        for n, r in res["scaling"].items():
            w.writerow([n, r["accuracy"], r["tokens_per_problem"], r["truncation_rate"], r["problems"]])
    with open(os.path.join(out_dir, "budget_curve.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["N", "budget", "accuracy"])
        for n, curve in res["budget_curve"].items():
            for b, acc in curve.items():
                w.writerow([n, b, acc])
    with open(os.path.join(out_dir, "length_by_correctness.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["N", "which", "count", "mean", "median", "p90"])
        for n, d in res["length_by_correctness"].items():
            for which, s in d.items():
                w.writerow([n, which, s["count"], s["mean"], s["median"], s["p90"]])


def plot(res, out_dir):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib: pip install matplotlib")
        return []
    paths = []
    ns = [n for n in res["scaling"] if n.isdigit()]
    fig, ax1 = plt.subplots(figsize=(5, 3.5))
    ax1.plot([int(n) for n in ns], [res["scaling"][n]["tokens_per_problem"] for n in ns], "o-", color="C0")
    ax1.set_xlabel("N (problems per prompt)")
    ax1.set_ylabel("tokens per problem", color="C0")
    ax2 = ax1.twinx()
    ax2.plot([int(n) for n in ns], [res["scaling"][n]["accuracy"] for n in ns], "s--", color="C1")
    ax2.set_ylabel("accuracy", color="C1")
    ax2.set_ylim(0, 1.05)
    ax1.set_title("task scaling")
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "task_scaling.png"))
    fig.savefig(paths[-1], dpi=120)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for n, curve in res["budget_curve"].items():
        ax.plot([int(b) for b in curve], list(curve.values()), "o-", label=f"N={n}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("token budget")
    ax.set_ylabel("accuracy")
    ax.legend()
    ax.set_title("budget curve")
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "budget_curve.png"))
    fig.savefig(paths[-1], dpi=120)
    plt.close("all")
    return paths


def compare(dir_a, dir_b):
    """Base (A) vs trained (B), paper layout: accuracy and tokens per N, deltas in points and %."""
    def load(d):
        p = os.path.join(d, "results.json")
        if not os.path.exists(p):
            raise FileNotFoundError(f"--compare: {p} not found (run eval.py --out {d} first)")
        with open(p) as f:
            return json.load(f)

    a, b = load(dir_a), load(dir_b)
    name_a, name_b = a["meta"].get("model", dir_a), b["meta"].get("model", dir_b)
    lines = [f"A = {name_a} ({a['meta'].get('data')}),  B = {name_b} ({b['meta'].get('data')})",
             f"{'N':>10} | {'acc A':>6} {'acc B':>6} {'d pts':>6} | {'tok A':>8} {'tok B':>8} {'d %':>7}"]
    for n in a["scaling"]:
        if n not in b["scaling"]:
            continue
        ra, rb = a["scaling"][n], b["scaling"][n]
        dp = (rb["accuracy"] - ra["accuracy"]) * 100
        dt = (rb["tokens_per_problem"] / ra["tokens_per_problem"] - 1) * 100 if ra["tokens_per_problem"] else float("nan")
        lines.append(f"{n:>10} | {ra['accuracy'] * 100:>6.1f} {rb['accuracy'] * 100:>6.1f} {dp:>+6.1f} | "
                     f"{ra['tokens_per_problem']:>8.1f} {rb['tokens_per_problem']:>8.1f} {dt:>+6.1f}%")
    return "\n".join(lines)


def load_any(model_spec, device, dtype="float32"):
    """'toy' (the cached toy base model), a local directory, or a hub id (+ .gguf file: DIR/FILE.gguf)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model_spec == "toy":
        import toy

        model, tok = toy.load_or_train_base(toy.base_dir(0))
    elif model_spec.endswith(".gguf"):
        d, f = os.path.split(model_spec)
        tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=getattr(torch, dtype))
    else:
        tok = AutoTokenizer.from_pretrained(model_spec)
        model = AutoModelForCausalLM.from_pretrained(model_spec, dtype=getattr(torch, dtype))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model.to(device).eval(), tok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="'toy', a run's ckpt directory, a hub id or a .gguf path")
    ap.add_argument("--data", default="toy", help="'toy', a benchmark name, a .jsonl path or a hub dataset")
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    ap.add_argument("--n", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--budget", type=int, default=None, help="max new tokens per prompt (toy: 150, as bcr.py trains and evaluates; else 32768)")
    ap.add_argument("--budgets", type=int, nargs="+", help="budget-curve points (default B/16 .. B)")
    ap.add_argument("--problems", type=int, default=None, help="use the first M problems (toy: 600)")
    ap.add_argument("--samples", type=int, default=1, help="samples per prompt (k in mean@k, pass@k)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--out", default="out/eval")
    ap.add_argument("--plot", action="store_true")
    ap.add_argument("--stop-at-last-answer", action=argparse.BooleanOptionalAction,
                    help="end a response once its 'Answer N:' line is complete, as bcr.py does (default: on for the toy)")
    ap.add_argument("--compare", nargs=2, metavar=("DIR_A", "DIR_B"))
    args = ap.parse_args(argv)
    if args.compare:
        print(compare(*args.compare))
        return
    if not args.model:
        ap.error("--model is required (or --compare DIR_A DIR_B)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    is_toy = args.data == "toy"
    budget = args.budget or (150 if is_toy else 32768)
    stop = is_toy if args.stop_at_last_answer is None else args.stop_at_last_answer
    if is_toy:
        problems = load_problems("toy", split="test", n=args.problems or 600)
    else:
        problems = load_problems(args.data, args.data_dir)[: args.problems]
    model, tok = load_any(args.model, device, args.dtype)
    print(f"{args.model} on {args.data}: {len(problems)} problems, N = {args.n}, budget {budget}, "
          f"{args.samples} sample(s), T = {args.temperature}")
    res = evaluate(model, tok, problems, args.n, budget, args.temperature, args.samples, args.seed, args.budgets, stop)
    meta = {"model": args.model, "data": args.data, "budget": budget, "samples": args.samples,
            "temperature": args.temperature, "seed": args.seed, "problems": len(problems), "stop_at_last_answer": stop}
    write_outputs(res, args.out, meta)
    if args.plot:
        for p in plot(res, args.out):
            print(f"wrote {p}")
    print(f"wrote {args.out}/results.json and CSVs")


if __name__ == "__main__":
    main()
