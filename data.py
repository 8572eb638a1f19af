"""
data.py: what a run reads, problems and models, from wherever they live.

    load_problems(spec, data_dir, split, seed, n) -> [{"id", "question", "answer"}]
        spec: "toy" (the toy world's generator), a .json/.jsonl path, a benchmark name found in
        data_dir (BENCHMARKS), or a named hub dataset (HUB_DATASETS, fetched when online).
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
import shutil

import huggingface_hub
import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import toy

# where benchmark names are looked up: a git-ignored folder inside the repository (the tests
# point it at ../shared/data, which holds the same files)
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

BENCHMARKS = {  # name -> file in data_dir
    "gsm8k": "gsm8k_test.jsonl", "gsm8k_train": "gsm8k_train.jsonl", "math500": "math500.jsonl",
    "aime24": "aime24.jsonl", "aime25": "aime25.jsonl", "amc23": "amc23.jsonl", "minerva": "minerva.jsonl",
    "olympiadbench": "olympiadbench.jsonl", "deepscaler": "deepscaler_subset.jsonl",
}
HUB_DATASETS = {  # name -> (repo, file, question field, answer field), fetched when online
    "deepscaler-hub": ("agentica-org/DeepScaleR-Preview-Dataset", "deepscaler.json", "problem", "answer"),
    "math500-hub": ("HuggingFaceH4/MATH-500", "test.jsonl", "problem", "answer"),
}


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
    """'toy', a .json/.jsonl path, a benchmark name in data_dir, or a named hub dataset."""
    if spec == "toy":
        return toy.make_problems(n or (100_000 if split == "train" else toy.EVAL_PROBLEMS), split, seed)
    if spec.endswith((".json", ".jsonl")) or os.sep in spec:
        if not os.path.exists(spec):
            raise FileNotFoundError(f"data {spec!r}: no such file")
        return read_problems(spec)
    if spec in BENCHMARKS:
        path = os.path.join(data_dir, BENCHMARKS[spec])
        if not os.path.exists(path):
            raise FileNotFoundError(f"benchmark {spec!r}: {path} not found (put the file there or set --data-dir)")
        return read_problems(path)
    if spec in HUB_DATASETS:
        repo, fname, qf, af = HUB_DATASETS[spec]
        return read_problems(huggingface_hub.hf_hub_download(repo, fname, repo_type="dataset"), qf, af)
    raise ValueError(f"unknown data {spec!r}: use 'toy', a .jsonl path, one of {sorted(BENCHMARKS)} "
                     f"(in --data-dir) or one of {sorted(HUB_DATASETS)}")


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
    """Where the toy base model of a warm-start seed is cached. "v5" names this version of the toy
    world: a base cached by an older toy.py (another tokenizer) is never picked up."""
    return os.path.join("out", f"toy-base-v5-s{seed}")


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
