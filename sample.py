"""
sample.py: a hand-written KV-cache sampler for any Hugging Face causal LM.

    generate(model, prompts, num_samples, max_new_tokens, temperature, top_p, top_k, eos_token_ids, seed)

The algorithm (nanochat's engine + gpt-fast's static cache):
  1. left-pad the P distinct prompts to a common length L and prefill them once, writing their keys
     and values into a KVCache preallocated for L + max_new_tokens slots;
  2. copy each prompt's cache into its num_samples rows (repeat_interleave on the batch dim):
     B = P * num_samples rows, prompt-major (the samples of prompt 0 come first);
  3. decode one token per step for all rows in lock step: sample from softmax(logits / T) after
     top-k and top-p, write the token's keys/values into the next slot, advance every row's own
     position (RoPE positions are explicit, so left padding never shifts them);
  4. a row that produced EOS emits PAD until the next check: only every `check_every` steps do we
     ask which rows have finished, because that question costs a device-to-host sync. There the
     finished rows leave the batch (their cache rows too), and the rollout ends when none is left.
     Tokens are still drawn for all B rows (finished ones on dummy logits), so that a row's
     tokens, for a given seed, do not depend on when the others left.

Slots versus positions: all rows write slot s at step s, but row i's *position* is s minus its
amount of left padding. The attention mask (one row per sequence, one column per slot) hides the
padding slots; the causal part of the mask is by slot, which is the same order.

Log-probs: for each sampled token we return log softmax(logits / T)[token], the log-prob of the
tempered policy that grpo.token_logprobs recomputes (top-k / top-p only narrow what is drawn;
training uses top_k=0, top_p=1 so the two are the same distribution). With T=0 (greedy) they are
the T=1 log-probs.

GPU fast path: the same loop, with the decode step compiled by torch.compile(mode="reduce-overhead")
so that it is replayed as a CUDA graph (static shapes: attention reads every slot of the
preallocated cache and the mask hides the unused ones; finished rows stay in the batch, as PAD).
On the CPU the step runs eagerly, attention reads only the slots written so far and finished rows
leave the batch; read that path first. Tests run the GPU path's static cache and its compiled step
on the CPU. Three things keep the GPU path within the device and fast (issue #17):
  - row chunks: B rows that would not fit are rolled out max_rows at a time (the G samples of a
    prompt stay in one chunk); the caller passes max_rows (memory.py plans it), else on CUDA it
    comes from the free memory (rows_that_fit);
  - grouped attention: with G_q query heads per KV head (12/2 in R1-1.5B), the compiled step must
    read each KV head once. transformers' SDPA path copies K and V to every query head while
    compiling (repeat_kv: 6x the KV bytes per step); grouped_sdpa, registered with transformers'
    AttentionInterface, folds the G_q query heads of a KV head into G_q query rows instead;
  - a bounded set of shapes: each (rows, slots) shape is one compiled graph. Rows are padded to a
    power of two, slots to a multiple of SLOT_BUCKET, and at most MAX_SHAPES shapes are compiled
    per model; past that a rollout runs in the smallest compiled shape that holds it. torch's own
    limit (recompile_limit, 8) would otherwise switch the step to eager without a word.
"""
import inspect
import warnings
import weakref
from contextlib import contextmanager
from dataclasses import dataclass

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
# sampling one token


def sample_token(logits, temperature=1.0, top_k=0, top_p=1.0, generator=None):
    """logits [B, V] -> (tokens [B], logprobs [B]) with no host sync.

    Draw from softmax(logits / T) restricted to the top_k most likely tokens (0 = all) and to the
    smallest set whose probability reaches top_p (1.0 = all). logprobs are log softmax(logits/T)
    at the drawn token (see the module docstring). temperature == 0 is greedy.

    generator: one torch.Generator, or a list of them, each drawing the noise of B / len(list)
    consecutive rows: generate gives each prompt its own, so a prompt's samples do not depend on
    which other prompts share the batch (or the process: ddp.py). The draw is the Gumbel-max trick,
    argmax(masked logits / T - log(-log u)) with u ~ U(0, 1), an exact sample of the same softmax.
    """
    logits = logits.float()
    if temperature == 0:
        tok = logits.argmax(-1)
        return tok, torch.log_softmax(logits, -1).gather(-1, tok[:, None])[:, 0]
    logits = logits / temperature
    logp = torch.log_softmax(logits, -1)
    masked = logits
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        masked = masked.masked_fill(masked < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(masked, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, -1)
        # drop a token when the tokens before it already reach top_p (the first one always stays)
        drop = probs.cumsum(-1) - probs >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        masked = torch.full_like(masked, float("-inf")).scatter(-1, order, sorted_logits)
    gens = generator if isinstance(generator, (list, tuple)) else [generator]
    rows = logits.shape[0] // len(gens)
    u = torch.cat([torch.rand((rows, logits.shape[-1]), generator=g, device=logits.device) for g in gens])
    tok = (masked - torch.log(-torch.log(u))).argmax(-1)
    return tok, logp.gather(-1, tok[:, None])[:, 0]


# ---------------------------------------------------------------------------------------------
# the rollout


@dataclass
class Rollout:
    """Completions in prompt-major order: rows i*num_samples .. (i+1)*num_samples-1 are prompt i's."""

    prompt_ids: list  # [B] list of token-id lists (the prompt of each row, unpadded)
    completion_ids: torch.Tensor  # [B, T] long, PAD after the end; EOS included when produced
    logprobs: torch.Tensor  # [B, T] float32, 0 after the end
    lengths: torch.Tensor  # [B] long, number of completion tokens (EOS included)
    finished: torch.Tensor  # [B] bool, True if the row produced EOS (or was cut, see cut), False if it hit the budget
    num_samples: int
    pad_id: int = 0  # the id after the end of a completion
    eos_ids: tuple = ()  # the ids that end a completion

    def tokens(self, i):
        return self.completion_ids[i, : self.lengths[i]].tolist()

    def cut(self, i, length):
        """End completion i after `length` tokens, as if it had stopped there (a stop string)."""
        if length < int(self.lengths[i]):
            self.completion_ids[i, length:] = self.pad_id
            self.logprobs[i, length:] = 0.0
            self.lengths[i] = length
        self.finished[i] = True

    def stop_at(self, tokenizer, is_done):
        """End each completion at the shortest prefix whose decoded text satisfies is_done(text),
        as a stop string would (an EOS right after that prefix is kept). In place; returns self.
        Used for BCR's stop rule (reward.last_answer_end); is_done must stay true once true."""
        eos = set(self.eos_ids)
        for i in range(len(self.lengths)):
            toks = self.tokens(i)
            if not is_done(tokenizer.decode(toks, skip_special_tokens=True)):
                continue
            lo, hi = 1, len(toks)  # binary search for the shortest prefix that is done
            while lo < hi:
                mid = (lo + hi) // 2
                if is_done(tokenizer.decode(toks[:mid], skip_special_tokens=True)):
                    hi = mid
                else:
                    lo = mid + 1
            self.cut(i, lo + 1 if lo < len(toks) and toks[lo] in eos else lo)
        return self

    def texts(self, tokenizer):
        return [tokenizer.decode(self.tokens(i), skip_special_tokens=True) for i in range(len(self.lengths))]


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


@torch.no_grad()
def generate(model, prompts, num_samples=1, max_new_tokens=256, temperature=1.0, top_p=1.0, top_k=0,
             eos_token_ids=None, pad_token_id=None, seed=None, check_every=16, compile=None, static=None,
             max_rows=None):
    """Sample num_samples completions for each prompt (token-id lists of any lengths).

    compile (default: on CUDA) compiles the decode step as a CUDA graph, which needs the static
    cache; static (default: = compile) alone runs the GPU path's shapes eagerly, as tests on the CPU do.
    max_rows: roll out at most this many rows at a time, whole groups of num_samples (at least
    one group); default: all rows, except on CUDA's static path, where as many as fit the free
    memory (rows_that_fit). seed: an int, or one per prompt; each prompt draws from its own stream,
    so neither chunks nor the other prompts change its samples."""
    if not prompts:
        raise ValueError("generate: no prompts")
    for i, p in enumerate(prompts):
        if len(p) == 0:
            raise ValueError(f"generate: prompt {i} is empty")
    cfg = model.config
    eos = eos_token_ids if eos_token_ids is not None else cfg.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    pad = pad_token_id if pad_token_id is not None else (cfg.pad_token_id if cfg.pad_token_id is not None else eos[0])
    device = next(model.parameters()).device
    P, G = len(prompts), num_samples
    L = max(len(p) for p in prompts)
    total = L + max_new_tokens
    limit = getattr(cfg, "max_position_embeddings", None)
    if limit is not None and total > limit:
        raise ValueError(f"prompt ({L} tokens) + budget ({max_new_tokens}) = {total} exceeds the model's context "
                         f"of {limit}")
    # one random stream per prompt (seed: one per prompt, or one int for all of them)
    seeds = list(seed) if isinstance(seed, (list, tuple)) else [None if seed is None else seed * 1_000_003 + p
                                                                 for p in range(P)]
    if len(seeds) != P:
        raise ValueError(f"generate: {len(seeds)} seeds for {P} prompts")
    gens = [torch.Generator(device=device) for _ in range(P)]
    for g, sd in zip(gens, seeds):
        g.manual_seed(sd if sd is not None else torch.seed())
    use_compile = compile if compile is not None else device.type == "cuda"
    static = use_compile if static is None else static
    if use_compile and not static:
        raise ValueError("generate: compile=True needs static=True (a CUDA graph replays the same shapes)")
    # static: round the slots up, so that rollouts whose longest prompts differ a little have the
    # same shapes and share one compiled step; the extra slots are never opened in the mask
    slots = slots_for(L, max_new_tokens, static)
    if max_rows is None and static and device.type == "cuda":
        max_rows = rows_that_fit(cfg, slots, G, _free_bytes(device), model.dtype)
        if max_rows == 0:
            raise torch.OutOfMemoryError(f"generate: one group of {G} rows x {slots} slots needs "
                                         f"{row_bytes(cfg, slots, model.dtype) * pow2_ceil(G) / 2**30:.1f} GiB; "
                                         f"the device has {_free_bytes(device) / 2**30:.1f} GiB free")
    per = P if max_rows is None else max(1, max_rows // G)  # prompts per chunk
    kw = dict(temperature=temperature, top_p=top_p, top_k=top_k, eos=eos, pad=pad, check_every=check_every,
              use_compile=use_compile, static=static)
    with grouped_attention(model) if static else _nothing():
        parts = [_rollout(model, prompts[s:s + per], G, max_new_tokens, L, slots, gens=gens[s:s + per], **kw)
                 for s in range(0, P, per)]
    return parts[0] if len(parts) == 1 else _concat(parts)


@contextmanager
def _nothing():
    yield


def _concat(parts):
    """One Rollout from the rollouts of consecutive prompt chunks."""
    T = max(r.completion_ids.shape[1] for r in parts)
    first = parts[0]
    return Rollout(
        prompt_ids=[p for r in parts for p in r.prompt_ids],
        completion_ids=torch.cat([F.pad(r.completion_ids, (0, T - r.completion_ids.shape[1]), value=first.pad_id)
                                  for r in parts]),
        logprobs=torch.cat([F.pad(r.logprobs, (0, T - r.logprobs.shape[1])) for r in parts]),
        lengths=torch.cat([r.lengths for r in parts]), finished=torch.cat([r.finished for r in parts]),
        num_samples=first.num_samples, pad_id=first.pad_id, eos_ids=first.eos_ids,
    )


def _rollout(model, prompts, G, max_new_tokens, L, total, temperature, top_p, top_k, eos, pad, gens, check_every,
             use_compile, static):
    """One chunk of generate: prompts left-padded to L tokens, a cache of `total` slots."""
    cfg = model.config
    device = next(model.parameters()).device
    P = len(prompts)
    B = P * G
    R = B  # rows in the step: on the static path a power of two (dummy rows after the B real ones)
    step = _decode_step
    if static:
        R = pow2_ceil(B)
    if use_compile:
        step, R, total = _compiled_step(model, R, total)

    # 1. prefill the distinct prompts, left-padded
    ids = torch.full((P, L), pad, dtype=torch.long, device=device)
    mask = torch.zeros((P, total), dtype=torch.long, device=device)
    for i, p in enumerate(prompts):
        ids[i, L - len(p):] = torch.tensor(p, device=device)
        mask[i, L - len(p):L] = 1
    pos = (mask[:, :L].cumsum(-1) - 1).clamp(min=0)
    cache = KVCache(cfg.num_hidden_layers, total, static=static)
    cache_kw = _cache_kwarg(model)
    logits = model(input_ids=ids, attention_mask=mask if static else mask[:, :L], position_ids=pos,
                   use_cache=True, logits_to_keep=1, **{cache_kw: cache}).logits[:, -1]

    # 2. share each prompt's cache with its samples
    if G > 1:
        cache.repeat_rows(G)
        mask, logits = mask.repeat_interleave(G, 0), logits.repeat_interleave(G, 0)
    pos = pos[:, -1:].repeat_interleave(G, 0)  # [B, 1] position of the last prompt token
    if R > B:  # the static shape's dummy rows: copies of row 0, decoded and thrown away, no draws
        rows = torch.cat([torch.arange(B, device=device), torch.zeros(R - B, dtype=torch.long, device=device)])
        cache.keep_rows(rows)
        mask, pos = mask[rows], pos[rows]

    if use_compile:
        cache.mark_static()  # the buffers the step writes in place keep their addresses: a CUDA graph may replay

    # Without the static cache (the CPU default) we hand the model a ready 4D additive mask
    # [B, 1, 1, slots] (0 = attend, the dtype's lowest value = padding); transformers passes a 4D
    # mask through untouched: no rebuild per step.
    if not static:
        neg = torch.finfo(model.dtype).min
        mask4 = torch.where(mask.bool(), 0.0, neg).to(model.dtype)[:, None, None, :]
        mask4[:, :, :, L:] = 0.0  # generated slots are attended as soon as they are written

    # 3. decode in lock step. `live` lists the rows of out/out_lp/lengths/done that are still in the
    # batch: all B on the static path (fixed shapes); on the other path the rows that finished are
    # dropped at each check, with their cache rows, so the batch shrinks as completions end
    # instead of carrying PAD to the end of the longest one.
    out = torch.full((B, max_new_tokens), pad, dtype=torch.long, device=device)
    out_lp = torch.zeros((B, max_new_tokens), dtype=torch.float32, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    lengths = torch.zeros(B, dtype=torch.long, device=device)
    eos_t = torch.tensor(eos, device=device)
    live = torch.arange(B, device=device)
    t = 0
    for t in range(max_new_tokens):
        if live.numel() < B:  # draw for all B rows, so that the random stream, and with it each
            # row's tokens, does not depend on when the other rows were dropped
            logits = logits.new_zeros((B, logits.shape[-1])).index_copy_(0, live, logits)
        tok, lp = sample_token(logits, temperature, top_k, top_p, gens)
        if live.numel() < B:
            tok, lp = tok[live], lp[live]
        fin = done[live]  # finished before this step: they emit PAD
        tok = torch.where(fin, pad, tok)
        out[live, t], out_lp[live, t] = tok, torch.where(fin, 0.0, lp)
        lengths[live] += (~fin).long()
        done[live] = fin | torch.isin(tok, eos_t)
        if t + 1 == max_new_tokens:
            break
        if (t + 1) % check_every == 0:  # the only host sync: once every check_every steps
            keep = (~done[live]).nonzero()[:, 0]
            if keep.numel() == 0:
                break
            if not static and keep.numel() < live.numel():
                live, tok, pos, mask4 = live[keep], tok[keep], pos[keep], mask4[keep]
                cache.keep_rows(keep)
        pos = pos + 1
        if static:  # the other path reads mask4, whose generated slots are already open
            mask[:, L + t] = 1
            x = tok if R == B else torch.cat([tok, tok.new_full((R - B,), pad)])
            logits = step(model, cache, x[:, None], mask, pos, cache_kw)[:B]
        else:
            logits = step(model, cache, tok[:, None], mask4[..., : L + t + 1], pos, cache_kw)
    n = t + 1
    del cache  # the cache lives only for this rollout
    return Rollout(
        prompt_ids=[list(prompts[i // G]) for i in range(B)],
        completion_ids=out[:, :n].cpu(), logprobs=out_lp[:, :n].cpu(), lengths=lengths.cpu(),
        finished=done.cpu(), num_samples=G, pad_id=pad, eos_ids=tuple(eos),
    )
