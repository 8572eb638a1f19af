"""The toy world: problems, reference solutions, tokenizer and a short warm start."""
import collections
import functools
import importlib.util
import os
import random
import types

import pytest
import torch

import data
import grader
import reward
import toy


def test_needed_lines_hand_computed():
    ask = toy.ASK
    assert toy.needed_lines("47 + 38" + ask) == ["x1 = 47 ", "y1 = 38", "40+30+7+8", "70+15", "85"]
    assert toy.needed_lines("10 + 50" + ask, k=3) == ["x3 = 10 ", "y3 = 50", "10+50+0+0", "60+0", "60"]
    assert toy.needed_lines("59 + 59" + ask, k=2) == ["x2 = 59 ", "y2 = 59", "50+50+9+9", "100+18", "118"]
    assert toy.numbers("27 + 18 > 40?") == (27, 18) and toy.truth(27, 18) == "yes" and toy.truth(22, 18) == "no"
    with pytest.raises(ValueError, match="not a toy question"):
        toy.numbers("27 + 18")


def _effort(lines):
    """exact / estimate / guess, read off a solution's lines."""
    plain = [x for x in lines if not x.startswith(tuple(toy.CHECKS) + ("so the sum is ",))]
    return {0: "guess", 3: "estimate", 5: "exact"}[len(plain)]


def test_every_solution_reaches_the_answer_of_its_level_of_effort():
    # every computed line and re-check sums to a + b, so redundancy never changes an answer; the
    # answer is the truth for an exact solution, the tens alone for an estimate, a coin for a guess
    rng = random.Random(0)
    seen = collections.Counter()
    for p in toy.make_problems(3000, "train", 0):
        a, b = toy.numbers(p["question"])
        lines, answer = toy.solution_steps(p["question"], rng, k=2)
        effort = _effort(lines)
        seen[effort, answer == p["answer"]] += 1
        if effort != "guess":
            assert lines[:2] == [f"x2 = {a} ", f"y2 = {b}"]  # the two numbers, named, never re-checked
        for line in lines[2:]:
            expr = line
            for prefix in toy.CHECKS + ["so the sum is "]:
                expr = expr.removeprefix(prefix)
            assert sum(int(x) for x in expr.split("+")) == a + b, (p, line)
        want = {"exact": toy.truth(a, b), "estimate": "yes" if (a // 10 + b // 10) * 10 > 30 else "no"}
        assert effort == "guess" or answer == want[effort], (p, lines, answer)
    n = {e: seen[e, True] + seen[e, False] for e in toy.EFFORT}
    for e, w in toy.EFFORT.items():  # the levels come as often as EFFORT says
        assert abs(n[e] / 3000 - w) < 0.02, (e, n)
    assert seen["exact", False] == 0
    assert 0.78 < seen["estimate", True] / n["estimate"] < 0.88  # by hand: 83% over all pairs
    assert 0.35 < seen["guess", True] / n["guess"] < 0.65
    # problem 1 is never guessed: it is the whole prompt at N=1
    assert all(_effort(toy.solution_steps(p["question"], rng, k=1)[0]) != "guess"
               for p in toy.make_problems(1000, "train", 1))


def test_redundancy_is_random_and_bounded():
    rng = random.Random(1)
    q = "47 + 38" + toy.ASK
    sols = [lines for lines, _ in (toy.solution_steps(q, rng) for _ in range(3000)) if _effort(lines) == "exact"]
    counts = [sum(line.startswith(tuple(toy.CHECKS)) for line in sol) for sol in sols]
    # one level of care c = 0..MAX_CHECKS per problem, uniformly: each of the three computed lines
    # is re-checked c times, so a solution holds 0, 3, .., 3 * MAX_CHECKS re-checks, equally often
    assert sorted(set(counts)) == [3 * c for c in range(toy.MAX_CHECKS + 1)]
    for c in range(toy.MAX_CHECKS + 1):
        assert abs(counts.count(3 * c) / len(counts) - 1 / (toy.MAX_CHECKS + 1)) < 0.04
    # the k-th re-check of a line opens with CHECKS[k-1]: what comes next never depends on counting
    for sol in sols[:200]:
        for prev, line in zip(sol, sol[1:]):
            for k, c in enumerate(toy.CHECKS[1:], 1):
                if line.startswith(c):
                    assert prev == toy.CHECKS[k - 1] + line[len(c):], sol
    assert toy.solution_steps(q, rng, redundant=False) == (toy.needed_lines(q), "yes")


def test_splits_are_disjoint_and_the_test_split_cycles_through_its_problems():
    span = range(toy.LO, toy.HI + 1)
    pool = {q for q in (f"{a} + {b}{toy.ASK}" for a in span for b in span) if toy.is_heldout(q)}
    assert len(pool) == 102
    test = toy.make_problems(600, "test", 0)
    train = toy.make_problems(5000, "train", 0)
    assert not {p["question"] for p in test} & {p["question"] for p in train}
    for p in test[:50]:
        a, b = map(int, p["question"].removesuffix(" > 40?").split(" + "))
        assert p["answer"] == ("yes" if a + b > 40 else "no")
    assert 0.3 < sum(p["answer"] == "yes" for p in train) / len(train) < 0.55
    # each block of 102 is every test problem once, in its own order; the tail is the start of another
    blocks = [[p["question"] for p in test[i:i + 102]] for i in range(0, 600, 102)]
    assert all(set(b) == pool for b in blocks[:5]) and len(set(blocks[5])) == len(blocks[5]) == 600 - 5 * 102
    assert blocks[0] != blocks[1]
    assert len({p["id"] for p in test}) == 600


def test_a_prompt_holds_one_token_per_problem_block_tied_to_its_parts():
    tok = toy.make_tokenizer()
    qs = [q + toy.ASK for q in ["27 + 18", "12 + 19", "10 + 29", "29 + 10"]]
    prompt = tok.convert_ids_to_tokens(reward.build_prompt(tok, qs))
    i = prompt.index("### Problem 1\n27 + 18")
    blocks = [[f"### Problem {k}\n{q.removesuffix(toy.ASK)}", " > 40?", "\n", "\n"] for k, q in enumerate(qs, 1)]
    assert prompt[i - 2:] == ["\n", "\n"] + sum(blocks, [])[:-2] + ["<|assistant|>"]
    (fused, parts), (names, name_parts) = toy.tied_parts(tok)
    assert len(fused) == toy.MAX_N * (toy.HI - toy.LO + 1) ** 2 == len(set(fused.tolist()))
    j = fused.tolist().index(tok.convert_tokens_to_ids("### Problem 3\n10 + 29"))
    assert tok.convert_ids_to_tokens([p[j].item() for p in parts]) == ["### Problem 3\n", "10 ", " 29"]
    j = names.tolist().index(tok.convert_tokens_to_ids("y3 ="))
    assert tok.convert_ids_to_tokens([p[j].item() for p in name_parts]) == ["### Problem 3\n", "y"]
    model = toy.make_model(tok)
    toy.tie_embeddings(model, toy.tied_parts(tok))
    emb = model.get_input_embeddings().weight
    e = {t: emb[tok.convert_tokens_to_ids(t)] for t in ["### Problem 3\n10 + 29", "### Problem 3\n", "10 ", " 29",
                                                          "y3 =", "y"]}
    torch.testing.assert_close(e["### Problem 3\n10 + 29"], e["### Problem 3\n"] + e["10 "] + e[" 29"])
    torch.testing.assert_close(e["y3 ="], e["### Problem 3\n"] + e["y"])
    assert model.get_output_embeddings().weight.data_ptr() == emb.data_ptr()  # tied: the same rows give logits


def test_folded_gradients_are_the_chain_rule_of_the_tie():
    # reference: autograd through W = E with every tied row replaced by the sum of its parts, used
    # as the input embedding and the (tied) output layer; toy.fold_tied_grads on the plain model
    # must give the same gradient on every row (zero on the tied rows, which W does not read)
    tok = toy.make_tokenizer()
    model = toy.make_model(tok, seed=1)
    groups = toy.tied_parts(tok)
    toy.tie_embeddings(model, groups)
    ids, labels, mask = toy._collate([toy.sft_example(tok, toy.make_problems(3, "train", s), random.Random(s), "bcr")
                                      for s in range(2)], tok.pad_token_id)
    model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
    toy.fold_tied_grads(model, groups)
    got = model.get_input_embeddings().weight.grad.clone()

    leaf = model.get_input_embeddings().weight.detach().clone().requires_grad_(True)
    w = leaf
    for tied, parts in groups:
        w = w.index_put((tied,), sum(leaf[p] for p in parts))
    params = {"model.embed_tokens.weight": w, "lm_head.weight": w}
    torch.func.functional_call(model, params, kwargs=dict(input_ids=ids, attention_mask=mask, labels=labels),
                               tie_weights=False).loss.backward()
    assert all(got[tied].abs().max() == 0 for tied, _ in groups)
    assert got.abs().sum() > 0
    torch.testing.assert_close(got, leaf.grad, atol=1e-6, rtol=1e-4)


def test_reference_solution_scores_one_and_tokenizes_round_trip():
    tok = toy.make_tokenizer()
    probs = toy.make_problems(3, "test", 0)
    qs, golds = [p["question"] for p in probs], [p["answer"] for p in probs]
    text = toy.solution_text(qs, random.Random(0), redundant=False)
    assert reward.problem_correctness(text, golds, True) == [True, True, True]
    assert text.endswith(f"Answer 3: \\boxed{{{golds[2]}}}") and golds[2] in ("yes", "no")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    # headers, operand names, re-check openings and the numbers of a question are single tokens;
    # the numbers of the computed lines are written digit by digit
    # (a response's header is not fused with what follows it: that is a name, not a question)
    text2 = "### Problem 2\nx2 = 27 \ny2 = 18\n20+10+7+8\ncheck again: 30+15"
    assert tok(text2, add_special_tokens=False)["input_ids"] == tok.convert_tokens_to_ids(
        ["### Problem 2\n", "x2 = ", "27 ", "\n", "y2 =", " 18", "\n", "2", "0", "+", "1", "0", "+", "7", "+", "8",
         "\n", "check again: ", "3", "0", "+", "1", "5"])
    boxed = tok("\\boxed{yes}", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(boxed) == ["\\boxed{", "yes", "}"]
    std = toy.solution_text(qs[:1], random.Random(0), style="standard", redundant=False)
    assert grader.grade(std, golds[0])


def test_warm_start_learns_and_its_cache_reloads(tmp_path, monkeypatch):
    # a few steps: the loss falls; data.load_model caches the base and reads the same model back
    logs = []
    monkeypatch.chdir(tmp_path)  # the cache lives in out/ of the working directory
    monkeypatch.setattr(toy, "warm_start", functools.partial(toy.warm_start, steps=24, problems_per_step=4))
    model, tok = data.load_model("toy", base_seed=5, log=logs.append)
    assert any("warm-starting from scratch (seed 5)" in m for m in logs)
    losses = [float(m.split()[4]) for m in logs if m.startswith("  step")]  # "  step 0  N=1  loss X  0s"
    assert losses[-1] < losses[0] - 1.0, logs
    assert os.path.exists(os.path.join(data.toy_base_dir(5), "config.json"))
    logs.clear()
    again, _ = data.load_model("toy", base_seed=5, log=logs.append)
    assert logs == [f"base model: cached at {data.toy_base_dir(5)}"]
    x = torch.tensor([reward.build_prompt(tok, ["12 + 34"])])
    torch.testing.assert_close(again(x).logits, model(x).logits)


def test_save_atomic_never_leaves_no_directory(tmp_path, monkeypatch):
    path = str(tmp_path / "d")
    data.save_atomic(path, lambda d: (os.makedirs(d), open(os.path.join(d, "f"), "w").write("1")))

    def crash(d):
        os.makedirs(d)
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        data.save_atomic(path, crash)
    assert open(os.path.join(path, "f")).read() == "1"  # the old one is intact
    # killed between moving the old one aside and moving the new one in: the old one is at path.old
    real_replace = os.replace

    def killed(src, dst):
        if src.endswith(".tmp"):
            raise OSError("killed")
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(OSError, match="killed"):
        data.save_atomic(path, lambda d: (os.makedirs(d), open(os.path.join(d, "f"), "w").write("2")))
    assert open(os.path.join(path + ".old", "f")).read() == "1"


def test_reading_drill_names_each_problems_numbers_in_a_random_order():
    tok = toy.make_tokenizer()
    probs = toy.make_problems(4, "train", 3)
    orders = set()
    for seed in range(20):
        ids, labels = toy.naming_example(tok, probs, random.Random(seed))
        toks = tok.convert_ids_to_tokens(ids)
        start = toks.index("<|assistant|>") + 1
        assert all(y == -100 for y in labels[:start]) and labels[start:] == ids[start:]
        assert toks[-1] == "<|end|>"
        # the prompt holds the same blocks as a BCR prompt; every named number is the one there
        prompt, resp = toks[:start], tok.decode(ids[start:-1])
        order = []
        for part in resp.split("### Problem ")[1:]:
            k = int(part[0])
            a, b = toy.numbers(probs[k - 1]["question"])
            assert part == f"{k}\nx{k} = {a} \ny{k} = {b}" + ("\n" if len(order) < 3 else ""), part
            assert toy.fused_text(k, a, b) in prompt  # problem k's block, one token
            order.append(k)
        assert sorted(order) == [1, 2, 3, 4]
        orders.add(tuple(order))
    assert len(orders) > 5


def test_reads_all_scores_a_drill_answer_by_hand():
    qs = [q + toy.ASK for q in ["47 + 38", "12 + 59", "30 + 30"]]
    right = "### Problem 2\nx2 = 12 \ny2 = 59\n### Problem 1\nx1 = 47 \ny1 = 38\n### Problem 3\nx3 = 30 \ny3 = 30"
    assert toy.reads_all(qs, right)  # any order
    assert not toy.reads_all(qs, right.replace("y2 = 59", "y2 = 38"))  # problem 1's number for problem 2
    assert not toy.reads_all(qs, right[: right.index("\n### Problem 3")])  # one problem not named
    # the reference drill answer is what reads_all accepts, in every order
    for order in ([1, 2, 3], [3, 1, 2]):
        assert toy.reads_all(qs, toy.reading_answer(qs, order))


def test_reading_check_is_greedy_over_held_out_prompts_and_printed_by_the_warm_start():
    tok = toy.make_tokenizer()
    model = toy.make_model(tok).eval()
    held = toy.make_problems(40, "test", 0)
    r = toy.reading_check(model, tok, held, 4)
    assert r == 0.0 and toy.reading_check(model, tok, held, 4) == r  # a random model reads nothing; greedy
    logs = []
    toy.warm_start(seed=3, steps=2, problems_per_step=4, drills_per_step=2, log=logs.append,
                   probe=lambda model, tok: "probed")  # a probe's report ends every step line
    assert logs[-1].startswith("reading check: the base names every number of an N=4 prompt right in ")
    steps = [m for m in logs if m.startswith("  step")]
    assert len(steps) == 2 and all(m.endswith("s  probed") for m in steps), logs


@pytest.mark.skipif(not os.path.exists(os.path.join(data.toy_base_dir(0), "config.json")),
                    reason="no cached toy base (python bcr.py makes one)")
def test_reading_check_of_a_trained_base_equals_hf_greedy_generate():
    # the sampler's greedy solutions against transformers' own generate, prompt by prompt
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(data.toy_base_dir(0)).eval()
    tok = AutoTokenizer.from_pretrained(data.toy_base_dir(0))
    held = toy.make_problems(18, "test", 0)  # 6 prompts of N=3: HF generate is slow on a CPU
    right = []
    for i in range(0, 18, 3):
        qs = [p["question"] for p in held[i:i + 3]]
        ids = torch.tensor([reward.build_prompt(tok, qs, "bcr")])
        out = model.generate(ids, max_new_tokens=toy.READ_BUDGET * 3, do_sample=False, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)
        right.append(toy.reads_all(qs, tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)))
    assert sum(right) > 0  # a base that reads: the comparison is not 0 == 0
    assert toy.reading_check(model, tok, held, 3) == sum(right) / len(right)


def _load_probe_script():
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "scripts", "toy_reading_probe.py")
    spec = importlib.util.spec_from_file_location("toy_reading_probe", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Reader(torch.nn.Module):
    """A stand-in model that reads the prompt by hand: after "x<j> = " its greedy token is the first
    number of problem j's block in the prompt ("### Problem j\\n27 + 18", one token), after "y<j> ="
    the second (right=True); or problem 1's (right=False)."""

    def __init__(self, tok, right):
        super().__init__()
        self.tok, self.right = tok, right

    def forward(self, ids):
        ids = ids[0].tolist()
        name = self.tok.convert_ids_to_tokens(ids[-1])  # "x3 = " or "y3 ="
        k = name[1] if self.right else "1"
        block = next(t for t in self.tok.convert_ids_to_tokens(ids) if t.startswith(f"### Problem {k}\n") and "+" in t)
        a, b = block.split("\n")[1].split(" + ")
        logits = torch.zeros(1, len(ids), len(self.tok))
        logits[0, -1, self.tok.convert_tokens_to_ids(f"{a} " if name[0] == "x" else f" {b}")] = 1.0
        return types.SimpleNamespace(logits=logits)


def test_reading_probe_counts_the_lookup_of_problem_j():
    mod = _load_probe_script()
    tok = toy.make_tokenizer()
    held = toy.make_problems(80, "test", 0)
    groups = [[p["question"] for p in held[i:i + 4]] for i in range(0, 80, 4)]
    for i, which in enumerate("xy"):
        assert mod.probe(_Reader(tok, True), tok, groups, which) == [1.0, 1.0, 1.0]
        # reading problem 1 for every j is right only where problem j's number equals problem 1's
        same = [sum(toy.numbers(g[j])[i] == toy.numbers(g[0])[i] for g in groups) / len(groups) for j in (1, 2, 3)]
        assert mod.probe(_Reader(tok, False), tok, groups, which) == same and max(same) < 0.5


def test_context_probe_sorts_the_lookup_by_context_and_by_where_it_went():
    mod = _load_probe_script()
    tok = toy.make_tokenizer()
    held = toy.make_problems(80, "test", 0)
    groups = [[p["question"] for p in held[i:i + 4]] for i in range(0, 80, 4)]
    used = [g for g in groups if not {q.split(" + ")[0] for q in g} & set(mod.OTHER)]
    assert 0 < len(used) < len(groups)  # the made-up names are numbers of no problem probed
    right = mod.context_probe(_Reader(tok, True), tok, groups)
    assert list(right) == mod.CONTEXTS
    assert all(cnt == {"right": len(used)} for by_j in right.values() for cnt in by_j.values())
    # a reader of problem 1 is right only where problem j's first number is problem 1's
    wrong = mod.context_probe(_Reader(tok, False), tok, groups)
    for by_j in wrong.values():
        for j, cnt in by_j.items():
            same = sum(g[j - 1].split(" + ")[0] == g[0].split(" + ")[0] for g in used)
            assert cnt == collections.Counter({"right": same, "problem 1": len(used) - same})  # 0 == missing
    # a stand-in that copies the number named last in the response ("x2 = 13 " -> "13 "): after
    # problems 1..j-1 that is problem j-1's, or its made-up name in the last context
    last = mod.context_probe(_LastNamed(tok), tok, groups)
    for c, by_j in last.items():
        for j, cnt in by_j.items():
            if "other" in c:
                assert cnt == {"a made-up name": len(used)}, (c, j, cnt)
                continue
            # problem j-1's number, filed under the first problem that has it (or "right")
            want = collections.Counter()
            for g in used:
                firsts = [q.split(" + ")[0] for q in g]
                i = firsts.index(firsts[j - 2]) + 1
                want["right" if firsts[j - 1] == firsts[j - 2] else f"problem {i}"] += 1
            assert cnt == want and want[f"problem {j - 1}"] > len(used) / 2, (c, j, cnt)


class _LastNamed(torch.nn.Module):
    """A stand-in model whose greedy token is the one after the last name "x<i> = " before the final
    one (the number the response named last)."""

    def __init__(self, tok):
        super().__init__()
        self.tok = tok

    def forward(self, ids):
        ids = ids[0].tolist()
        names = {self.tok.convert_tokens_to_ids(f"x{k} = ") for k in range(1, 10)}
        at = max(i for i, t in enumerate(ids[:-1]) if t in names)
        logits = torch.zeros(1, len(ids), len(self.tok))
        logits[0, -1, ids[at + 1]] = 1.0
        return types.SimpleNamespace(logits=logits)
