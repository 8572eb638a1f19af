"""
grpo.py: the GRPO objective, written out, and the update step.

For each prompt q we sample a group of G completions o_1..o_G from the old policy and score them
with rewards r_1..r_G. The group-relative advantage of completion i (shared by all its tokens) is

    A_i = (r_i - mean(r_1..r_G)) / (std(r_1..r_G) + eps)          [scale_by_std=True]
    A_i =  r_i - mean(r_1..r_G)                                     [scale_by_std=False, Dr. GRPO]

With the per-token probability ratio  rho_{i,t} = pi_theta(o_{i,t} | q, o_{i,<t}) / pi_old(o_{i,t} | ...)
the objective we maximise is

    J(theta) = sum_{i,t} w_{i,t} * [ min(rho_{i,t} A_i, clip(rho_{i,t}, 1 - eps_low, 1 + eps_high) A_i)
                                      - beta * KL3_{i,t} ]

    KL3_{i,t} = exp(d) - d - 1,  d = log pi_ref(o_{i,t}) - log pi_theta(o_{i,t})   (Schulman's k3:
                unbiased for KL(pi_theta || pi_ref), always >= 0, 0 when the policies agree)

and the loss is -J. The weights w say how tokens are averaged ("agg"):

    "token-mean"           w_{i,t} = 1 / (total completion tokens in the batch)            (DAPO)
    "seq-mean-token-mean"  w_{i,t} = 1 / (|o_i| * number of sequences)             (original GRPO)
    "seq-sum-constant"     w_{i,t} = 1 / (max_len * number of sequences)               (Dr. GRPO)

The totals are over the *whole* batch, also when it is split into micro-batches, so that the
gradient does not depend on the micro-batch size.

On-policy (one optimizer step per batch of rollouts, bcr.py's default) pi_old is pi_theta itself:
rho = 1 and grad rho = grad log pi_theta, so J's gradient is sum w A grad log pi_theta (no token is
clipped). accumulate_gradients then takes pi_old = pi_theta with its gradient stopped
(old_logp None: logp.detach()), which saves the no-grad forward pass over the batch that would
compute the same numbers (TRL does the same when it takes one step per generation).

Memory: a vocabulary of 151,936 makes full fp32 logits the largest tensor in training
(8 x 8192 tokens x 151,936 x 4 bytes = 40 GB). token_logprobs runs the transformer trunk once,
then applies the LM head and an fp32 log-softmax to chunks of completion positions only, and
recomputes each chunk in the backward pass instead of keeping its logits (activation
checkpointing per chunk): the peak is one chunk of logits.
"""
import os

import torch
from torch.utils.checkpoint import checkpoint

# ---------------------------------------------------------------------------------------------
# log-probs


def _chunk_logprobs(hidden, weight, targets, temperature, fused=False):
    logits = hidden @ weight.T  # [chunk, V] in the model's dtype, freed after this call
    if fused:  # the optional Triton kernel at the end of this file: reads these logits once, no fp32 copy
        return fused_logprobs(logits, targets, temperature)
    logits = logits.float() / temperature
    return logits.gather(-1, targets[:, None])[:, 0] - torch.logsumexp(logits, -1)


def chunked_logprobs(hidden, weight, targets, temperature=1.0, chunk_size=1024, fused=False):
    """log softmax(hidden @ weight.T / T)[targets] for hidden [N, H], targets [N], in chunks of rows.

    Each chunk is checkpointed: its [chunk, V] logits exist only while that chunk is computed,
    in the forward pass and again in the backward pass. fused=True computes each chunk's
    log-softmax and gather with the optional Triton kernel (CUDA) instead of PyTorch ops.
    """
    out = []
    for s in range(0, hidden.shape[0], chunk_size):
        h, t = hidden[s : s + chunk_size], targets[s : s + chunk_size]
        if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
            out.append(checkpoint(_chunk_logprobs, h, weight, t, temperature, fused, use_reentrant=False))
        else:
            out.append(_chunk_logprobs(h, weight, t, temperature, fused))
    return torch.cat(out) if out else hidden.new_zeros(0, dtype=torch.float32)


def positions_from_mask(attention_mask):
    """RoPE positions that ignore left padding: 0 at each row's first real token."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def token_logprobs(model, input_ids, attention_mask, completion_mask, temperature=1.0, chunk_size=1024,
                   fused=False):
    """[B, T] fp32: out[b, t] = log pi(input_ids[b, t] | input_ids[b, <t]) where completion_mask[b, t],
    else 0. Never materialises [B, T, V] logits. fused: the Triton kernel (see fused_logprobs)."""
    trunk, head = model.get_decoder(), model.get_output_embeddings()
    hidden = trunk(input_ids=input_ids, attention_mask=attention_mask,
                   position_ids=positions_from_mask(attention_mask), use_cache=False).last_hidden_state
    # the hidden state at t-1 predicts the token at t
    sel = completion_mask[:, 1:].bool()
    lp = chunked_logprobs(hidden[:, :-1][sel], head.weight, input_ids[:, 1:][sel], temperature, chunk_size, fused)
    out = torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device)
    out[:, 1:] = out[:, 1:].masked_scatter(sel, lp)
    return out


def naive_token_logprobs(model, input_ids, attention_mask, completion_mask, temperature=1.0):
    """The textbook version, for tests and benchmarks: full [B, T, V] fp32 logits."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask,
                   position_ids=positions_from_mask(attention_mask)).logits.float() / temperature
    lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, input_ids[:, 1:, None])[..., 0]
    out = torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device)
    out[:, 1:] = lp * completion_mask[:, 1:]
    return out


# ---------------------------------------------------------------------------------------------
# advantages and loss


def group_advantages(rewards, group_size, scale_by_std=True, eps=1e-6):
    """rewards [P*G] in prompt-major order -> advantages [P*G] (std is the unbiased sample std)."""
    r = rewards.float().view(-1, group_size)
    a = r - r.mean(-1, keepdim=True)
    if scale_by_std:
        a = a / (r.std(-1, keepdim=True) + eps)
    return a.view(-1)


AGGS = ("token-mean", "seq-mean-token-mean", "seq-sum-constant")


def loss_weights(mask, agg="token-mean", total_tokens=None, total_seqs=None, max_len=None):
    """w [B, T] of the objective (see the module docstring). total_* are the whole batch's counts
    when `mask` is one micro-batch of it; by default the counts of `mask` itself."""
    mask = mask.float()
    if agg == "token-mean":
        total = float(total_tokens if total_tokens is not None else mask.sum())
        return mask / max(total, 1.0)
    seqs = float(total_seqs if total_seqs is not None else mask.shape[0])
    if agg == "seq-mean-token-mean":
        return mask / mask.sum(-1, keepdim=True).clamp(min=1) / seqs
    if agg == "seq-sum-constant":
        return mask / float(max_len if max_len is not None else mask.shape[1]) / seqs
    raise ValueError(f"unknown agg {agg!r}; choose from {AGGS}")


def kl_k3(logp, ref_logp):
    """Schulman's k3 estimator of KL(pi || pi_ref) per token: exp(d) - d - 1, d = ref_logp - logp."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def grpo_loss(logp, old_logp, adv, mask, clip_low=0.2, clip_high=0.28, ref_logp=None, beta=0.0,
              agg="token-mean", weights=None):
    """-J(theta) for one (micro-)batch. logp/old_logp/mask/ref_logp [B, T], adv [B].
    weights: precomputed loss_weights (pass the whole batch's normaliser when micro-batching)."""
    mask = mask.float()
    w = loss_weights(mask, agg) if weights is None else weights
    A = adv.float()[:, None]
    ratio = torch.exp(logp - old_logp)  # rho
    unclipped = ratio * A
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * A
    objective = torch.minimum(unclipped, clipped)  # the PPO clipped surrogate
    kl = None
    if beta > 0:
        if ref_logp is None:
            raise ValueError("grpo_loss: beta > 0 needs ref_logp")
        kl = kl_k3(logp, ref_logp)
        objective = objective - beta * kl
    loss = -(w * objective).sum()
    with torch.no_grad():  # diagnostics, over real tokens
        n = mask.sum().clamp(min=1)
        is_clipped = ((A > 0) & (ratio > 1 + clip_high)) | ((A < 0) & (ratio < 1 - clip_low))
        r = ratio[mask.bool()]
        stats = {
            "clip_frac": ((is_clipped.float() * mask).sum() / n).item(),
            "ratio_mean": r.mean().item() if r.numel() else 1.0,
            "ratio_max": r.max().item() if r.numel() else 1.0,
            "ratio_min": r.min().item() if r.numel() else 1.0,
            "approx_kl_old": (((logp - old_logp) ** 2 * 0.5 * mask).sum() / n).item(),
            "kl_ref": ((kl * mask).sum() / n).item() if kl is not None else 0.0,
        }
    return loss, stats


# ---------------------------------------------------------------------------------------------
# the update step


class MasterAdamW:
    """AdamW on fp32 master copies of the parameters. With an fp32 model the masters are the
    parameters themselves; with a bf16 model, bf16 gradients are copied up to fp32, AdamW updates
    the fp32 masters and the result is rounded back into the model (small updates are not lost
    to bf16 rounding)."""

    def __init__(self, params, lr, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.fp32 = all(p.dtype == torch.float32 for p in self.params)
        self.master = self.params if self.fp32 else [p.detach().float().clone().requires_grad_(True)
                                                     for p in self.params]
        self.opt = torch.optim.AdamW(self.master, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps)

    @property
    def param_groups(self):
        return self.opt.param_groups

    def zero_grad(self):
        for p in self.params:
            p.grad = None
        if not self.fp32:
            for m in self.master:
                m.grad = None

    def step(self):
        if not self.fp32:
            for p, m in zip(self.params, self.master):
                m.grad = None if p.grad is None else p.grad.float()
        self.opt.step()
        if not self.fp32:
            with torch.no_grad():
                for p, m in zip(self.params, self.master):
                    p.copy_(m)

    def state_dict(self):
        return {"opt": self.opt.state_dict(), "master": None if self.fp32 else [m.detach() for m in self.master]}

    def load_state_dict(self, sd):
        if sd.get("master") is not None and not self.fp32:
            with torch.no_grad():
                for m, s in zip(self.master, sd["master"]):
                    m.copy_(s)
                for p, m in zip(self.params, self.master):
                    p.copy_(m)
        self.opt.load_state_dict(sd["opt"])


def accumulate_gradients(model, batch, micro_batch_size, clip_low=0.2, clip_high=0.28, beta=0.0,
                         agg="token-mean", max_len=None, temperature=1.0, fused=False, totals=None):
    """loss.backward() over micro-batches of `batch`, with the normaliser of the whole batch, so
    the accumulated gradient is the gradient of grpo_loss on the whole batch. Returns stats.

    batch: input_ids, attention_mask, completion_mask [B, T]; old_logp [B, T], or None on-policy
    (pi_old = pi_theta: logp.detach(), see the top of this file); adv [B]; ref_logp [B, T] when
    beta > 0; sampler_logp [B, T], optional: the sampler's log-probs, compared with this forward's
    (stats sampler_logp_mismatch_mean / _max; in bf16 the two differ: other kernels and shapes).
    totals: (tokens, sequences) of the global batch when `batch` is one rank's share of it (data
    parallel): the ranks' gradients then sum to the global batch's gradient.
    """
    B = batch["input_ids"].shape[0]
    cmask = batch["completion_mask"]
    total_tokens, total_seqs = totals if totals is not None else (float(cmask.sum()), B)
    max_len = max_len if max_len is not None else cmask.shape[1]
    stats = {"loss": 0.0, "ratio_max": 0.0, "ratio_min": float("inf")}
    mismatch = []
    for s in range(0, B, micro_batch_size):
        sl = slice(s, min(s + micro_batch_size, B))
        logp = token_logprobs(model, batch["input_ids"][sl], batch["attention_mask"][sl], cmask[sl], temperature,
                              fused=fused)
        old = logp.detach() if batch.get("old_logp") is None else batch["old_logp"][sl]
        if batch.get("sampler_logp") is not None:
            mismatch.append((logp.detach() - batch["sampler_logp"][sl])[cmask[sl].bool()].abs())
        w = loss_weights(cmask[sl], agg, total_tokens=total_tokens, total_seqs=total_seqs, max_len=max_len)
        loss, st = grpo_loss(logp, old, batch["adv"][sl], cmask[sl], clip_low, clip_high,
                             batch["ref_logp"][sl] if beta > 0 else None, beta, agg, weights=w)
        loss.backward()
        stats["loss"] += loss.item()
        for k in ("clip_frac", "ratio_mean", "approx_kl_old", "kl_ref"):
            stats[k] = stats.get(k, 0.0) + st[k] * (sl.stop - sl.start) / B
        stats["ratio_max"] = max(stats["ratio_max"], st["ratio_max"])
        stats["ratio_min"] = min(stats["ratio_min"], st["ratio_min"])
    if mismatch:
        d = torch.cat(mismatch)
        stats["sampler_logp_mismatch_mean"] = d.mean().item() if d.numel() else 0.0
        stats["sampler_logp_mismatch_max"] = d.max().item() if d.numel() else 0.0
    return stats


def grpo_step(model, optimizer, batch, micro_batch_size, clip_low=0.2, clip_high=0.28, beta=0.0,
              agg="token-mean", max_len=None, temperature=1.0, max_grad_norm=1.0, fused=False, totals=None,
              sum_grads=None):
    """One optimizer step on a batch of rollouts: accumulate, clip the gradient norm, step.
    Data parallel: totals as in accumulate_gradients, and sum_grads(params) adds up the ranks' gradients."""
    optimizer.zero_grad()
    stats = accumulate_gradients(model, batch, micro_batch_size, clip_low, clip_high, beta, agg, max_len, temperature,
                                 fused, totals)
    params = optimizer.params if hasattr(optimizer, "params") else [p for p in model.parameters() if p.requires_grad]
    if sum_grads is not None:
        sum_grads(params)
    stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
    optimizer.step()
    optimizer.zero_grad()
    return stats


# ---------------------------------------------------------------------------------------------
# optional: a Triton kernel that fuses log-softmax and gather (Liger-Kernel's idea, our code)
#
# For one row x of logits (model dtype) and its target t, with z = x / T:
#   forward   logp = z_t - lse(z),  lse(z) = m + log sum_v exp(z_v - m),  m = max_v z_v
#             (one pass over v with a running max and a rescaled running sum; lse is kept)
#   backward  d logp / d x_v = (1[v = t] - exp(z_v - lse)) / T
# Each program owns one row and walks the vocabulary in blocks, in fp32 registers: the only
# [N, V] tensors are the logits and, in the backward pass, their gradient (model dtype). The
# PyTorch path above makes an fp32 copy of the logits and autograd keeps more [N, V] fp32
# intermediates. Tests compare the two, forward and backward, on the CPU with TRITON_INTERPRET=1.

try:
    import triton
    import triton.language as tl
except ImportError:  # triton is optional: the PyTorch path is the default and the reference
    triton = None

if triton is not None:

    @triton.jit
    def _logprob_fwd_kernel(x_ptr, stride, t_ptr, logp_ptr, lse_ptr, V, temperature, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        x_row = x_ptr + row * stride
        m = float("-inf")  # running max of z
        s = 0.0  # running sum of exp(z - m)
        for start in range(0, V, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            z = tl.load(x_row + cols, mask=cols < V, other=float("-inf")).to(tl.float32) / temperature
            m_new = tl.maximum(m, tl.max(z, 0))
            s = s * tl.exp(m - m_new) + tl.sum(tl.exp(z - m_new), 0)
            m = m_new
        lse = m + tl.log(s)
        z_t = tl.load(x_row + tl.load(t_ptr + row)).to(tl.float32) / temperature
        tl.store(logp_ptr + row, z_t - lse)
        tl.store(lse_ptr + row, lse)

    @triton.jit
    def _logprob_bwd_kernel(x_ptr, stride, t_ptr, lse_ptr, g_ptr, dx_ptr, V, temperature, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        lse, g, t = tl.load(lse_ptr + row), tl.load(g_ptr + row), tl.load(t_ptr + row)
        for start in range(0, V, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            z = tl.load(x_ptr + row * stride + cols, mask=cols < V, other=0.0).to(tl.float32) / temperature
            dx = g * (tl.where(cols == t, 1.0, 0.0) - tl.exp(z - lse)) / temperature
            tl.store(dx_ptr + row * stride + cols, dx.to(dx_ptr.dtype.element_ty), mask=cols < V)


class _FusedLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, temperature):
        logits, targets = logits.contiguous(), targets.contiguous()
        N, V = logits.shape
        logp = torch.empty(N, dtype=torch.float32, device=logits.device)
        lse = torch.empty_like(logp)
        block = min(4096, triton.next_power_of_2(V))
        if N:
            _logprob_fwd_kernel[(N,)](logits, logits.stride(0), targets, logp, lse, V, float(temperature), BLOCK=block)
        ctx.save_for_backward(logits, targets, lse)
        ctx.temperature, ctx.block = float(temperature), block
        return logp

    @staticmethod
    def backward(ctx, grad):
        logits, targets, lse = ctx.saved_tensors
        dx = torch.empty_like(logits)
        if logits.shape[0]:
            _logprob_bwd_kernel[(logits.shape[0],)](logits, logits.stride(0), targets, lse, grad.float().contiguous(),
                                                    dx, logits.shape[1], ctx.temperature, BLOCK=ctx.block)
        return dx, None, None


def fused_logprobs(logits, targets, temperature=1.0):
    """log softmax(logits / T)[targets] for logits [N, V] (any float dtype), targets [N]: fp32 [N],
    differentiable in logits. Needs triton, and a CUDA device (or TRITON_INTERPRET=1, for tests)."""
    if triton is None:
        raise RuntimeError("fused log-probs need triton (pip install triton); without it use the default fused=False")
    if logits.device.type != "cuda" and not os.environ.get("TRITON_INTERPRET"):
        raise RuntimeError(f"fused log-probs run on CUDA (or under TRITON_INTERPRET=1), not on {logits.device}")
    return _FusedLogprobs.apply(logits, targets, temperature)
