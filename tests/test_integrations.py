"""integrations/: each engine's reward function, called with the arguments that engine passes, scores
recorded N-problem responses exactly as bcr.py's training reward does; the data writers' rows."""
import importlib.util
import json
import os

import pytest

import reward as rw
import toy
from integrations import common, trl_bcr
from integrations import openrlhf_bcr as orl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (response, golds, finished, thinking): clean, one wrong, cut by the budget, thinking cut and closed
RECORDED = [
    ("### Problem 1\n6+7=13\nAnswer 1: \\boxed{13}\n### Problem 2\nAnswer 2: \\boxed{5}", ["13", "4"], True, False),
    ("Answer 1: \\boxed{13}\nAnswer 2: \\boxed{4}\n", ["13", "4"], True, False),
    ("Answer 1: \\boxed{13}\nAnswer 2: \\boxed{4", ["13", "4"], False, False),
    ("Answer 1: \\boxed{13}\nAnswer 2: \\boxed{4}\nwait, let me", ["13", "4"], False, False),
    ("Answer 1: 13\nAnswer 2: 4", ["13", "4"], False, False),  # "4" may have been "41": the cut line is no answer
    ("Answer 1: 13\nAnswer 2: 4", ["13", "4"], True, False),
    ("1+1... Answer 1: \\boxed{2}\nAnswer 2: \\boxed{3}\nhmm", ["2", "3"], False, True),  # never closed thinking
    ("ok\n</think>\nAnswer 1: \\boxed{2}\nAnswer 2: \\boxed{4}", ["2", "3"], True, True),
    ("<think>Answer 1: \\boxed{9}</think>\nAnswer 1: \\boxed{2}\nAnswer 2: \\boxed{3}", ["2", "3"], True, False),
]


def _ours(response, golds, finished, thinking):
    c = rw.problem_correctness(response, golds, finished, thinking)
    return sum(c) / len(c)


def _load_by_path(name):
    """As verl does: reward.custom_reward_function.path is a file, loaded by path."""
    spec = importlib.util.spec_from_file_location(f"custom_{name}", os.path.join(ROOT, "integrations", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_verl_compute_score_is_our_reward():
    verl = _load_by_path("verl_bcr")
    assert verl.compute_score("bcr", RECORDED[0][0], '["13", "4"]', {})["score"] == 0.5  # the example
    for response, golds, finished, thinking in RECORDED:
        got = verl.compute_score(data_source="bcr", solution_str=response, ground_truth=json.dumps(golds),
                                 extra_info={"finished": finished, "thinking": thinking})
        assert got["score"] == _ours(response, golds, finished, thinking)
        assert set(got) >= {"score", "accuracy", "answered", "correct_1", "correct_2"}


def test_trl_reward_func_is_our_reward():
    tok = toy.make_tokenizer()
    budget = 40
    for thinking in (False, True):
        cases = [c for c in RECORDED if c[3] == thinking]
        ids = [tok(c[0], add_special_tokens=False)["input_ids"] for c in cases]
        # a response cut by the budget has exactly `budget` ids, one that stopped fewer
        ids = [x[:budget] + [0] * (budget - len(x)) if not c[2] else x[:budget - 1] for x, c in zip(ids, cases)]
        f = trl_bcr.make_reward_func(budget, thinking=thinking)
        got = f(prompts=["p"] * len(cases), completions=[c[0] for c in cases], completion_ids=ids,
                answers=[json.dumps(c[1]) for c in cases], trainer_state=None)
        assert got == [_ours(*c) for c in cases]
    # conversational completions: a list of messages
    closed = next(c for c in RECORDED if c[0].startswith("ok\n</think>"))
    assert f(prompts=["p"], completions=[[{"role": "assistant", "content": closed[0]}]],
             completion_ids=[[1, 2]], answers=['["2", "3"]']) == [0.5]


def test_openrlhf_reward_func_is_our_reward(monkeypatch):
    for thinking in (False, True):
        monkeypatch.setattr(orl, "THINKING", thinking)
        cases = [c for c in RECORDED if c[3] == thinking and c[2]]  # OpenRLHF responses end with EOS
        prompts = ["<|user|>Solve these 2 problems...<|assistant|>"] * len(cases)
        out = orl.reward_func(queries=[p + c[0] for p, c in zip(prompts, cases)], prompts=prompts,
                              labels=[json.dumps(c[1]) for c in cases])
        assert out["rewards"].tolist() == [_ours(*c) for c in cases] == out["scores"].tolist()
        assert set(out["extra_logs"]) == {"answered"}


def test_the_data_writers_rows_hold_bcr_prompts_and_their_golds():
    problems = toy.make_problems(50, "train", 0)
    rows = common.make_rows(problems, 3, 4, seed=1)
    assert rows == common.make_rows(problems, 3, 4, seed=1) and len(rows) == 4
    by_q = {p["question"]: p["answer"] for p in problems}
    for r in rows:
        assert r["content"].startswith("Solve these 3 problems in order.")
        qs = [b.split("\n", 1)[1] for b in r["content"].split("\n\n### Problem ")[1:]]
        assert json.loads(r["answers"]) == [by_q[q] for q in qs]
    verl_rows = _load_by_path("verl_bcr").make_verl_rows(problems, 3, 2)
    assert verl_rows[0]["reward_model"]["ground_truth"] == common.make_rows(problems, 3, 2)[0]["answers"]
    assert verl_rows[0]["prompt"][0]["role"] == "user" and verl_rows[0]["data_source"] == "bcr"
    assert trl_bcr.bcr_rows(problems, 3, 2)[1]["prompt"][0]["content"] == common.make_rows(problems, 3, 2)[1]["content"]


@pytest.mark.parametrize("name", ["verl_bcr", "trl_bcr", "openrlhf_bcr"])
def test_no_engine_is_needed_to_import_the_adapters(name):
    _load_by_path(name)  # verl, trl, pandas, datasets are imported only where an engine runs
