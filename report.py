"""
report.py: what a run prints and writes: tables, results.json and CSV files, plots.

    write_outputs / load_results   results.json = {"meta": {...}, "benchmarks": {name: eval.evaluate()'s dict}}
    compare(dir_a, dir_b)          the paper's base-vs-trained table (eval.py --compare)
    plot(runs, out_dir)            task scaling, budget curve, length histograms (matplotlib, optional)
    print_table(res, ns, label)    bcr.py's base-vs-trained table per N
    claims(res, ns)                the free lunch and the task-scaling law read off that table
"""
import csv
import json
import os
import statistics

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:  # optional: only --plot needs it
    plt = None

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


def run_label(args):
    """What the trained model is called in the printout: BCR or the baseline the flags select."""
    if args.reward == "truncation":
        return "trunc"
    if args.length_penalty:
        return "lenpen"
    return "GRPO" if args.n == [1] else "BCR"


def print_table(res, ns, label="BCR", log=print):
    """Base vs trained, per N (res["bcr"] holds the trained model's row, whatever its reward), and
    the free lunch's N=1 row at its own budget when res has one (res["lunch"])."""
    def row(n, b, t):
        d = (t["tokens_per_problem"] / b["tokens_per_problem"] - 1) * 100
        return (f"{n:>2} | {b['accuracy']:>8.3f} {b['tokens_per_problem']:>13.1f} | "
                f"{t['accuracy']:>10.3f} {t['tokens_per_problem']:>14.1f} | {d:>+6.1f}%")
    lines = [f"{'N':>2} | {'base acc':>8} {'base tok/prob':>13} | {label + ' acc':>10} {label + ' tok/prob':>14} | "
             f"{'tokens':>7}", "-" * 68]
    lines += [row(n, res["base"][str(n)], res["bcr"][str(n)]) for n in ns]
    if "lunch" in res:
        lines += [f"N=1 with room to finish (budget {res['lunch']['budget']}):",
                  row(1, res["lunch"]["base"], res["lunch"]["bcr"])]
    log("\n".join(lines))


# what the toy must show (issue #20); the paper's own numbers: 16-63% fewer tokens at N=1
FREE_LUNCH_TOKENS, FREE_LUNCH_ACC, SCALING_FALL = -0.30, -0.01, 0.15
# a fall in tokens per problem that comes from responses cut at the budget is the cap, not the law
MAX_TRUNCATION = 0.5


def lunch_rows(res, ns):
    """(base row, trained row) that the free lunch compares: the N=1 evaluation with room to finish
    (res["lunch"]) when the run has one, else the table's row at the smallest N."""
    if "lunch" in res:
        return res["lunch"]["base"], res["lunch"]["bcr"]
    n = str(min(ns))
    return res["base"][n], res["bcr"][n]


def claims(res, ns):
    """The free lunch and the task-scaling law, read off bcr.py's scaling.json ({"base": {str(N):
    row}, "bcr": {str(N): row}}, and {"lunch": {"budget", "base": row, "bcr": row}} when the
    free lunch had its own N=1 evaluation), for the Ns in increasing order:

      free lunch     at N=1 with room to finish (res["lunch"]; without it, at the smallest N of
                     the table) the trained model's tokens per problem change by `tokens` (a
                     fraction of the base's) and its accuracy by `accuracy`; holds when tokens
                     <= -30% and accuracy >= -1 point
      scaling law    the trained model's tokens per problem fall strictly from each N to the
                     next, by `fall` (a fraction) from the first N to the last, and its accuracy
                     is at least the base's at every N; holds when all three do, fall >= 15%
                     and at most half of its responses are cut by the budget at any N
    """
    ns = sorted(ns)
    b, t = ({str(n): res[k][str(n)] for n in ns} for k in ("base", "bcr"))
    first, last = str(ns[0]), str(ns[-1])
    toks = [t[str(n)]["tokens_per_problem"] for n in ns]
    lb, lt = lunch_rows(res, ns)
    lunch_tok = lt["tokens_per_problem"] / lb["tokens_per_problem"] - 1
    lunch_acc = lt["accuracy"] - lb["accuracy"]
    strict = all(x > y for x, y in zip(toks, toks[1:]))
    fall = 1 - t[last]["tokens_per_problem"] / t[first]["tokens_per_problem"]
    above = all(t[k]["accuracy"] >= b[k]["accuracy"] for k in t)
    cut = max(t[k].get("truncation_rate", 0.0) for k in t)
    return {"free_lunch": {"tokens": lunch_tok, "accuracy": lunch_acc,
                           **({"budget": res["lunch"]["budget"]} if "lunch" in res else {}),
                           "holds": lunch_tok <= FREE_LUNCH_TOKENS and lunch_acc >= FREE_LUNCH_ACC},
            "scaling_law": {"tokens_per_problem": toks, "strictly_falling": strict, "fall": fall,
                            "accuracy_at_least_base": above, "max_truncation": cut,
                            "holds": strict and above and fall >= SCALING_FALL and cut <= MAX_TRUNCATION}}


def print_claims(c, ns, log=print):
    lunch, law = c["free_lunch"], c["scaling_law"]
    yes = {True: "holds", False: "does not hold"}
    where = f"N=1 (budget {lunch['budget']})" if "budget" in lunch else f"N={min(ns)}"
    log(f"free lunch at {where}: tokens per problem {lunch['tokens']:+.1%}, accuracy "
        f"{lunch['accuracy'] * 100:+.1f} points ({yes[lunch['holds']]}: <= {FREE_LUNCH_TOKENS:.0%} at >= "
        f"{FREE_LUNCH_ACC * 100:+.0f} point)")
    log(f"task-scaling law: tokens per problem {' / '.join(f'{x:.1f}' for x in law['tokens_per_problem'])} "
        f"(strictly falling: {law['strictly_falling']}), {law['fall']:.1%} less from N={min(ns)} to N={max(ns)}, "
        f"accuracy >= base at every N: {law['accuracy_at_least_base']}, at most {law['max_truncation']:.0%} "
        f"cut by the budget ({yes[law['holds']]}: falling, >= {SCALING_FALL:.0%}, <= {MAX_TRUNCATION:.0%} cut)")
