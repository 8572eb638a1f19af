"""memory.py: the plan's figures against peak memory measured on the CPU at reduced widths (the same
code: transformers' Qwen2 in bf16, grpo.token_logprobs, sample.generate's static cache), the
presets' plans, and the errors a run that does not fit gets before anything is loaded."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from transformers import Qwen2Config

import memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R1 = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
QWEN3 = "Qwen/Qwen3-4B-Thinking-2507"


def _narrow_r1(layers=2, vocab=1024):
    """R1-1.5B at full width (hidden 1536, 12/2 heads, MLP 8960) with fewer layers and a small vocabulary."""
    return Qwen2Config(hidden_size=1536, intermediate_size=8960, num_hidden_layers=layers, num_attention_heads=12,
                       num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=8192, tie_word_embeddings=True)


# ---------------------------------------------------------------------------------------------
# the measurement, in a fresh process: peak RSS over the measured call, with the high-water mark
# reset just before it (/proc/self/clear_refs "5") and every tensor of 64 KB or more mmapped by
# glibc (MALLOC_MMAP_THRESHOLD_), so that freed tensors leave the RSS at once


def _hwm():
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) * 1024


def _rss():
    return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read()).group(1)) * 1024


def _measure(fn):
    import gc

    gc.collect()
    base = _rss()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    fn()
    return _hwm() - base


def _worker(kind, layers, rows, prompt, new, ckpt, vocab):
    from transformers import AutoModelForCausalLM

    import grpo
    import sample

    torch.manual_seed(0)
    torch.set_num_threads(2)
    cfg = _narrow_r1(layers, vocab)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    if kind == "train":
        if ckpt:
            model.gradient_checkpointing_enable()
        model.train()
        T = prompt + new
        ids = torch.randint(1, cfg.vocab_size, (rows, T))
        att = torch.ones(rows, T, dtype=torch.long)
        att[1:, :7] = 0  # left padding: the padding mask path the plan assumes
        cmask = torch.zeros(rows, T, dtype=torch.long)
        cmask[:, prompt:] = 1

        def step():
            grpo.token_logprobs(model, ids, att, cmask).sum().backward()
        step()  # the gradients exist from here on, as in training (the plan counts them apart)
        peak = _measure(step)
    else:
        model.eval()
        prompts = [[1 + i % (cfg.vocab_size - 1) for i in range(prompt)]]  # one prompt, `rows` samples of it:
        never = [cfg.vocab_size + 7]  # the cache, not the prefill, is the peak

        def roll():
            sample.generate(model, prompts, rows, new, temperature=1.0, eos_token_ids=never, pad_token_id=0, seed=0,
                            static=True, compile=False)
        roll()
        peak = _measure(roll)
    print(json.dumps({"peak": peak}))


def _measured(*args):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), *map(str, args)], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])["peak"]


@pytest.mark.parametrize("what, args, plan", [
    # train: 2 rows x 1024 tokens (768 completion), R1's widths at 2 (and 1) layers, bf16
    ("activations, no checkpointing", ("train", 2, 2, 256, 768, 0, 1024),
     lambda: memory.activation_bytes(_narrow_r1(2), 2, 1024, 768, False)),
    ("activations, checkpointing", ("train", 2, 2, 256, 768, 1, 1024),
     lambda: memory.activation_bytes(_narrow_r1(2), 2, 1024, 768, True)),
    ("log-prob chunk", ("train", 1, 2, 256, 768, 1, 32768),  # a 32k vocabulary: the chunk is the peak
     lambda: memory.activation_bytes(_narrow_r1(1, 32768), 2, 1024, 768, True)),
    # rollout: one prompt of 1900 tokens, 32 samples, 20 new tokens -> 32 rows x 2048 slots, static cache
    ("KV cache", ("kv", 2, 32, 1900, 20, 0, 1024),
     lambda: 32 * __import__("sample").row_bytes(_narrow_r1(2), 2048)),
])
def test_plan_matches_peak_memory_measured_on_the_cpu(what, args, plan):
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak RSS")
    measured, planned = _measured(*args), plan()
    print(f"{what}: measured {measured / 2**20:.1f} MiB, plan {planned / 2**20:.1f} MiB, "
          f"ratio {measured / planned:.3f}")
    assert abs(measured / planned - 1) < 0.15, (what, measured, planned)


def test_r1_figures_from_the_published_dims():
    cfg, source = memory.model_config(R1)
    assert "built in" in source
    n, n_emb = memory.param_counts(cfg)
    assert n == 1_777_088_000 and n_emb == 151936 * 1536  # untied head: 3.55 GB of bf16 weights
    assert memory.layer_bytes(cfg) == 112_696  # ~110 KB per token per layer, as measured on the GPU (issue #17)
    q3, _ = memory.model_config(QWEN3)
    assert memory.param_counts(q3)[0] == 4_022_468_096


def _preset_plan(model, gib, **kw):
    cfg, _ = memory.model_config(model)
    base = dict(budget=5120, group=8, prompts=16, micro_batch=4, n=3, eval_n=(1, 2, 3, 4, 5), eval_problems=500)
    if model == QWEN3:
        base.update(budget=8000, prompts=8, micro_batch=2)
    base.update(kw)
    return memory.plan(cfg, gpu_mem=gib, **base)


def test_presets_fit_the_gpus_they_name():
    r1 = _preset_plan(R1, memory.GPUS["H100 80GB"])
    assert not r1["errors"] and r1["peak"] <= 78 * memory.GiB * memory.MARGIN
    assert r1["settings"]["rollout_rows"] == 128 and r1["settings"]["micro_batch"] == 4
    assert r1["need"] < 80 * memory.GiB
    q3 = _preset_plan(QWEN3, memory.GPUS["H200 141GB"])
    assert not q3["errors"] and q3["peak"] <= 139 * memory.GiB * memory.MARGIN
    assert 80 * memory.GiB < q3["need"] < 139 * memory.GiB  # more than an H100 holds: the plan says so
    assert q3["settings"]["rollout_rows"] % 8 == 0  # whole groups of G = 8


def test_what_does_not_fit_is_named_with_the_flag_that_fits_it():
    q3 = _preset_plan(QWEN3, 78)
    assert any("optimizer state does not fit" in e and "--gpu-mem" in e for e in q3["errors"])
    act = _preset_plan(R1, 46, grad_checkpointing=False, micro_batch=1)
    assert any("activations" in e and "--grad-checkpointing" in e for e in act["errors"])
    kv = _preset_plan(R1, 48, budget=32768, group=64)
    assert any("rollout KV cache" in e and "--group" in e for e in kv["errors"])


def test_bcr_plan_prints_the_table_and_exits_before_loading(capsys, monkeypatch):
    import bcr

    monkeypatch.setattr(bcr, "load_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    assert bcr.main(["--preset", "r1-1.5b", "--plan", "--device", "cpu"]) is None
    out = capsys.readouterr().out
    assert "published config.json dims" in out and "FITS" in out and "H100" in out
    bcr.main(["--preset", "qwen3-4b", "--plan", "--gpu-mem", "78", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "DOES NOT FIT" in out and "optimizer state does not fit" in out
    with pytest.raises(SystemExit, match="optimizer state does not fit"):
        bcr.main(["--preset", "qwen3-4b", "--gpu-mem", "78", "--device", "cpu", "--out", "/tmp/bcr-plan-test"])


def test_gpu_check_runs_at_tiny_widths_on_the_cpu(capsys, tmp_path):
    # bench.py gpu (scripts/gpu_check.sh) end to end at tiny widths: every line it prints on a GPU
    import argparse

    import bench

    bench.bench_gpu(argparse.Namespace(tiny=True, no_tests=True, out=str(tmp_path)))
    out = capsys.readouterr().out
    for what in ("rollout, compiled", "rollout, eager (static)", "rollout, HF generate", "train micro-batch",
                 "BCR step, 2 prompts x 8"):
        assert re.search(re.escape(what) + r".* plan +[\d.]+ GiB", out), what


if __name__ == "__main__":
    k, layers, rows, prompt, new, ckpt, vocab = sys.argv[1:]
    _worker(k, int(layers), int(rows), int(prompt), int(new), ckpt == "1", int(vocab))
