"""reward.py: the N-problem prompt, the budget-cut and thinking rules, the scalar reward, the stop rule.
(Answer checking itself, and the N-answer parser's hard cases, are in test_grader.py.)"""
import pytest

import reward as rw
import toy


@pytest.fixture(scope="module")
def tok():
    return toy.make_tokenizer()


def test_prompt_builder_bcr_format(tok):
    ids = rw.build_prompt(tok, ["1+1", "what is 7*6?", "2+2"])
    text = tok.decode(ids)
    assert text.startswith("<|user|>") and text.endswith("<|assistant|>")
    assert "Solve these 3 problems in order" in text and "Answer k: \\boxed{answer}" in text
    i1, i2, i3 = (text.index(f"### Problem {k}\n") for k in (1, 2, 3))
    assert i1 < i2 < i3
    assert text[i2:].startswith("### Problem 2\nwhat is 7*6?")
    # an instruction override for research hacks keeps the problem blocks
    text = tok.decode(rw.build_prompt(tok, ["1+1", "2+2"], instruction="Do these {n}."))
    assert "Do these 2.\n\n### Problem 1\n1+1\n\n### Problem 2\n2+2" in text


def test_prompt_builder_standard_and_errors(tok):
    text = tok.decode(rw.build_prompt(tok, ["1+1"], style="standard"))
    assert "Put the final answer in \\boxed{}.\n\n1+1" in text and "### Problem" not in text
    with pytest.raises(ValueError, match="one problem"):
        rw.build_prompt(tok, ["1", "2"], style="standard")
    with pytest.raises(ValueError, match="unknown prompt style"):
        rw.build_prompt(tok, ["1"], style="chat")
    with pytest.raises(ValueError, match="no questions"):
        rw.build_prompt(tok, [])


def test_prompt_uses_the_real_chat_template_of_a_hub_tokenizer(smollm2):
    _, tok = smollm2
    text = tok.decode(rw.build_prompt(tok, ["1+1", "2+2"]))
    assert "<|im_start|>user" in text and text.rstrip().endswith("<|im_start|>assistant")
    assert "### Problem 2\n2+2" in text
    assert not rw.opens_thinking(tok)


RESP = ("### Problem 1\n1+1=2\nAnswer 1: \\boxed{2}\n### Problem 2\nAnswer 2: \\boxed{5}\n"
        "### Problem 3\n3+3=6\nAnswer 3: \\boxed{6}")


def test_reward_of_n_problem_responses():
    golds = ["2", "4", "6"]
    assert rw.problem_correctness(RESP, golds, finished=True) == [True, False, True]
    # truncated by the budget inside problem 3's answer line: problem 3 scores 0
    cut = RESP[: RESP.rindex("}")]  # "...Answer 3: \boxed{6"
    assert rw.problem_correctness(cut, golds, finished=False) == [True, False, False]
    # cut right after the closing brace: the line is not finished, so still no answer
    assert rw.problem_correctness(RESP, golds, finished=False) == [True, False, False]
    assert rw.problem_correctness(RESP[: RESP.index("### Problem 3")], golds, finished=False) == [True, False, False]
    assert rw.final_answers(RESP, 3, True) == ["2", "5", "6"]


def test_rollout_reward_by_hand():
    assert rw.rollout_reward([True, False, True], 50, 100) == pytest.approx(2 / 3)
    # explicit length penalty r - lambda * len / L_max
    assert rw.rollout_reward([True, False, True], 50, 100, length_penalty=0.5) == pytest.approx(2 / 3 - 0.25)
    # truncation reward 1(correct) * 1(len <= L)
    assert rw.rollout_reward([True], 40, 100, target_len=40) == 1.0
    assert rw.rollout_reward([True], 41, 100, target_len=40) == 0.0
    assert rw.rollout_reward([False], 10, 100, target_len=40) == 0.0
    # format weight: (1 - w) r + w * answered
    assert rw.rollout_reward([True, False], 10, 100, answered=1.0, format_weight=0.2) == pytest.approx(0.6)


THINK_TEMPLATE = toy.CHAT_TEMPLATE.replace("{% if add_generation_prompt %}<|assistant|>{% endif %}",
                                           "{% if add_generation_prompt %}<|assistant|><think>\n{% endif %}")


def test_thinking_is_found_from_the_chat_template(tok):
    assert not rw.opens_thinking(tok)
    t2 = toy.make_tokenizer()
    t2.chat_template = THINK_TEMPLATE
    assert rw.opens_thinking(t2)
    assert tok.decode(rw.build_prompt(t2, ["1+1"])).endswith("<|assistant|><think>\n")


ANSWERS = "Answer 1: \\boxed{2}\nAnswer 2: \\boxed{4}\n"


@pytest.mark.parametrize("finished", [True, False])
def test_answers_inside_a_cut_thinking_block_score_zero(finished):
    # the template opened <think>; the response never closed it: no problem has an answer,
    # whether it hit the budget or stopped by itself
    resp = "Let me think. 1+1=2.\n" + ANSWERS + "Hmm, wait, let me re-check problem 2"
    assert rw.problem_correctness(resp, ["2", "4"], finished, thinking=True) == [False, False]
    assert rw.final_answers(resp, 2, finished, thinking=True) == [None, None]
    # the same text without thinking is an ordinary response and scores
    assert rw.problem_correctness(resp, ["2", "4"], True, thinking=False) == [True, True]


def test_answers_after_the_thinking_count():
    resp = "1+1=2, 2+2=4\n</think>\n" + ANSWERS
    assert rw.problem_correctness(resp, ["2", "4"], True, thinking=True) == [True, True]
    # only after the last </think>; an answer inside the thinking that the final one contradicts loses
    resp = "Answer 1: \\boxed{3}\n</think> wait </think>\nAnswer 1: \\boxed{2}\nAnswer 2: \\boxed{5}\n"
    assert rw.problem_correctness(resp, ["2", "4"], True, thinking=True) == [True, False]
    resp2 = "Answer 1: \\boxed{2}\nAnswer 2: \\boxed{4}\n</think>\nAnswer 1: \\boxed{3}\n"
    assert rw.problem_correctness(resp2, ["2", "4"], True, thinking=True) == [False, False]
    # without a thinking prompt a <think>...</think> block in the response is skipped the same way
    assert rw.problem_correctness(resp2, ["2", "4"], True, thinking=False) == [False, False]
    # the budget cut applies after the thinking too
    assert rw.problem_correctness("x\n</think>\n" + ANSWERS[:-1], ["2", "4"], False, thinking=True) == [True, False]


def test_last_answer_end_waits_for_a_complete_answer():
    assert rw.last_answer_end("Answer 1: \\boxed{7", 1) is None  # the box is still open
    assert rw.last_answer_end("Answer 1: \\boxed{74}", 1) == len("Answer 1: \\boxed{74}")
    assert rw.last_answer_end("Answer 1: \\boxed 5", 1) is None  # "\\boxed 5" may become "\\boxed 52"
    assert rw.last_answer_end("Answer 10: \\boxed{3}", 1) is None  # not problem 1's line
    assert rw.last_answer_end("Answer 2: 42", 2) is None and rw.last_answer_end("Answer 2: 42\nx", 2) == 12
    assert rw.last_answer_end(RESP, 2) == RESP.index("\n### Problem 3") and rw.last_answer_end(RESP, 4) is None


def test_answer_line_ends():
    text = "a\nAnswer 1: \\boxed{1}\nq\nAnswer 2: 2"
    assert rw.answer_line_ends(text, 3) == [text.index("q"), len(text), None]
