"""
memory.py: how much device memory a run needs, from the model's config alone (no weights loaded).

    python bcr.py --preset r1-1.5b --plan [--gpu-mem GiB]     the table below, then exit

A run alternates four phases; each holds what every phase holds (the weights, the fp32 master
weights and the AdamW moments, the frozen reference with --beta > 0) and something of its own:

    evaluation   the KV cache of one row chunk (eval.generate_rows)
    rollout      the KV cache of one row chunk (sample.generate; the G samples of a prompt together)
    train        bf16 gradients, the activations of one micro-batch, one chunk of log-prob logits
    optimizer    bf16 gradients, their fp32 copies and AdamW's foreach temporaries

plan() sizes each component, picks the largest row chunks and micro-batch that fit the device
(default: its free memory, torch.cuda.mem_get_info; --gpu-mem GiB instead) and says which
component does not fit, and which flag would make it fit, before any weight is loaded.

Bytes, with n parameters (n_emb of them the input embedding), per token of a micro-batch:
  weights 2n (bf16), masters 4n, moments 8n (fp32 m and v), gradients 2n, optimizer step +8n
  (the fp32 gradient copies MasterAdamW makes, and one fp32 tensor per parameter for AdamW's
  foreach sqrt(v)); KV per token 2 * layers * KV heads * head_dim * 2 (kvcache.kv_bytes_per_token).
  Activations per token and layer (layer_bytes: what autograd keeps for the backward pass of a
  transformers Qwen2/Qwen3/Llama layer with SDPA, counted tensor by tensor; 110 KB at R1-1.5B's
  widths): all layers without gradient checkpointing; with it, each layer's input (2H bytes) plus
  one layer recomputed during its backward pass.
The figures are checked against peak memory measured on the CPU at reduced widths
(tests/test_memory.py); on a GPU they are not yet measured.
"""
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import kvcache

GiB = 2**30

# Published config.json dimensions of the presets' models, so that --plan works without the hub
# (source: each model's config.json on the Hugging Face hub, as of 2026; --model PATH reads the real one).
ARCH = {
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": dict(
        model_type="qwen2", num_hidden_layers=28, hidden_size=1536, num_attention_heads=12, num_key_value_heads=2,
        head_dim=128, intermediate_size=8960, vocab_size=151936, tie_word_embeddings=False,
        max_position_embeddings=131072),
    "Qwen/Qwen3-4B-Thinking-2507": dict(
        model_type="qwen3", num_hidden_layers=36, hidden_size=2560, num_attention_heads=32, num_key_value_heads=8,
        head_dim=128, intermediate_size=9728, vocab_size=151936, tie_word_embeddings=True,
        max_position_embeddings=262144),
}
# the GPU each preset is planned for: memory PyTorch can use (about what mem_get_info reports free)
GPUS = {"H100 80GB": 78.0, "H200 141GB": 139.0}
PRESET_GPU = {"r1-1.5b": "H100 80GB", "qwen3-4b": "H200 141GB"}

# planning assumptions (the plan cannot tokenize the data): prompt tokens per problem, and the
# BCR instruction and chat template around them
PROMPT_TOKENS_PER_PROBLEM, PROMPT_TOKENS_FIXED = 256, 128
LOGPROB_CHUNK = 1024  # grpo.token_logprobs' chunk_size
LOGIT_BYTES = 20  # per [chunk, V] element at the peak of a chunk's backward: the fp32 logits / T kept by
# logsumexp, exp(z - lse), the gradient, its gather part, and the bf16 gradient (4 + 4 + 4 + 4 + 2 + 2)
MARGIN = 0.9  # plan for 90% of the memory: the caching allocator's fragments


def model_config(spec):
    """(config, where its numbers come from) for a hub id, a local directory or 'toy', without weights."""
    if spec in ARCH:
        return AutoConfig.for_model(**ARCH[spec]), f"{spec}: published config.json dims (memory.ARCH, built in)"
    return AutoConfig.from_pretrained(spec), f"{spec}: its config.json"


def param_counts(cfg):
    """(all parameters, those of the input embedding), from a model built on the meta device."""
    with torch.device("meta"):
        m = AutoModelForCausalLM.from_config(cfg)
    return sum(p.numel() for p in m.parameters()), m.get_input_embeddings().weight.numel()


def _dims(cfg):
    d = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return (cfg.hidden_size, cfg.num_attention_heads * d, (cfg.num_key_value_heads or cfg.num_attention_heads) * d,
            cfg.intermediate_size, cfg.num_attention_heads)


def layer_bytes(cfg, s=2):
    """Bytes autograd keeps per token for one decoder layer's backward pass (s: bytes of the dtype).

    For hidden H, query width q = heads * d, KV width k, MLP width I:
      2 RMSNorms      2 * (4H fp32 copy of the input + sH normalised output + 4 rsqrt)
      RoPE            q and k and their rotate_half copies: 2s(q + k)
      SDPA            q, K and V repeated to all heads (transformers' repeat_kv when a padding mask is
                      given), the output: 4sq; the log-sum-exp 4 * heads
      o_proj input    sq (the output made contiguous)
      MLP             gate, silu(gate), up, silu(gate) * up: 4sI
      Qwen3's q/k norms  (4 + s)(q + k)
    R1-1.5B: 18,448 + 22,528 + 71,680 + 48 = 112,704 bytes (110 KB)."""
    H, q, k, ff, heads = _dims(cfg)
    b = 2 * (4 * H + s * H + 4) + 2 * s * (q + k) + 4 * s * q + 4 * heads + s * q + 4 * s * ff
    if getattr(cfg, "model_type", "") == "qwen3":
        b += (4 + s) * (q + k)
    return b


def activation_bytes(cfg, rows, tokens, completion, checkpointing, s=2):
    """Peak bytes of one micro-batch's forward and backward pass beyond weights and gradients:
    rows x tokens, `completion` of them completion tokens (the log-prob positions)."""
    H, q, k, ff, heads = _dims(cfg)
    n = rows * tokens
    kept = cfg.num_hidden_layers * (s * H if checkpointing else layer_bytes(cfg, s)) * n
    recomputed = layer_bytes(cfg, s) * n if checkpointing else 0
    # the backward pass of a layer frees its activations as it goes; beside them live the gradients
    # of its widest tensor (sI) and of four residual-stream tensors (4sH). The final norm's saved
    # tensors are gone by then (its backward runs first); the padding mask [rows, T, T] (bool) stays.
    backward = (s * ff + 4 * s * H) * n
    outside = rows * tokens * tokens
    logits = min(LOGPROB_CHUNK, rows * completion) * cfg.vocab_size * LOGIT_BYTES
    # the log-prob chunks' backward comes first, when no layer is recomputed yet: the peak is the
    # larger of the two moments (beside the chunk: the gradient of the hidden states, 2sH)
    return kept + outside + max(recomputed + backward, logits + 2 * s * H * n)


def _fit(limit, need_one, each):
    """How many units fit `limit` bytes when one costs `each` beyond `need_one` fixed bytes."""
    return max(0, int((limit - need_one) // each)) if each > 0 else 0


def plan(cfg, budget, group, prompts, micro_batch, n=3, eval_n=(1,), eval_budget=None, eval_problems=500,
         beta=0.0, dtype="bfloat16", grad_checkpointing=True, gpu_mem=None, train=True):
    """The memory plan: {"components": [(name, bytes, note)], "settings": {...}, "phases": {...},
    "limit": bytes, "errors": [...]}. gpu_mem: GiB PyTorch may use (None: no limit, nothing chosen)."""
    s = 2 if dtype == "bfloat16" else 4
    tdtype = torch.bfloat16 if s == 2 else torch.float32
    nparam, n_emb = param_counts(cfg)
    eval_budget = eval_budget or budget
    L_train = n * PROMPT_TOKENS_PER_PROBLEM + PROMPT_TOKENS_FIXED
    L_eval = max(eval_n) * PROMPT_TOKENS_PER_PROBLEM + PROMPT_TOKENS_FIXED
    slots, eval_slots = kvcache.slots_for(L_train, budget), kvcache.slots_for(L_eval, eval_budget)
    tokens = L_train + budget
    weights, ref = s * nparam, (s * nparam if beta > 0 else 0)
    masters = 4 * nparam if (train and s == 2) else 0
    moments = 8 * nparam if train else 0
    grads = s * nparam if train else 0
    opt_step = (4 * nparam if s == 2 else 0) + 4 * nparam if train else 0
    held = weights + ref + masters + moments
    limit = None if gpu_mem is None else gpu_mem * GiB * MARGIN
    errors, settings = [], {}

    def rows(slots_, G, limit_, total_rows):
        per_row = kvcache.row_bytes(cfg, slots_, tdtype)
        r = total_rows if limit_ is None else kvcache.rows_that_fit(cfg, slots_, G, limit_, tdtype)
        return min(r, kvcache.pow2_ceil(total_rows)), per_row

    roll_rows, per_row = rows(slots, group, None if limit is None else limit - held, prompts * group)
    eval_rows, per_eval_row = rows(eval_slots, 1, None if limit is None else limit - weights - ref, eval_problems)
    act = lambda mb, ck: activation_bytes(cfg, mb, tokens, budget, ck, s)  # noqa: E731
    mb = micro_batch
    if limit is not None and train:
        while mb > 1 and held + grads + act(mb, grad_checkpointing) > limit:
            mb -= 1
    settings.update(rollout_rows=roll_rows, eval_rows=eval_rows, micro_batch=mb, slots=slots, eval_slots=eval_slots,
                    prompt_tokens=L_train, eval_prompt_tokens=L_eval)
    components = [
        ("weights", weights, f"{nparam / 1e9:.3f}B parameters x {s} bytes"),
        ("fp32 master weights", masters, "grpo.MasterAdamW, 4 bytes each" if masters else "none (fp32 model)"),
        ("AdamW moments", moments, "m and v in fp32: 8 bytes per parameter"),
        ("gradients", grads, f"{s} bytes per parameter, during backward and the optimizer step"),
        ("optimizer step temporaries", opt_step, "fp32 copies of the gradients + AdamW's foreach sqrt(v)"),
        ("reference model", ref, "--beta > 0: the frozen base" if ref else "--beta 0: not loaded"),
        ("rollout KV cache", roll_rows * per_row,
         f"{roll_rows} rows (of {prompts * group}) x {slots} slots x {kvcache.kv_bytes_per_token(cfg, tdtype)} B"),
        ("activations, checkpointing", act(mb, True), f"micro-batch {mb} x {tokens} tokens, incl. log-prob chunk"),
        ("activations, no checkpointing", act(mb, False), f"micro-batch {mb} x {tokens} tokens"),
        ("log-prob chunk", min(LOGPROB_CHUNK, mb * budget) * cfg.vocab_size * LOGIT_BYTES,
         f"[{LOGPROB_CHUNK}, {cfg.vocab_size}] logits, {LOGIT_BYTES} B each at its backward (in activations)"),
        ("evaluation KV cache", eval_rows * per_eval_row, f"{eval_rows} rows x {eval_slots} slots (N={max(eval_n)})"),
    ]
    phases = {
        "evaluation": weights + ref + eval_rows * per_eval_row,
        "rollout": held + roll_rows * per_row,
        "train": held + grads + act(mb, grad_checkpointing),
        "optimizer": held + grads + opt_step,
    }
    least = {  # the same phases at the smallest settings: one group, one eval row, micro-batch 1
        "evaluation": weights + ref + per_eval_row, "rollout": held + kvcache.pow2_ceil(group) * per_row,
        "train": held + grads + act(1, grad_checkpointing), "optimizer": phases["optimizer"]}
    if not train:
        phases, least = {"evaluation": phases["evaluation"]}, {"evaluation": least["evaluation"]}
    if limit is not None:
        cap = f"{gpu_mem:.0f} GiB x {MARGIN}"
        if train and phases["optimizer"] > limit:
            errors.append(f"the optimizer state does not fit: weights + fp32 masters + AdamW moments + gradients "
                          f"need {phases['optimizer'] / GiB:.1f} GiB of {cap}; use a GPU with >= "
                          f"{phases['optimizer'] / GiB / MARGIN:.0f} GiB (--gpu-mem) or keep the optimizer on the "
                          f"CPU (not yet in grpo.MasterAdamW)")
        if train and phases["train"] > limit:
            flag = "--grad-checkpointing" if not grad_checkpointing else "a smaller --budget"
            one = act(1, grad_checkpointing) / GiB
            errors.append(f"the activations of one row of {tokens} tokens do not fit ({one:.1f} GiB beside "
                          f"{(held + grads) / GiB:.1f} GiB of weights and optimizer state, of {cap}); use {flag}")
        if train and roll_rows == 0:
            errors.append(f"the rollout KV cache of one group of {group} rows x {slots} slots "
                          f"({kvcache.pow2_ceil(group) * per_row / GiB:.1f} GiB) does not fit beside "
                          f"{held / GiB:.1f} GiB of weights and optimizer state, of {cap}; use a smaller --group "
                          f"or --budget")
        if eval_rows == 0:
            errors.append(f"the evaluation KV cache of one row x {eval_slots} slots does not fit; use a smaller "
                          f"--eval-budget")
    return {"components": components, "settings": settings, "phases": phases, "limit": limit, "errors": errors,
            "peak": max(phases.values()), "need": max(least.values()) / MARGIN}


def device_gib(device="cuda"):
    """Memory PyTorch may use on the device now, in GiB: free plus what its allocator holds unused."""
    free, _ = torch.cuda.mem_get_info(device)
    return (free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)) / GiB


def format_plan(p, source, gpu_name=""):
    lines = [f"memory plan: {source}", f"{'component':<32} {'GiB':>8}  note", "-" * 100]
    lines += [f"{name:<32} {b / GiB:>8.2f}  {note}" for name, b, note in p["components"]]
    lines.append("-" * 100)
    lines += [f"{'peak, ' + ph:<32} {b / GiB:>8.2f}" for ph, b in p["phases"].items()]
    st = p["settings"]
    lines.append(f"chosen: rollout rows per chunk {st['rollout_rows']}, eval rows per chunk {st['eval_rows']}, "
                 f"micro-batch {st['micro_batch']} (prompts assumed {st['prompt_tokens']} tokens, "
                 f"{PROMPT_TOKENS_PER_PROBLEM} per problem)")
    where = f"{p['limit'] / MARGIN / GiB:.0f} GiB{' (' + gpu_name + ')' if gpu_name else ''}" if p["limit"] else "-"
    lines.append(f"needs at least {p['need'] / GiB:.1f} GiB of GPU memory (the smallest chunks, / {MARGIN}); "
                 f"with the chosen settings {p['peak'] / GiB / MARGIN:.1f} GiB; planned for {where}: "
                 + ("FITS" if not p["errors"] else "DOES NOT FIT"))
    lines += [f"error: {e}" for e in p["errors"]]
    return "\n".join(lines)


def gpu_for(preset):
    return PRESET_GPU.get(preset, "")


def check_run(args, log=print):
    """bcr.py's call before anything is loaded: with --plan print the plan (and return True: stop);
    on CUDA or with --gpu-mem check that the run fits (SystemExit naming the component and the
    flag otherwise) and set args.micro_batch and args.eval_rows from the plan."""
    on_gpu = str(args.device).startswith("cuda")
    if not (args.plan or on_gpu or args.gpu_mem):
        return False
    if args.model == "toy":
        if args.plan:
            log("memory plan: the toy model runs on the CPU; nothing to plan")
        return bool(args.plan)
    cfg, source = model_config(args.model)
    gpu_name = gpu_for(args.preset) if args.gpu_mem is None and not on_gpu else ""
    gib = args.gpu_mem or (device_gib(args.device) if on_gpu else GPUS.get(gpu_name))
    p = plan(cfg, args.budget, args.group, args.prompts, args.micro_batch, max(args.n), args.eval_n, args.eval_budget,
             args.eval_problems, args.beta, args.dtype, args.grad_checkpointing, gib)
    if args.plan:
        log(format_plan(p, source, gpu_name))
        return True
    if p["errors"]:
        raise SystemExit("bcr.py: the run does not fit the GPU (memory.py plan):\n  " + "\n  ".join(p["errors"]))
    args.micro_batch = p["settings"]["micro_batch"]
    args.eval_rows = p["settings"]["eval_rows"]
    args.rollout_rows = p["settings"]["rollout_rows"]
    return False


def eval_rows(model, budget, prompt_tokens, samples, device):
    """eval.generate_rows' rows per call on CUDA: the largest power of two that fits the free memory."""
    slots = kvcache.slots_for(prompt_tokens, budget)
    return max(samples, kvcache.rows_that_fit(model.config, slots, samples, device_gib(device) * GiB * MARGIN,
                                             model.dtype))
