"""
The toy's seed table: `python bcr.py` for every warm-start seed x RL seed, the paper's three claims
for each run, and the time each run took (a base seed's first run includes its warm start).

    python scripts/toy_seeds.py                                   # 3 x 3 runs, then the length penalty
    python scripts/toy_seeds.py --base-seeds 0 --seeds 0 --length-penalty 0.5 2

Each run is `python bcr.py --base-seed B --seed S --out <out>/b<B>-s<S>` in a subprocess; a run
whose scaling.json exists is read, not run again (delete it to rerun). The length-penalty runs use
RL seed 0 on every base. Prints a markdown table (docs/toy_world.md keeps it; a run read back
shows the total time its log printed) and writes <out>/seeds.json.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from report import claims, lunch_rows  # noqa: E402


def logged_seconds(log_path):
    """The "total time Ns" that bcr.py printed last in a run's log, or None."""
    if not os.path.exists(log_path):
        return None
    times = re.findall(r"^total time (\d+)s$", open(log_path).read(), re.M)
    return float(times[-1]) if times else None


def run(out, flags):
    """scaling.json of `python bcr.py flags --out out`, and the seconds the run took: the wall time
    of the subprocess, or, for a run read back, the total time its log printed (None: no log)."""
    path = os.path.join(out, "scaling.json")
    if os.path.exists(path):
        return json.load(open(path)), logged_seconds(out + ".log")
    t0 = time.time()
    cmd = [sys.executable, os.path.join(ROOT, "bcr.py"), *flags, "--out", out]
    print("$", " ".join(cmd[1:]), flush=True)
    with open(out + ".log", "w") as log:
        done = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {done.returncode}); see {out}.log")
    return json.load(open(path)), time.time() - t0


def row(label, res, ns, seconds):
    c = claims(res, ns)
    lunch, law = c["free_lunch"], c["scaling_law"]
    b, t = res["base"], res["bcr"]
    lb, lt = lunch_rows(res, ns)
    yes = {True: "yes", False: "**no**"}

    def accs(model):
        return " / ".join(f"{model[str(n)]['accuracy']:.2f}" for n in ns)
    return (f"| {label} | {lb['accuracy']:.3f} -> {lt['accuracy']:.3f} | "
            f"{lb['tokens_per_problem']:.1f} -> {lt['tokens_per_problem']:.1f} ({lunch['tokens']:+.0%}) "
            f"{yes[lunch['holds']]} | {' / '.join(f'{x:.1f}' for x in law['tokens_per_problem'])} "
            f"({-law['fall']:+.0%} from N=1 to 4, {law['max_truncation']:.0%} cut) {yes[law['holds']]} | "
            f"{accs(t)} | {accs(b)} | "
            f"{'-' if seconds is None else f'{seconds:.0f} s'} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="RL seeds")
    ap.add_argument("--length-penalty", type=float, nargs="*", default=[0.5],
                    help="LAMBDA values for the explicit-penalty baseline (none: skip it)")
    ap.add_argument("--out", default="out/seeds")
    ap.add_argument("--flags", default="", help="more bcr.py flags for every run, one string")
    args = ap.parse_args()
    ns = [1, 2, 3, 4]
    os.makedirs(args.out, exist_ok=True)
    extra = args.flags.split()
    head = ("| base seed, RL seed | N=1 accuracy (room to finish), base -> BCR | "
            "N=1 tokens per problem, base -> BCR, free lunch | "
            "BCR tokens per problem, N = 1 / 2 / 3 / 4, scaling law | BCR accuracy, N = 1..4 | "
            "base accuracy, N = 1..4 | time |\n|---|---|---|---|---|---|---|")
    lines, record = [head], {}
    for b in args.base_seeds:
        for s in args.seeds:
            res, sec = run(os.path.join(args.out, f"b{b}-s{s}"), ["--base-seed", str(b), "--seed", str(s), *extra])
            lines.append(row(f"{b}, {s}", res, ns, sec))
            record[f"b{b}-s{s}"] = {"claims": claims(res, ns), "seconds": sec}
            print(lines[-1], flush=True)
    lp_lines = []
    for lam in args.length_penalty:
        for b in args.base_seeds:
            out = os.path.join(args.out, f"b{b}-s0-lp{lam:g}")
            res, sec = run(out, ["--base-seed", str(b), "--seed", "0", "--length-penalty", str(lam), *extra])
            lp_lines.append(row(f"{b}, 0, lambda {lam:g}", res, ns, sec))
            record[os.path.basename(out)] = {"claims": claims(res, ns), "seconds": sec}
            print(lp_lines[-1], flush=True)
    print("\n".join(lines))
    if lp_lines:
        print("\nexplicit length penalty r - lambda * len / budget (same columns; 'BCR' is the penalised model)\n")
        print("\n".join([head] + lp_lines))
    with open(os.path.join(args.out, "seeds.json"), "w") as f:
        json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
