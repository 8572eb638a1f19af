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
preallocated cache and the mask hides the unused ones; the cache is sized in multiples of
SLOT_BUCKET slots, so that one compiled step serves rollouts whose prompts differ in length;
finished rows stay in the batch, as PAD). On the CPU the step runs eagerly, attention reads only
the slots written so far and finished rows leave the batch; read that path first. Tests run the
GPU path's static cache and its compiled step on the CPU.
"""
import argparse
import inspect
import time
from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


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
# sampling one token


def sample_token(logits, temperature=1.0, top_k=0, top_p=1.0, generator=None):
    """logits [B, V] -> (tokens [B], logprobs [B]) with no host sync.

    Draw from softmax(logits / T) restricted to the top_k most likely tokens (0 = all) and to the
    smallest set whose probability reaches top_p (1.0 = all). logprobs are log softmax(logits/T)
    at the drawn token (see the module docstring). temperature == 0 is greedy.
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
    probs = torch.softmax(masked, -1)
    tok = torch.multinomial(probs, 1, generator=generator)[:, 0]
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

    def tokens(self, i):
        return self.completion_ids[i, : self.lengths[i]].tolist()

    def cut(self, i, length):
        """End completion i after `length` tokens, as if it had stopped there (a stop string)."""
        if length < int(self.lengths[i]):
            self.completion_ids[i, length:] = self.pad_id
            self.logprobs[i, length:] = 0.0
            self.lengths[i] = length
        self.finished[i] = True

    def texts(self, tokenizer):
        return [tokenizer.decode(self.tokens(i), skip_special_tokens=True) for i in range(len(self.lengths))]


def _cache_kwarg(model):
    """The forward's name for the cache: transformers 5.x renamed `past_key_values` to `cache` (the
    old name warns, and goes in 5.40); we accept both so one pin covers the 5.x line."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _decode_step(model, cache, ids, mask, pos, cache_kw):
    return model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **{cache_kw: cache}).logits[:, -1]


_COMPILED = {}
SLOT_BUCKET = 256  # static cache sizes are multiples of this: one compiled step serves many rollouts


@torch.no_grad()
def generate(model, prompts, num_samples=1, max_new_tokens=256, temperature=1.0, top_p=1.0, top_k=0,
             eos_token_ids=None, pad_token_id=None, seed=None, check_every=16, compile=None, static=None):
    """Sample num_samples completions for each prompt (token-id lists of any lengths).

    compile (default: on CUDA) compiles the decode step as a CUDA graph, which needs the static
    cache; static (default: = compile) alone runs the GPU path's shapes eagerly, as tests on the CPU do."""
    if not prompts:
        raise ValueError("generate: no prompts")
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
        raise ValueError(f"prompt ({L} tokens) + budget ({max_new_tokens}) = {total} exceeds the model's context of {limit}")
    gen = torch.Generator(device=device)
    gen.manual_seed(seed if seed is not None else torch.seed())
    use_compile = compile if compile is not None else device.type == "cuda"
    static = use_compile if static is None else static
    if use_compile and not static:
        raise ValueError("generate: compile=True needs static=True (a CUDA graph replays the same shapes)")
    if static:
        # round the slots up, so that rollouts whose longest prompts differ a little have the same
        # shapes and share one compiled step; the extra slots are never opened in the mask
        total = -(-total // SLOT_BUCKET) * SLOT_BUCKET

    # 1. prefill the distinct prompts, left-padded
    ids = torch.full((P, L), pad, dtype=torch.long, device=device)
    mask = torch.zeros((P, total), dtype=torch.long, device=device)
    for i, p in enumerate(prompts):
        if len(p) == 0:
            raise ValueError(f"generate: prompt {i} is empty")
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
    B = P * G
    pos = pos[:, -1:].repeat_interleave(G, 0)  # [B, 1] position of the last prompt token

    step = _decode_step
    if use_compile:
        cache.mark_static()  # the buffers the step writes in place keep their addresses: a CUDA graph may replay
        step = _COMPILED.setdefault(id(model), torch.compile(_decode_step, mode="reduce-overhead", dynamic=False))

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
        tok, lp = sample_token(logits, temperature, top_k, top_p, gen)
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
        if static:  # the other path reads mask4, whose generated slots are already open
            mask[:, L + t] = 1
        pos = pos + 1
        logits = step(model, cache, tok[:, None], mask if static else mask4[..., : L + t + 1], pos, cache_kw)
    n = t + 1
    del cache  # the cache lives only for this rollout
    return Rollout(
        prompt_ids=[list(prompts[i // G]) for i in range(B)],
        completion_ids=out[:, :n].cpu(), logprobs=out_lp[:, :n].cpu(), lengths=lengths.cpu(),
        finished=done.cpu(), num_samples=G, pad_id=pad,
    )


# ---------------------------------------------------------------------------------------------
# python sample.py --bench: ours vs HF generate, same model, prompts and lengths, one run


def _hf_generate(model, prompts, max_new_tokens, pad, eos_ids, greedy=True):
    device = next(model.parameters()).device
    L = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), L), pad, dtype=torch.long, device=device)
    att = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, L - len(p):] = torch.tensor(p, device=device)
        att[i, L - len(p):] = 1
    kw = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0)
    return model.generate(input_ids=ids, attention_mask=att, max_new_tokens=max_new_tokens, pad_token_id=pad,
                          eos_token_id=eos_ids, **kw)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _bench_once(fn, device):
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def bench(args):
    from transformers import AutoConfig, AutoModelForCausalLM

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
        import toy

        tok = toy.make_tokenizer()
        model = toy.make_model(tok).eval()
        cfg = model.config
        batch, plen, new = args.batch or 64, args.prompt_len or 64, args.new_tokens or 256
        what = "toy Llama (0.9M params), fp32"
    prompts = [torch.randint(10, cfg.vocab_size, (plen,), generator=g).tolist() for _ in range(batch)]
    never = [cfg.vocab_size + 7]  # an EOS id no one can sample: every row runs the full length

    def ours():
        generate(model, prompts, 1, new, temperature=0, eos_token_ids=never, pad_token_id=0, seed=0)

    def hf():
        _hf_generate(model, prompts, new, 0, never)

    @torch.no_grad()
    def forwards_only():
        # the model's own share: the same prefill and decode forwards as ours (same cache, mask and
        # positions), with no sampling and no bookkeeping. Any sampler that goes through this forward
        # pays at least this, so HF's time over it bounds the ratio a CPU sampler can reach.
        cache, kw = KVCache(cfg.num_hidden_layers, plen + new, static=False), _cache_kwarg(model)
        ids = torch.tensor(prompts, device=device)
        model(input_ids=ids, position_ids=torch.arange(plen, device=device).expand(batch, plen), use_cache=True,
              logits_to_keep=1, **{kw: cache})
        mask4, tok = torch.zeros((batch, 1, 1, plen + new), device=device), ids[:, -1:]
        for s in range(new - 1):
            _decode_step(model, cache, tok, mask4[..., : plen + s + 1], torch.full_like(tok, plen + s), kw)

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
    print(f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'} ({torch.get_num_threads()} threads); "
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
        kv_per_tok = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads) * 2
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


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="KV-cache sampler; --bench compares with HF generate.")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--prompt-len", type=int, default=0)
    ap.add_argument("--new-tokens", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if args.bench:
        bench(args)
    else:
        ap.print_help()
