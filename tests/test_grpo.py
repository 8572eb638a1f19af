"""grpo.py against independent references: autograd, hand-computed numbers, the naive log-prob path."""
import math

import pytest
import torch

import grpo
import toy


def _logp_from(theta, targets):
    return torch.log_softmax(theta, -1).gather(-1, targets[..., None])[..., 0]


def test_group_advantages_by_hand():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    a = grpo.group_advantages(r, 4)
    s = math.sqrt(4 * 0.25 / 3)  # unbiased std of [1,0,0,1]
    want = torch.tensor([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0]) / torch.tensor([s + 1e-6] * 4 + [1e-6] * 4)
    assert torch.allclose(a, want, atol=1e-5)
    want = torch.tensor([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0])
    assert torch.allclose(grpo.group_advantages(r, 4, scale_by_std=False), want)


MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.float)
ADV = torch.tensor([1.0, -2.0])


@pytest.mark.parametrize("agg,want", [
    # J = sum_t w_t * A; by hand: row 1 has 3 tokens with A=1, row 2 has 2 tokens with A=-2
    ("token-mean", -(3 * 1 + 2 * -2) / 5),             # 1/5 per token
    ("seq-mean-token-mean", -(3 * 1 / 3 + 2 * -2 / 2) / 2),  # per sequence mean, then mean
    ("seq-sum-constant", -(3 * 1 + 2 * -2) / (4 * 2)),  # sum / (max_len 4 * 2 sequences)
])
def test_agg_modes_by_hand(agg, want):
    lp = torch.zeros(2, 4)
    loss, _ = grpo.grpo_loss(lp, lp, ADV, MASK, agg=agg)
    assert loss.item() == pytest.approx(want, abs=1e-7)
    # ratio 1.1 everywhere (inside the clip range): the objective scales by 1.1
    loss, st = grpo.grpo_loss(lp + math.log(1.1), lp, ADV, MASK, agg=agg)
    assert loss.item() == pytest.approx(1.1 * want, abs=1e-6)
    assert st["clip_frac"] == 0.0


def test_on_policy_gradient_is_reinforce():
    torch.manual_seed(0)
    theta = torch.randn(3, 5, 7, requires_grad=True)
    tgt = torch.randint(0, 7, (3, 5))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.float)
    adv = torch.tensor([0.7, -1.3, 0.4])
    for agg in grpo.AGGS:
        logp = _logp_from(theta, tgt)
        loss, _ = grpo.grpo_loss(logp, logp.detach(), adv, mask, agg=agg)
        (g,) = torch.autograd.grad(loss, theta)
        # REINFORCE surrogate with the same weights: -sum w * A * log pi
        w = grpo.loss_weights(mask, agg)
        ref = -(w * adv[:, None] * _logp_from(theta, tgt)).sum()
        (g_ref,) = torch.autograd.grad(ref, theta)
        assert torch.allclose(g, g_ref, atol=1e-7), agg


def test_clipping_zeroes_gradient_where_ppo_says():
    theta = torch.zeros(1, 4, 3, requires_grad=True)
    tgt = torch.zeros(1, 4, dtype=torch.long)
    logp = _logp_from(theta, tgt)  # log(1/3) at each token
    # old log-probs chosen so that the ratios are 1.5, 0.5, 1.5, 0.5
    old = logp.detach() - torch.log(torch.tensor([[1.5, 0.5, 1.5, 0.5]]))
    mask = torch.ones(1, 4)
    for A, zero in ((1.0, [True, False, True, False]), (-1.0, [False, True, False, True])):
        # A > 0: ratio 1.5 > 1 + 0.28 is clipped (no gradient), ratio 0.5 is not (the min keeps it);
        # A < 0: ratio 0.5 < 1 - 0.2 is clipped, ratio 1.5 is not
        loss, st = grpo.grpo_loss(logp, old, torch.tensor([A]), mask)
        (g,) = torch.autograd.grad(loss, theta, retain_graph=True)
        for t in range(4):
            assert (g[0, t].abs().sum() == 0) == zero[t], (A, t)
        assert st["clip_frac"] == 0.5


def test_k3_nonnegative_and_zero_when_equal():
    torch.manual_seed(0)
    a, b = torch.randn(1000), torch.randn(1000)
    assert (grpo.kl_k3(a, b) >= 0).all()
    assert torch.equal(grpo.kl_k3(a, a), torch.zeros(1000))
    # beta > 0 adds beta * k3 to the loss, and demands a reference
    lp = torch.zeros(1, 2)
    loss, st = grpo.grpo_loss(lp, lp, torch.zeros(1), torch.ones(1, 2), ref_logp=lp - 1.0, beta=0.5)
    assert loss.item() == pytest.approx(0.5 * (math.exp(-1) + 1 - 1))
    with pytest.raises(ValueError):
        grpo.grpo_loss(lp, lp, torch.zeros(1), torch.ones(1, 2), beta=0.5)


def _tiny():
    tok = toy.make_tokenizer()
    torch.manual_seed(0)
    return toy.make_model(tok).float(), tok


def _batch(model, B=8, T=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, model.config.vocab_size, (B, T), generator=g)
    att = torch.ones(B, T, dtype=torch.long)
    att[1, :5] = 0  # left padding
    att[3, :2] = 0
    cmask = torch.zeros(B, T, dtype=torch.long)
    for i in range(B):
        cmask[i, 10 : 10 + 4 + (i * 3) % 10] = 1
    return ids, att, cmask


def test_token_logprobs_matches_naive_forward_and_backward():
    model, _ = _tiny()
    ids, att, cmask = _batch(model)
    for temperature in (1.0, 0.7):
        ours = grpo.token_logprobs(model, ids, att, cmask, temperature, chunk_size=7)
        (ours * torch.linspace(-1, 1, ours.numel()).view_as(ours)).sum().backward()
        g_ours = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        ref = grpo.naive_token_logprobs(model, ids, att, cmask, temperature)
        (ref * torch.linspace(-1, 1, ref.numel()).view_as(ref)).sum().backward()
        g_ref = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        assert torch.allclose(ours, ref, atol=1e-5)
        for a, b in zip(g_ours, g_ref):
            assert torch.allclose(a, b, atol=1e-5)
        assert (ours[cmask == 0] == 0).all()


# the optional Triton kernel: on a GPU compiled, without one in Triton's interpreter (conftest.py)
FUSED_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
needs_triton = pytest.mark.skipif(grpo.triton is None, reason="triton not installed (optional)")


def _check_fused_against_pytorch(N, V, dtype, temperature):
    g = torch.Generator().manual_seed(N * V)
    x = (torch.randn(N, V, generator=g) * 4).to(device=FUSED_DEVICE, dtype=dtype)
    t = torch.randint(0, V, (N,), generator=g).to(FUSED_DEVICE)
    t[0] = x[0].float().argmax()  # one target at the row's max, where the gradient's two terms nearly cancel
    w = torch.linspace(-1, 2, N, device=FUSED_DEVICE)  # a weight per row: the backward gets a non-uniform grad
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = grpo.fused_logprobs(x1, t, temperature)
    (ours * w).sum().backward()
    ref = torch.log_softmax(x2.float() / temperature, -1).gather(-1, t[:, None])[:, 0]
    (ref * w).sum().backward()
    assert ours.dtype == torch.float32 and x1.grad.dtype == dtype
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    if dtype == torch.float32:
        torch.testing.assert_close(x1.grad, x2.grad, atol=1e-6, rtol=1e-5)
    else:  # both round the same fp32 gradient to bf16: at most one bf16 step apart
        torch.testing.assert_close(x1.grad.float(), x2.grad.float(), atol=1e-6, rtol=2 ** -7)


@needs_triton
@pytest.mark.parametrize("V", [241, 9000])  # one block; three blocks of 4096 with a ragged last one
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_fused_logprob_kernel_matches_pytorch_forward_and_backward(V, dtype, temperature):
    _check_fused_against_pytorch(5, V, dtype, temperature)


@needs_triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU (the interpreter is too slow for this size)")
def test_fused_logprob_kernel_qwen_vocab():
    for dtype in (torch.float32, torch.bfloat16):
        _check_fused_against_pytorch(64, 151936, dtype, 1.0)


@needs_triton
def test_token_logprobs_fused_equals_the_default_path():
    model, _ = _tiny()
    model.to(FUSED_DEVICE)
    ids, att, cmask = (x.to(FUSED_DEVICE) for x in _batch(model))
    res = []
    for fused in (False, True):
        lp = grpo.token_logprobs(model, ids, att, cmask, 0.7, chunk_size=7, fused=fused)
        (lp * torch.linspace(-1, 1, lp.numel(), device=FUSED_DEVICE).view_as(lp)).sum().backward()
        res.append((lp.detach(), [p.grad.clone() for p in model.parameters()]))
        model.zero_grad()
    (a, ga), (b, gb) = res
    assert torch.allclose(a, b, atol=1e-5)
    for x, y in zip(ga, gb):
        assert torch.allclose(x, y, atol=1e-5)


def test_fused_logprobs_say_what_they_need(monkeypatch):
    x, t = torch.zeros(2, 5), torch.zeros(2, dtype=torch.long)
    if grpo.triton is not None:  # installed, but its compiled kernels do not run on the CPU
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
        with pytest.raises(RuntimeError, match="run on CUDA .* not on cpu"):
            grpo.fused_logprobs(x, t)
    monkeypatch.setattr(grpo, "triton", None)
    with pytest.raises(RuntimeError, match="pip install triton"):
        grpo.fused_logprobs(x, t)


def test_micro_batches_give_the_same_gradient():
    model, _ = _tiny()
    ids, att, cmask = _batch(model)
    with torch.no_grad():
        old = grpo.token_logprobs(model, ids, att, cmask) + 0.05 * torch.randn(ids.shape) * cmask
    batch = {"input_ids": ids, "attention_mask": att, "completion_mask": cmask, "old_logp": old,
             "adv": torch.linspace(-1, 1, ids.shape[0])}
    for agg in grpo.AGGS:
        grads = []
        for mb in (8, 2):  # one batch vs 4 micro-batches
            model.zero_grad()
            grpo.accumulate_gradients(model, batch, mb, agg=agg)
            grads.append([p.grad.clone() for p in model.parameters()])
        for a, b in zip(*grads):
            assert torch.allclose(a, b, atol=1e-6), agg


def test_on_policy_old_logp_none_is_the_gradient_of_a_separate_pi_old_forward():
    # old_logp None (one optimizer step per batch): pi_old = logp.detach() must give the gradient that a
    # separate no-grad forward would, sum w A grad log pi, and the sampler's log-probs are compared
    model, _ = _tiny()
    ids, att, cmask = _batch(model)
    with torch.no_grad():
        old = grpo.token_logprobs(model, ids, att, cmask)
    adv = torch.linspace(-1, 1, ids.shape[0])
    sampler = old + 0.01 * cmask  # a sampler 0.01 off on every real token
    grads, stats = [], []
    for o in (old, None):
        model.zero_grad()
        batch = {"input_ids": ids, "attention_mask": att, "completion_mask": cmask, "old_logp": o, "adv": adv,
                 "sampler_logp": sampler}
        stats.append(grpo.accumulate_gradients(model, batch, 3))
        grads.append([p.grad.clone() for p in model.parameters()])
    # the same gradient, by autograd on the plain policy-gradient surrogate: -sum w A log pi
    model.zero_grad()
    w = grpo.loss_weights(cmask)
    (-(w * adv[:, None] * grpo.token_logprobs(model, ids, att, cmask)).sum()).backward()
    for a, b, c in zip(*grads, [p.grad for p in model.parameters()]):
        assert torch.allclose(a, b, atol=1e-6) and torch.allclose(b, c, atol=1e-6)
    for st in stats:
        assert st["ratio_max"] == pytest.approx(1.0, abs=1e-5) and st["clip_frac"] == 0
        assert st["sampler_logp_mismatch_mean"] == pytest.approx(0.01, abs=1e-5)
        assert st["sampler_logp_mismatch_max"] == pytest.approx(0.01, abs=1e-5)


def test_master_weights_keep_small_updates_in_bf16():
    p = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    opt = grpo.MasterAdamW([p], lr=1e-4)
    plain = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    plain_opt = torch.optim.AdamW([plain], lr=1e-4, weight_decay=0.0)
    for _ in range(100):
        for q, o in ((p, opt), (plain, plain_opt)):
            o.zero_grad()
            q.grad = torch.ones(4, dtype=torch.bfloat16)
            o.step()
    # 100 steps of -1e-4 each: fp32 masters reach 0.99; in bf16 each update rounds away
    assert opt.master[0].dtype == torch.float32
    assert opt.master[0][0].item() == pytest.approx(0.99, abs=1e-4)
    assert p[0].item() < 1.0
    assert plain[0].item() == 1.0


def test_grpo_step_moves_probability_toward_positive_advantage():
    model, _ = _tiny()
    ids, att, cmask = _batch(model, B=4)
    with torch.no_grad():
        old = grpo.token_logprobs(model, ids, att, cmask)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    batch = {"input_ids": ids, "attention_mask": att, "completion_mask": cmask, "old_logp": old, "adv": adv}
    opt = grpo.MasterAdamW(model.parameters(), lr=1e-3)
    stats = grpo.grpo_step(model, opt, batch, 2)
    with torch.no_grad():
        new = grpo.token_logprobs(model, ids, att, cmask)
    seq = ((new - old) * cmask).sum(-1)
    assert seq[0] > 0 and seq[2] > 0 and seq[1] < 0 and seq[3] < 0
    assert stats["grad_norm"] > 0 and stats["ratio_mean"] == pytest.approx(1.0, abs=1e-5)
