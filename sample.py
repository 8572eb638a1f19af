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
on the CPU. Row chunks keep it within the device: B rows that would not fit are rolled out max_rows
at a time (the G samples of a prompt stay in one chunk; memory.py plans max_rows, else on CUDA it
comes from the free memory). kvcache.py holds the cache, the grouped-KV attention of the compiled
step and its bounded set of compiled shapes.

Random streams: each prompt draws from its own generator (Gumbel-max, sample_token), so a prompt's
samples do not depend on the other prompts in the batch, on row chunks, or on the process (ddp.py).
"""
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kvcache import (
    KVCache,
    _cache_kwarg,
    _compiled_step,
    _decode_step,
    _free_bytes,
    grouped_attention,
    pow2_ceil,
    row_bytes,
    rows_that_fit,
    slots_for,
)

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
        Used for BCR's stop rule (reward.last_answer_end); is_done must stay true once true. is_done:
        one predicate for every completion, or a list of them, one per completion."""
        eos = set(self.eos_ids)
        for i in range(len(self.lengths)):
            toks, done = self.tokens(i), is_done[i] if isinstance(is_done, list) else is_done
            if not done(tokenizer.decode(toks, skip_special_tokens=True)):
                continue
            lo, hi = 1, len(toks)  # binary search for the shortest prefix that is done
            while lo < hi:
                mid = (lo + hi) // 2
                if done(tokenizer.decode(toks[:mid], skip_special_tokens=True)):
                    hi = mid
                else:
                    lo = mid + 1
            self.cut(i, lo + 1 if lo < len(toks) and toks[lo] in eos else lo)
        return self

    def texts(self, tokenizer):
        return [tokenizer.decode(self.tokens(i), skip_special_tokens=True) for i in range(len(self.lengths))]


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
