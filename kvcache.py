"""
kvcache.py: the sampler's machinery around the model's forward: a static KV cache indexed by slot,
attention that reads grouped KV heads as they are, and one compiled decode step per bounded shape.
sample.py is the algorithm; read it first. This file is what makes its GPU path fit and run fast:

  - KVCache: one [rows, KV heads, slots, head_dim] buffer per layer and K/V, written slot by slot
    (gpt-fast's static cache); static=True keeps every step's shapes fixed for a CUDA graph;
  - grouped_sdpa: with G_q query heads per KV head (12/2 in R1-1.5B), the compiled decode step must
    read each KV head once. transformers' SDPA path copies K and V to every query head while
    compiling (repeat_kv: 6x the KV bytes per step); grouped_sdpa, registered with transformers'
    AttentionInterface, folds the G_q query heads of a KV head into G_q query rows instead;
  - sizes: the bytes a rollout row holds (memory.py plans with the same functions), and how many
    rows fit the free memory;
  - a bounded set of compiled shapes: each (rows, slots) shape is one compiled graph. Rows are padded
    to a power of two, slots to a multiple of SLOT_BUCKET, and at most MAX_SHAPES shapes are compiled
    per model; past that a rollout runs in the smallest compiled shape that holds it. torch's own
    limit (recompile_limit, 8) would otherwise switch the step to eager without a word.
"""
import inspect
import warnings
import weakref
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from transformers.cache_utils import Cache, CacheLayerMixin
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

# ---------------------------------------------------------------------------------------------
# the cache


class _SlotLayer(CacheLayerMixin):
    """One attention layer's keys/values, [B, heads, max_len, head_dim], written slot by slot.

    static=True: attention always reads all max_len slots (the mask hides the unused ones), so
    every decode step has the same shapes and can be replayed as a CUDA graph. static=False (CPU):
    attention reads a view of the slots written so far, which is less work and copies nothing.
    """

    is_compileable = True
    is_sliding = False

    def __init__(self, max_len, static=True):
        super().__init__()
        self.max_len = max_len
        self.static = static
        self.length = 0  # slots written so far (python int, used when not static)
        self.offset = torch.tensor(0)  # the same as a tensor, so a compiled step can advance it

    def lazy_initialization(self, key_states, value_states):
        b, h, _, d = key_states.shape
        self.keys = key_states.new_zeros((b, h, self.max_len, d))
        self.values = value_states.new_zeros((b, h, self.max_len, value_states.shape[-1]))
        self.offset = self.offset.to(key_states.device)
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        if not self.static:
            self.keys[:, :, self.length : self.length + n] = key_states
            self.values[:, :, self.length : self.length + n] = value_states
            self.length += n
            return self.keys[:, :, : self.length], self.values[:, :, : self.length]
        slots = self.offset + torch.arange(n, device=key_states.device)
        self.keys.index_copy_(2, slots, key_states)
        self.values.index_copy_(2, slots, value_states)
        self.offset.add_(n)
        return self.keys, self.values

    def get_mask_sizes(self, query_length):
        if not self.static:
            return self.length + query_length, 0
        return self.max_len, 0  # the mask always covers every slot

    def get_seq_length(self):
        if not self.static:
            return self.length
        return self.offset if self.is_initialized else 0

    def get_max_length(self):
        return self.max_len

    def repeat_rows(self, repeats):
        self.keys = self.keys.repeat_interleave(repeats, dim=0)
        self.values = self.values.repeat_interleave(repeats, dim=0)

    def keep_rows(self, rows):
        self.keys, self.values = self.keys[rows], self.values[rows]


class KVCache(Cache):
    """Our static cache: one _SlotLayer per transformer layer, sized from batch and budget."""

    def __init__(self, num_layers, max_len, static=True):
        super().__init__(layers=[_SlotLayer(max_len, static) for _ in range(num_layers)])

    def repeat_rows(self, repeats):
        """Share a prefilled prompt with its samples: row i becomes rows i*repeats .. i*repeats+repeats-1."""
        for layer in self.layers:
            layer.repeat_rows(repeats)

    def keep_rows(self, rows):
        """Keep only these rows (a LongTensor of row indices), in this order; the others are freed."""
        for layer in self.layers:
            layer.keep_rows(rows)

    def mark_static(self):
        """Tell torch.compile that the buffers are updated in place at fixed addresses; without it a
        CUDA graph is not used for a step that mutates its inputs (HF's StaticCache does the same)."""
        for layer in self.layers:
            for t in (layer.keys, layer.values, layer.offset):
                torch._dynamo.mark_static_address(t)


# ---------------------------------------------------------------------------------------------
# attention for the decode step: grouped KV heads, read as they are


def grouped_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """transformers' SDPA attention, except for one query token with grouped KV heads (decode).

    With g = query heads / KV heads, query head i reads KV head i // g (repeat_kv's order). For one
    query token, the g query heads of KV head h become g query *rows* of head h:
        q [B, Hq, 1, d] -> [B, Hkv, g, d],  out = SDPA(q, K [B, Hkv, S, d], V) -> [B, Hq, 1, d]
    so every K/V byte is read once per step. transformers' own SDPA path does this only when not
    compiling; under torch.compile it repeats K and V to all Hq heads, g times the bytes (g = 6 for
    R1-1.5B: ~285 GB instead of ~26 GB a step at 64 rows x 6k slots). The same function runs
    eagerly and compiled, so the two give the same numbers. Prefill and training (several query
    tokens) go to transformers' SDPA unchanged."""
    g = getattr(module, "num_key_value_groups", 1)
    if g == 1 or query.shape[2] != 1 or kwargs.get("position_bias") is not None or kwargs.get("softcap"):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    b, hq, _, d = query.shape
    q = query.reshape(b, hq // g, g, d)
    mask = attention_mask  # [B, 1, 1, S] broadcasts over heads and rows; a per-head mask is regrouped
    if mask is not None and mask.shape[1] != 1:
        mask = mask.reshape(b, hq // g, g, mask.shape[-1])
    out = F.scaled_dot_product_attention(q, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling)
    return out.reshape(b, hq, 1, value.shape[-1]).transpose(1, 2).contiguous(), None


GROUPED = "bcr_grouped_sdpa"  # its name for transformers: the attention function and SDPA's mask
ALL_ATTENTION_FUNCTIONS.register(GROUPED, grouped_sdpa)
ALL_MASK_ATTENTION_FUNCTIONS.register(GROUPED, sdpa_mask)


@contextmanager
def grouped_attention(model):
    """Run a model that uses SDPA with grouped_sdpa inside the block (only the decode of GQA models
    changes, see grouped_sdpa); any other attention implementation is left as it is."""
    cfg = model.config
    old = cfg._attn_implementation
    if old == "sdpa":
        cfg._attn_implementation = GROUPED
    try:
        yield
    finally:
        cfg._attn_implementation = old


# ---------------------------------------------------------------------------------------------
# sizes: the bytes a rollout holds (memory.py plans with the same functions)


def kv_bytes_per_token(cfg, dtype=torch.bfloat16):
    """K and V of one token in every layer: 2 * layers * KV heads * head_dim * bytes (R1-1.5B in
    bf16: 2 * 28 * 2 * 128 * 2 = 28 KiB; Qwen3-4B: 2 * 36 * 8 * 128 * 2 = 144 KiB)."""
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    return 2 * cfg.num_hidden_layers * kv_heads * head_dim * torch.finfo(dtype).bits // 8


SAMPLING_BYTES_PER_VOCAB = 40  # fp32 [rows, V] tensors alive in one decode step: logits, logits / T,
# log-softmax, the masked copy, probs (5 x 4 bytes), and as much again for top-k/top-p's sort


def row_bytes(cfg, slots, dtype=torch.bfloat16):
    """What one rollout row holds on the device: its cache (every slot) and the step's fp32
    [V]-wide sampling tensors."""
    return slots * kv_bytes_per_token(cfg, dtype) + SAMPLING_BYTES_PER_VOCAB * cfg.vocab_size


def slots_for(prompt_len, max_new_tokens, static=True):
    """Cache slots for a rollout: prompt + budget, rounded up to SLOT_BUCKET on the static path."""
    total = prompt_len + max_new_tokens
    return -(-total // SLOT_BUCKET) * SLOT_BUCKET if static else total


def pow2_ceil(n):
    return 1 << max(0, n - 1).bit_length()


def rows_that_fit(cfg, slots, num_samples, free_bytes, dtype=torch.bfloat16):
    """The largest row chunk that fits free_bytes: a power of two (the row counts a compiled step is
    built for) that holds at least one group of num_samples; 0 when not even that fits."""
    n = int(free_bytes // row_bytes(cfg, slots, dtype))
    return 0 if n < pow2_ceil(num_samples) else 1 << (n.bit_length() - 1)


def _free_bytes(device):
    """Free device memory now, less 10% for the allocator's fragments and the step's temporaries."""
    free, _ = torch.cuda.mem_get_info(device)
    return int(free * 0.9) + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


# ---------------------------------------------------------------------------------------------
# the decode step, compiled once per shape


def _cache_kwarg(model):
    """The forward's name for the cache: transformers 5.x renamed `past_key_values` to `cache` (the
    old name warns, and goes in 5.40); we accept both so one pin covers the 5.x line."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _decode_step(model, cache, ids, mask, pos, cache_kw):
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **{cache_kw: cache})
    return out.logits[:, -1]


SLOT_BUCKET = 256  # static cache sizes are multiples of this: one compiled step serves many rollouts
MAX_SHAPES = 8  # compiled (rows, slots) shapes per model: torch's default recompile_limit
_COMPILED = {}  # id(model) -> {"step": compiled _decode_step, "shapes": {(rows, slots)}, "model": weakref to it}


def _compile(model):
    """A compiled _decode_step of its own for this model: its own count of compiled shapes (torch's
    isolate_recompiles), with room for every shape we let it have (recompile_limit), so that the
    step never runs eagerly because some other caller used up a shared limit."""
    kw = dict(mode="reduce-overhead", dynamic=False)
    params = inspect.signature(torch.compile).parameters
    if "recompile_limit" in params and "isolate_recompiles" in params:
        kw.update(recompile_limit=2 * MAX_SHAPES, isolate_recompiles=True)  # 2x: slack for a guard failure
    return torch.compile(_decode_step, **kw)


def compiled_shapes(model):
    """The (rows, slots) shapes compiled so far for this model, as a set (empty if none)."""
    entry = _COMPILED.get(id(model))
    return set(entry["shapes"]) if entry and entry["model"]() is model else set()


def _compiled_step(model, rows, slots):
    """(compiled step, rows, slots) to run a rollout of `rows` rows and `slots` slots with: its own
    shape while fewer than MAX_SHAPES are compiled, else the smallest compiled shape that holds it
    (extra rows are dummies, extra slots stay masked). A rollout larger than every compiled shape
    starts a new set, with a warning: each compiled shape keeps its CUDA graphs' memory."""
    entry = _COMPILED.get(id(model))
    if entry is None or entry["model"]() is not model:  # (an id can be reused after a model is freed)
        entry = _COMPILED[id(model)] = {"step": _compile(model), "shapes": set(), "model": weakref.ref(model)}
    shapes = entry["shapes"]
    if (rows, slots) not in shapes and len(shapes) >= MAX_SHAPES:
        cover = [sh for sh in shapes if sh[0] >= rows and sh[1] >= slots]
        if cover:
            return (entry["step"], *min(cover, key=lambda sh: sh[0] * sh[1]))
        warnings.warn(f"sample.generate: a rollout of {rows} rows x {slots} slots is larger than the {len(shapes)} "
                      f"shapes compiled for this model (MAX_SHAPES); compiling a new set")
        entry = _COMPILED[id(model)] = {"step": _compile(model), "shapes": set(), "model": weakref.ref(model)}
    entry["shapes"].add((rows, slots))
    return entry["step"], rows, slots
