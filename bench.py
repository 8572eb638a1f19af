"""
bench.py: speed and memory, measured side by side in one run (results in BENCHMARKS.md).

    python bench.py sample   our KV-cache sampler vs HF generate (and the model's forwards alone)
    python bench.py grpo     peak memory and time of the log-prob forward+backward, chunked vs naive
    python bench.py reward   grade calls per second on one core (GSM8K and MATH-500 references)

On a GPU the sample and grpo benches use Qwen2.5-1.5B / R1-1.5B widths with random weights; on the
CPU, the toy model and a narrow hidden size.
"""
import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM

import grader
import grpo
import sample
import toy

# ---------------------------------------------------------------------------------------------
# sample: ours vs HF generate, same model, prompts and lengths


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _bench_once(fn, device):
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def bench_sample(args):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    g = torch.Generator().manual_seed(0)
    if device.type == "cuda":
        cfg = AutoConfig.for_model("qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                   num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                                   max_position_embeddings=32768, rope_theta=1e6, tie_word_embeddings=True)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).to(device).eval()
        batch, plen, new = args.batch or 64, args.prompt_len or 512, args.new_tokens or 1024
        what = "Qwen2.5-1.5B shape, random weights, bf16"
    else:
        tok = toy.make_tokenizer()
        model = toy.make_model(tok).eval()
        cfg = model.config
        batch, plen, new = args.batch or 64, args.prompt_len or 64, args.new_tokens or 256
        what = "toy Llama (0.9M params), fp32"
    prompts = [torch.randint(10, cfg.vocab_size, (plen,), generator=g).tolist() for _ in range(batch)]
    never = [cfg.vocab_size + 7]  # an EOS id no one can sample: every row runs the full length

    def ours():
        sample.generate(model, prompts, 1, new, temperature=0, eos_token_ids=never, pad_token_id=0, seed=0)

    def hf():  # every prompt has plen tokens: no padding
        ids = torch.tensor(prompts, device=device)
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, do_sample=False,
                       pad_token_id=0, eos_token_id=never)

    @torch.no_grad()
    def forwards_only():
        # the model's own share: the same prefill and decode forwards as ours (same cache, mask and
        # positions), with no sampling and no bookkeeping. Any sampler that goes through this forward
        # pays at least this, so HF's time over it bounds the ratio a CPU sampler can reach.
        cache, kw = sample.KVCache(cfg.num_hidden_layers, plen + new, static=False), sample._cache_kwarg(model)
        ids = torch.tensor(prompts, device=device)
        model(input_ids=ids, position_ids=torch.arange(plen, device=device).expand(batch, plen), use_cache=True,
              logits_to_keep=1, **{kw: cache})
        mask4, tok = torch.zeros((batch, 1, 1, plen + new), device=device), ids[:, -1:]
        for s in range(new - 1):
            sample._decode_step(model, cache, tok, mask4[..., : plen + s + 1], torch.full_like(tok, plen + s), kw)

    runs = [("ours", ours), ("HF generate", hf)] + ([("forwards only", forwards_only)] if device.type == "cpu" else [])
    for _, fn in runs:
        fn()  # warm-up (and compilation on the GPU)
    # interleaved repeats, best of each: the machine's speed drifts, and each gets the same chances
    best = {name: float("inf") for name, _ in runs}
    for _ in range(args.repeat):
        for name, fn in runs:
            best[name] = min(best[name], _bench_once(fn, device))
    t_ours, t_hf = best["ours"], best["HF generate"]
    toks = batch * new
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"device: {name} ({torch.get_num_threads()} threads); "
          f"model: {what}; batch {batch}, prompt {plen}, new tokens {new}, EOS ignored")
    print(f"ours: {toks / t_ours:,.0f} tokens/s ({t_ours:.2f}s)")
    print(f"HF generate: {toks / t_hf:,.0f} tokens/s ({t_hf:.2f}s)")
    print(f"ratio ours/HF: {t_hf / t_ours:.2f}x")
    if "forwards only" in best:
        t_fwd = best["forwards only"]
        print(f"the model's forwards alone: {toks / t_fwd:,.0f} tokens/s ({t_fwd:.2f}s); ceiling for any sampler "
              f"through this forward: {t_hf / t_fwd:.2f}x HF; ours is {t_fwd / t_ours:.0%} of it")
    if device.type == "cuda":
        # roofline: every decode step reads all weights and, on average, half the final KV cache
        wbytes = sum(p.numel() * p.element_size() for p in model.parameters())
        head_dim = cfg.hidden_size // cfg.num_attention_heads
        kv_per_tok = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * 2  # K and V, bf16
        bytes_per_step = wbytes + batch * kv_per_tok * (plen + new / 2)
        x = torch.empty(2**28, dtype=torch.uint8, device=device)
        y = torch.empty_like(x)
        y.copy_(x)
        t_copy = min(_bench_once(lambda: y.copy_(x), device) for _ in range(5))
        bw = 2 * x.numel() / t_copy
        step_s = t_ours / new
        print(f"measured copy bandwidth {bw / 1e9:,.0f} GB/s; bytes per decode step {bytes_per_step / 1e9:.2f} GB; "
              f"roofline fraction {bytes_per_step / step_s / bw:.0%}")
        print(f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


# ---------------------------------------------------------------------------------------------
# grpo: peak memory and time of the log-prob forward+backward, ours vs naive


CHUNK = {"cpu": 128, "cuda": 1024}  # rows of logits per chunk in the benchmark


def _one_bench(path, B, T, H, V, device, dtype):
    torch.manual_seed(0)
    W = (torch.randn(V, H, device=device, dtype=dtype) * 0.02).requires_grad_(True)
    h = torch.randn(B, T, H, device=device, dtype=dtype, requires_grad=True)
    tgt = torch.randint(0, V, (B, T), device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t = time.perf_counter()
    if path == "naive":
        lp = torch.log_softmax((h @ W.T).float(), -1).gather(-1, tgt[..., None])[..., 0]
    else:  # "ours": the chunked PyTorch path; "fused": the same chunks through the Triton kernel
        lp = grpo.chunked_logprobs(h.reshape(-1, H), W, tgt.reshape(-1), chunk_size=CHUNK[device.type],
                              fused=path == "fused").view(B, T)
    lp.sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return time.perf_counter() - t, peak


def bench_grpo(args):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    V = 151936
    if device.type == "cuda":
        H, dtype, shapes = 1536, torch.bfloat16, [(8, 1024), (8, 2048), (8, 4096), (8, 8192)]
    else:
        H, dtype, shapes = 256, torch.float32, [(1, 256), (1, 512), (1, 1024), (2, 1024)]
    # the Triton kernel runs on CUDA only (on the CPU its interpreter is for tests, not for timing)
    paths = ("naive", "ours") + (("fused",) if device.type == "cuda" and grpo.triton is not None else ())
    print(f"device {device}; vocab {V}; hidden {H}; dtype {dtype}; log-prob forward+backward")
    print(f"{'B x T':>10} {'naive peak':>12} {'ours peak':>12} {'ratio':>7} {'naive s':>8} {'ours s':>8}"
          + (f" {'fused peak':>12} {'fused s':>8}" if "fused" in paths else ""))
    if device.type == "cuda":  # warm-up: cuBLAS handles and the Triton kernels' compilation
        for path in paths:
            _one_bench(path, 1, 64, H, V, device, dtype)
    for B, T in shapes:
        res = {}
        for path in paths:
            if device.type == "cuda":
                try:
                    res[path] = _one_bench(path, B, T, H, V, device, dtype)
                except torch.OutOfMemoryError:
                    res[path] = (float("nan"), float("inf"))
                torch.cuda.empty_cache()
            else:  # a fresh process per measurement: peak RSS is per process
                cmd = [sys.executable, os.path.abspath(__file__), "grpo-one", path, str(B), str(T), str(H)]
                out = subprocess.run(cmd,
                                     capture_output=True, text=True, check=True).stdout.split()
                base = float(out[2])
                res[path] = (float(out[0]), float(out[1]) - base)
        (tn, pn), (to, po) = res["naive"], res["ours"]
        line = f"{B:>4} x {T:<5} {pn / 2**20:>10.0f}MB {po / 2**20:>10.0f}MB {po / pn:>7.3f} {tn:>8.2f} {to:>8.2f}"
        if "fused" in res:
            tf, pf = res["fused"]
            line += f" {pf / 2**20:>10.0f}MB {tf:>8.2f}"
        print(line)


# ---------------------------------------------------------------------------------------------
# reward: grade calls per second on one core


def bench_reward(args):
    def load(name):
        with open(os.path.join(args.data_dir, name)) as f:
            return [json.loads(x) for x in f]

    cases = [(r["answer"], r["answer"].split("####")[-1].strip().replace(",", ""))
             for r in load("gsm8k/raw/test.jsonl")]
    cases += [(r["solution"], r["answer"]) for r in load("math500/raw/test.jsonl")]
    golds = [g for _, g in cases]
    random.Random(0).shuffle(golds)
    pairs = cases + [(resp, g) for (resp, _), g in zip(cases, golds)]  # half right, half wrong
    grader.warmup()
    t = time.perf_counter()
    right = sum(grader.grade(r, g) for r, g in pairs)
    dt = time.perf_counter() - t
    print(f"{len(pairs)} grade calls ({len(cases)} own answers, {len(cases)} shuffled) in {dt:.2f}s: "
          f"{len(pairs) / dt:,.0f} calls/s on one core; {right} true; sympy calls {grader.STATS['sympy_calls']}, "
          f"timeouts {grader.STATS['timeouts']}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "grpo-one":  # one measurement of bench_grpo, in its own process
        _, _, path, B, T, H = sys.argv
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        # allocate the inputs first so that "base" holds everything but the log-prob computation
        dt, peak = _one_bench(path, int(B), int(T), int(H), 151936, torch.device("cpu"), torch.float32)
        print(dt, peak, base + (151936 * int(H) * 4 * 2) + int(B) * int(T) * int(H) * 4 * 2)
        sys.exit(0)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["sample", "grpo", "reward"])
    ap.add_argument("--batch", type=int, default=0, help="sample: rows")
    ap.add_argument("--prompt-len", type=int, default=0, help="sample: prompt tokens")
    ap.add_argument("--new-tokens", type=int, default=0, help="sample: new tokens per row")
    ap.add_argument("--repeat", type=int, default=3, help="sample: interleaved repeats, best of each")
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shared",
                                                       "data"), help="reward: where gsm8k/raw and math500/raw are")
    args = ap.parse_args()
    {"sample": bench_sample, "grpo": bench_grpo, "reward": bench_reward}[args.what](args)
