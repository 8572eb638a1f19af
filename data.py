"""
data.py: what a run reads, problems and models, from wherever they live.

    load_problems(spec, data_dir, split, seed, n, group_by, ...) -> [{"id", "question", "answer"}]
        spec: "toy" (the toy world's generator), a .json/.jsonl path, a benchmark name found in
        data_dir (BENCHMARKS), or a named hub dataset (HUB_DATASETS: the benchmarks when they are
        not in data_dir, DeepMath-103K as "deepmath"), read from a folder in the hub's layout in
        data_dir or fetched when online. A row keeps a "difficulty" number when it has one;
        group_by "difficulty" adds the fixed groups of similar difficulty (<out>/groups.json).
    load_model(spec, device, dtype, base_seed) -> (model, tokenizer)
        spec: "toy" (the cached toy base model, warm-started if absent), a hub id, a local
        directory (a run's checkpoint) or a .gguf file.
    save_atomic(path, write): a directory that is never half written (checkpoints, the toy base).
    save_checkpoint / load_checkpoint: a training run's last checkpoint, <out>/ckpt.

Every file is checked line by line before any work starts: a bad JSONL line, a missing field or
an empty file is an error that names the file and the line.
"""
import json
import os
import random
import re
import shutil

import huggingface_hub
import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import grader
import reward as rw
import toy

try:  # optional: only the hub datasets that are parquet files alone need it (DeepMath-103K, GSM8K, AMC23)
    import pyarrow.parquet as pq
except ImportError:
    pq = None

# where benchmark names are looked up: a git-ignored folder inside the repository (the tests
# point it at ../shared/data, which holds the same files)
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

BENCHMARKS = {  # name -> file in data_dir
    "gsm8k": "gsm8k_test.jsonl", "gsm8k_train": "gsm8k_train.jsonl", "math500": "math500.jsonl",
    "aime24": "aime24.jsonl", "aime25": "aime25.jsonl", "amc23": "amc23.jsonl", "minerva": "minerva.jsonl",
    "olympiadbench": "olympiadbench.jsonl", "deepscaler": "deepscaler_subset.jsonl",
}


def _plain(q, a, id_field=None):
    """A hub row whose question and answer fields need no work."""
    return lambda r, i: {"id": r.get(id_field, i) if id_field else i, "question": r[q], "answer": r[a]}


def _integer(x):
    """27.0 -> "27", "025" -> "25"; anything else unchanged (as shared/data/README.md normalises AIME and AMC)."""
    try:
        v = float(x)
        return str(int(v)) if v == int(v) else str(x).strip()
    except (TypeError, ValueError, OverflowError):
        return str(x).strip()


def _first_answer(x):
    """OlympiadBench: the first of a list of answers, without one pair of enclosing $...$."""
    s = str(x[0] if isinstance(x, list) else x).strip()
    return s[1:-1].strip() if len(s) > 1 and s[0] == s[-1] == "$" else s


def _after_hashes(x):
    """GSM8K: the number after "####", thousands commas removed ("2,125" -> "2125")."""
    return x.split("####")[-1].strip().replace(",", "")


HUB_DATASETS = {  # name -> (dataset repo, its files, row -> {"id","question","answer"[,"difficulty"]}, columns)
    # the benchmarks, normalised as the files of shared/data (its README.md says how, per source)
    "math500": ("HuggingFaceH4/MATH-500", ["test.jsonl"], _plain("problem", "answer", "unique_id"), None),
    "aime25": ("math-ai/aime25", ["test.jsonl"], lambda r, i: {
        "id": f"aime25-{r.get('id', i)}", "question": r["problem"], "answer": _integer(r["answer"])}, None),
    "amc23": ("math-ai/amc23", ["test-00000-of-00001.parquet"], lambda r, i: {  # parquet only on the hub
        "id": f"amc23-{r.get('id', i)}", "question": r.get("question", r.get("problem")),
        "answer": _integer(r["answer"])}, None),
    "minerva": ("math-ai/minervamath", ["test.jsonl"], lambda r, i: {
        "id": f"minerva-{i}", "question": r["question"], "answer": str(r["answer"]).strip()}, None),
    "olympiadbench": ("math-ai/olympiadbench", ["test.jsonl"], lambda r, i: {
        "id": f"olympiadbench-{r.get('id', i)}", "question": r["question"],
        "answer": _first_answer(r["final_answer"] if "final_answer" in r else r["answer"])}, None),
    "gsm8k": ("openai/gsm8k", ["main/test-00000-of-00001.parquet"], lambda r, i: {  # parquet only on the hub
        "id": f"gsm8k-test-{i}", "question": r["question"], "answer": _after_hashes(r["answer"])}, None),
    "gsm8k_train": ("openai/gsm8k", ["main/train-00000-of-00001.parquet"], lambda r, i: {
        "id": f"gsm8k-train-{i}", "question": r["question"], "answer": _after_hashes(r["answer"])}, None),
    # training sets. DeepMath-103K: the paper's; parquet only (2.1 GB, mostly three R1 solutions per row:
    # we read three columns); rows whose answer the grader cannot check are dropped (gradable)
    "deepmath": ("zwhe99/DeepMath-103K", [f"data/train-{k:05d}-of-00010.parquet" for k in range(10)],
                 lambda r, i: {"id": f"deepmath-{i}", "question": r["question"], "answer": r["final_answer"],
                               "difficulty": r["difficulty"]}, ["question", "final_answer", "difficulty"]),
    "deepscaler-hub": ("agentica-org/DeepScaleR-Preview-Dataset", ["deepscaler.json"], _plain("problem", "answer"),
                       None),
    "math500-hub": ("HuggingFaceH4/MATH-500", ["test.jsonl"], _plain("problem", "answer", "unique_id"), None),
}
HUB_FILTERED = {"deepmath"}  # names whose rows are filtered with gradable()

GROUPS = 3000  # --group-by difficulty: groups in <out>/groups.json (the paper: 3,000 groups of N=3)


def _difficulty(v, where):
    """A number: 7.5, "7.5" or "Level 3" (MATH's spelling); an error naming the line otherwise."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    m = re.fullmatch(r"\s*(?:level\s*)?(-?\d+(?:\.\d+)?)\s*", str(v), re.IGNORECASE)
    if not m:
        raise ValueError(f"{where}: difficulty {v!r} is not a number")
    return float(m.group(1))


def _problem(r, where, question_field="question", answer_field="answer"):
    """One checked {"id","question","answer"[,"difficulty"]} from a row of a file."""
    if not isinstance(r, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(r).__name__}")
    for field in (question_field, answer_field):
        if field not in r:
            raise ValueError(f"{where}: missing field {field!r} (has {sorted(r)})")
        if r[field] is None:
            raise ValueError(f"{where}: field {field!r} is null")
    p = {"id": str(r["id"]), "question": str(r[question_field]), "answer": str(r[answer_field])}
    if r.get("difficulty") is not None:
        p["difficulty"] = _difficulty(r["difficulty"], where)
    return p


def read_rows(path, columns=None):
    """[(where, row)] of a JSONL file (one object per line), a JSON array or a parquet file (needs pyarrow;
    `columns` reads only those); where is "path:line" for error messages."""
    if path.endswith(".parquet"):
        if pq is None:
            raise ImportError(f"{path}: reading a parquet file needs pyarrow (pip install pyarrow), or put the "
                              f"data in --data-dir as JSONL")
        return [(f"{path}:row {i}", r) for i, r in enumerate(pq.read_table(path, columns=columns).to_pylist(), 1)]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        return [(f"{path}:{i}", r) for i, r in enumerate(json.loads(text), 1)]
    rows = []
    for i, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            rows.append((f"{path}:{i}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{i}: not valid JSON ({e.msg}): {line[:80]!r}") from None
    return rows


def read_problems(path, question_field="question", answer_field="answer"):
    """Problems from a JSONL file (one object per line) or a JSON array, as {"id","question","answer"}, plus
    "difficulty" (a number) where the file has one (for --group-by difficulty)."""
    out = []
    for where, r in read_rows(path):
        if isinstance(r, dict) and "id" not in r:
            r = {**r, "id": f"{os.path.basename(path)}-{where.rsplit(':', 1)[1]}"}
        out.append(_problem(r, where, question_field, answer_field))
    if not out:
        raise ValueError(f"{path}: no problems")
    return out


# gradable(): word answers a checker cannot verify, or a model can guess (yes/no: half right by chance)
_GUESS_RE = re.compile(r"^(?:yes|no|true|false)$", re.IGNORECASE)
_CHOICE_RE = re.compile(r"^\(?[A-E]\)?$")  # a multiple-choice letter: one in five by chance
_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")  # a word of 3+ letters, not a LaTeX command
_ENV_RE = re.compile(r"\\(?:begin|end)\{[a-zA-Z*]+\}")  # \begin{matrix}: not words
_MATH_NAMES = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "sqrt", "max", "min", "mod", "gcd", "lcm",
               "det", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "infty"}


def gradable(answer):
    """Can the grader check this gold answer, with no lucky guess? Kept: numbers, expressions, intervals,
    sets, tuples, matrices. Dropped (returned as the reason): "empty"; "too long" (over grader.MAX_LEN
    normalised characters, which the grader compares as strings only); "yes/no" (yes, no, true, false:
    right half the time by chance); "choice" (a letter A-E); "words" (a word outside the math, after
    normalising: "converges", "\\text{odd}", "no solution": a class to guess, or prose no checker reads)."""
    s = grader.normalize(answer)
    if not s:
        return "empty"
    if len(s) > grader.MAX_LEN:
        return "too long"
    if _GUESS_RE.match(s):
        return "yes/no"
    if _CHOICE_RE.match(s):
        return "choice"
    if any(w.lower() not in _MATH_NAMES for w in _WORD_RE.findall(_ENV_RE.sub(" ", s))):
        return "words"
    return True


def load_hub(name, data_dir=DEFAULT_DATA_DIR, log=print):
    """A named hub dataset, normalised: from a folder in the hub's layout, <data_dir>/<repo>/<file> (what
    `huggingface-cli download REPO --repo-type dataset --local-dir <data_dir>/REPO` writes), else from the
    hub with huggingface_hub, which caches the files (~/.cache/huggingface/hub) and reuses them offline."""
    repo, files, row, columns = HUB_DATASETS[name]
    local = [os.path.join(data_dir, repo, f) for f in files]
    if all(os.path.exists(p) for p in local):
        paths = local
    else:
        try:
            paths = [huggingface_hub.hf_hub_download(repo, f, repo_type="dataset") for f in files]
        except Exception as e:  # offline, or no such file: say where we looked and what failed
            where = f"{os.path.join(data_dir, BENCHMARKS[name])} or " if name in BENCHMARKS else ""
            raise FileNotFoundError(f"data {name!r}: not in {where}{local[0]} (the hub's layout), and the hub "
                                    f"download of {repo}/{files[0]} failed: {e}") from e
    out, dropped = [], {}
    for i, (where, r) in enumerate(x for p in paths for x in read_rows(p, columns)):
        try:
            p = _problem(row(r, i), where)
        except (KeyError, TypeError, AttributeError) as e:  # not the hub layout we know
            raise ValueError(f"{where}: not a {repo} row: {type(e).__name__} {e} (has "
                             f"{sorted(r) if isinstance(r, dict) else type(r).__name__})") from None
        verdict = gradable(p["answer"]) if name in HUB_FILTERED else True
        if verdict is True:
            out.append(p)
        else:
            dropped[verdict] = dropped.get(verdict, 0) + 1
    if dropped:
        log(f"{name}: kept {len(out)} of {len(out) + sum(dropped.values())} rows; dropped, as answers the grader "
            f"cannot check: " + ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())))
    if not out:
        raise ValueError(f"data {name!r}: no problems in {paths}")
    return out


class Grouped(list):
    """The training problems, plus .groups: the fixed list of groups (lists of N problems) that
    bcr.train_step draws from with --group-by difficulty."""

    def __init__(self, problems, groups):
        super().__init__(problems)
        self.groups = groups


def spread(groups):
    """Mean over groups of (hardest - easiest difficulty): how alike a group's problems are."""
    return sum(max(p["difficulty"] for p in g) - min(p["difficulty"] for p in g) for g in groups) / len(groups)


def difficulty_groups(problems, n, count=GROUPS, seed=0):
    """`count` groups of n distinct problems of similar difficulty, by stratified sampling. The strata
    are the distinct difficulty values, an easy one merged into the next while it holds fewer than n
    problems. A group picks a stratum with probability proportional to its size (so the groups keep
    the data's mix of difficulties) and takes n problems from it: each stratum deals out its problems
    in a shuffled order, reshuffled once all were dealt, so none repeats before every one was used."""
    if len(problems) < n:
        raise ValueError(f"--group-by difficulty: {len(problems)} problems, fewer than N={n}")
    rng = random.Random(seed)
    by_value = {}
    for p in problems:
        by_value.setdefault(p["difficulty"], []).append(p)
    strata, cur = [], []
    for d in sorted(by_value):
        cur += by_value[d]
        if len(cur) >= n:
            strata.append(cur)
            cur = []
    if cur:  # the hardest values, fewer than n problems: they join the stratum below them
        strata[-1] += cur
    decks = [[] for _ in strata]
    groups = []
    for k in rng.choices(range(len(strata)), [len(s) for s in strata], k=count):
        if len(decks[k]) < n:  # a new shuffled round, after what is left of this one (no repeat in a group)
            left = {p["id"] for p in decks[k]}
            fresh = [p for p in strata[k] if p["id"] not in left]
            rng.shuffle(fresh)
            decks[k] += fresh
        groups.append(decks[k][:n])
        del decks[k][:n]
    return groups


def group_problems(problems, n, seed, path, count=GROUPS, log=print):
    """Grouped(problems) with the groups of <out>/groups.json: read when it holds groups of n of these
    problems (a rerun or --resume uses the same list), else made by difficulty_groups(seed) and written."""
    missing = sum("difficulty" not in p for p in problems)
    if missing:
        raise ValueError(f"--group-by difficulty: {missing} of {len(problems)} training problems have no "
                         f"'difficulty' field (use --group-by random)")
    by_id = {p["id"]: p for p in problems}
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved.get("n") == n and all(i in by_id for g in saved["groups"] for i in g):
            log(f"groups: {len(saved['groups'])} groups of {n} read from {path}")
            return Grouped(problems, [[by_id[i] for i in g] for g in saved["groups"]])
        log(f"groups: {path} holds other groups (not of N={n} of these problems); making new ones")
    groups = difficulty_groups(problems, n, count, seed)
    rng = random.Random(seed)
    rand = [rng.sample(problems, n) for _ in range(count)]  # what --group-by random would draw
    s, r = spread(groups), spread(rand)
    with open(path + ".tmp", "w") as f:
        json.dump({"group_by": "difficulty", "n": n, "seed": seed, "spread": s, "random_spread": r,
                   "groups": [[p["id"] for p in g] for g in groups]}, f)
    os.replace(path + ".tmp", path)
    log(f"groups: {count} groups of {n} by difficulty in {path}; within-group spread (hardest - easiest, "
        f"mean) {s:.3f}, vs {r:.3f} for random groups")
    return Grouped(problems, groups)


def load_problems(spec, data_dir=DEFAULT_DATA_DIR, split="train", seed=0, n=None, group_by="random", group_n=None,
                  group_seed=0, groups_path=None):
    """'toy', a .json/.jsonl path, a benchmark name (its file in data_dir, else the hub: HUB_DATASETS), or
    a named hub dataset. group_by "difficulty": a Grouped list, with the groups of group_problems."""
    problems = _load_problems(spec, data_dir, split, seed, n)
    if group_by == "difficulty":
        return group_problems(problems, group_n, group_seed, groups_path)
    if group_by != "random":
        raise ValueError(f"--group-by {group_by!r}: use 'random' or 'difficulty'")
    return problems


def _load_problems(spec, data_dir, split, seed, n):
    if spec == "toy":
        return toy.make_problems(n or (100_000 if split == "train" else toy.EVAL_PROBLEMS), split, seed)
    if spec.endswith((".json", ".jsonl")) or os.sep in spec:
        if not os.path.exists(spec):
            raise FileNotFoundError(f"data {spec!r}: no such file")
        return read_problems(spec)
    if spec in BENCHMARKS and os.path.exists(os.path.join(data_dir, BENCHMARKS[spec])):
        return read_problems(os.path.join(data_dir, BENCHMARKS[spec]))
    if spec in HUB_DATASETS:
        return load_hub(spec, data_dir)
    if spec in BENCHMARKS:
        path = os.path.join(data_dir, BENCHMARKS[spec])
        raise FileNotFoundError(f"benchmark {spec!r}: {path} not found (put the file there or set --data-dir)")
    raise ValueError(f"unknown data {spec!r}: use 'toy', a .jsonl path, one of {sorted(BENCHMARKS)} "
                     f"(in --data-dir, else from the hub) or one of {sorted(set(HUB_DATASETS) - set(BENCHMARKS))}")


# ---------------------------------------------------------------------------------------------
# models


def load_pretrained(spec, dtype=torch.float32):
    """(model, tokenizer) from a hub id, a local directory (a run's ckpt) or a .gguf file, which
    transformers de-quantizes into a plain model (needs the gguf package)."""
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


def toy_base_dir(seed=0):
    """Where the toy base model of a warm-start seed is cached. "v11" names this version of the toy
    world: a base cached by an older toy.py (another tokenizer or other reference solutions) is
    never picked up."""
    return os.path.join("out", f"toy-base-v11-s{seed}")


def save_atomic(path, write):
    """write(tmp_dir) into path.tmp, then swap it in: at every moment either the old or the new
    directory is complete at `path` (or at path.old, during the two renames)."""
    tmp, old = path.rstrip("/") + ".tmp", path.rstrip("/") + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    if os.path.exists(path):  # else path.old may hold the only whole copy (an earlier save was killed)
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def load_model(spec, device="cpu", dtype="float32", base_seed=0, log=print):
    """(model, tokenizer) on device: 'toy' (the cached base of warm-start seed base_seed, trained
    and cached if absent), a hub id, a local directory or a .gguf file."""
    if spec == "toy":
        path = toy_base_dir(base_seed)
        if not os.path.exists(os.path.join(path, "config.json")) and os.path.exists(path + ".old"):
            path += ".old"  # a crash between the two renames of save_atomic
        if os.path.exists(os.path.join(path, "config.json")):
            log(f"base model: cached at {path}")
            model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
        else:
            log(f"base model: none cached at {path}, warm-starting from scratch (seed {base_seed})")
            model, tok = toy.warm_start(seed=base_seed, log=log)
            save_atomic(path, lambda d: (model.save_pretrained(d), tok.save_pretrained(d)))
    else:
        model, tok = load_pretrained(spec, getattr(torch, dtype))
    return model.to(device=device, dtype=getattr(torch, dtype)).eval(), tok


# ---------------------------------------------------------------------------------------------
# checkpoints: <out>/ckpt holds the model and tokenizer (save_pretrained, in the training dtype)
# and train_state.pt (step, optimizer with fp32 master weights, RNG states); only the latest is kept


def save_checkpoint(run_dir, model, tok, opt, step, rng):
    path = os.path.join(run_dir, "ckpt")
    n = sum(p.numel() for p in model.parameters())
    need = sum(p.numel() * p.element_size() for p in model.parameters()) + (0 if opt.fp32 else 4 * n) + 8 * n
    free = shutil.disk_usage(run_dir).free
    if free < 1.1 * need:
        raise OSError(f"checkpoint at step {step}: about {need / 2**30:.2f} GiB needed in {run_dir}, "
                      f"{free / 2**30:.2f} GiB free; the previous checkpoint is intact")
    state = {"step": step, "opt": opt.state_dict(), "py_rng": rng.getstate(), "torch_rng": torch.get_rng_state(),
             "np_rng": np.random.get_state()}  # bcr.restore_rng puts the RNG states back

    def write(d):
        model.save_pretrained(d)
        tok.save_pretrained(d)
        torch.save(state, os.path.join(d, "train_state.pt"))  # written last: a ckpt with it is whole
    try:
        save_atomic(path, write)
    except OSError as e:  # a full disk, say: free what was written, keep the last whole checkpoint
        shutil.rmtree(path + ".tmp", ignore_errors=True)
        raise OSError(f"checkpoint at step {step} could not be written ({e}); the previous checkpoint is intact "
                      f"in {run_dir}") from e


CKPTS = ("ckpt", "ckpt.old")  # ckpt.old holds the last checkpoint while a save swaps in a new one


def checkpoint_path(run_dir):
    """The last whole checkpoint: ckpt, or ckpt.old when a save was killed between its two renames."""
    for d in CKPTS:
        if os.path.exists(os.path.join(run_dir, d, "train_state.pt")):
            return os.path.join(run_dir, d)
    raise FileNotFoundError(f"--resume: no checkpoint in {run_dir}/ckpt")


def load_checkpoint(run_dir, device="cpu", dtype="float32"):
    """(model, tokenizer, train_state) of the last whole checkpoint of a run."""
    path = checkpoint_path(run_dir)
    model, tok = load_model(path, device, dtype)
    return model, tok, torch.load(os.path.join(path, "train_state.pt"), weights_only=False)


def check_context(model, tok, problems, n, budget, instruction=None):
    """The longest prompt of n problems plus the budget must fit the model's context (ValueError)."""
    ctx = getattr(model.config, "max_position_embeddings", None)
    if ctx is None:
        return
    lengths = [len(x) for x in tok([p["question"] for p in problems], add_special_tokens=False)["input_ids"]]
    longest = sorted(range(len(problems)), key=lengths.__getitem__)[-n:]
    n_prompt = len(rw.build_prompt(tok, [problems[i]["question"] for i in longest], instruction=instruction))
    if n_prompt + budget > ctx:
        raise ValueError(f"the longest prompt of N={n} problems takes {n_prompt} tokens; with --budget "
                         f"{budget} that exceeds the model's context of {ctx} tokens")
