"""
reward.py: the BCR format and its reward, as pure functions of explicit arguments.

The prompt holds N problems in one user turn, under one instruction:

    Solve these N problems in order. End problem k with the line: Answer k: \\boxed{answer}

    ### Problem 1
    <question 1>
    ...
    ### Problem N
    <question N>

The response answers them in order; problem k's answer is the last explicit answer written for it
(an "Answer k:" line, a summary block or table at the end), failing that the last box or answer
marker inside its own "### Problem k" section (split_answers says every rule).

The reward of one rollout o with golds a_1..a_N, generated under a budget of B new tokens:

    r(o) = (1/N) * sum_k 1[ answer k of o is complete within the budget and equals a_k ]

No length term: tokens cost something only when they crowd another answer out of the budget.
Two rules decide which text of a response may hold an answer (final_answers):
  - the budget cut: a response that hit the budget counts only up to its last full line (an
    answer cut mid-line is no answer); one that stopped by itself counts whole;
  - thinking: when the prompt opened a thinking block (R1-style and Qwen3-Thinking templates end
    the generation prompt with "<think>"), answers count only after the last "</think>"; with no
    "</think>" the response has no answer at all. Otherwise a "<think>...</think>" block in the
    response is skipped. This stops a model from being paid for answers it wrote while thinking.

Baselines (rollout_reward): the explicit length penalty r - lambda * len / B, and the truncation
reward 1(correct) * 1(len <= L) of "The Art of Efficient Reasoning".

Answer checking (is this answer equal to the gold one?) lives in grader.py.
"""
import re

import grader

BCR_INSTRUCTION = "Solve these {n} problems in order. End problem k with the line: Answer k: \\boxed{{answer}}"
STANDARD_INSTRUCTION = "Solve the problem. Put the final answer in \\boxed{{}}."
HEADER = "### Problem {k}"

# "Answer 3:", "Answer 3::", "**Answer 3:**", "**Answer 3**:"; \b stops "Answer 1" matching "Answer 10"
ANSWER_LINE_RE = re.compile(r"(?:\*\*)?\s*Answer\s+(\d+)\b\s*(?:\*\*)?\s*:+\s*(?:\*\*)?", re.IGNORECASE)
# a section header: "### Problem 3", "**Problem 3**", "Problem 3:", "Question 3", "Q3", "## Solution to Problem 3"
HEADER_RE = re.compile(r"^[ \t]*(?:#+[ \t]*|\*\*|__)?[ \t]*(?:(?:solution|answer)s?[ \t]+(?:to|for)[ \t]+)?"
                       r"(?:Problem|Question|Q)[ \t]*(\d+)\b", re.IGNORECASE | re.MULTILINE)

# ---------------------------------------------------------------------------------------------
# the prompt


def build_prompt(tokenizer, questions, style="bcr", system=None, instruction=None):
    """Token ids of the prompt for one or more problems, through the tokenizer's chat template.

    style "bcr": N problems as "### Problem k" blocks under BCR_INSTRUCTION (also for N=1), or
    under `instruction` (a format string with {n}) for research hacks. style "standard": the
    usual single-problem prompt, "put the final answer in \\boxed{}".
    """
    n = len(questions)
    if n == 0:
        raise ValueError("build_prompt: no questions")
    if style == "standard":
        if n != 1:
            raise ValueError(f"the standard prompt holds one problem, got {n}")
        content = STANDARD_INSTRUCTION.format() + "\n\n" + questions[0]
    elif style == "bcr":
        content = (instruction or BCR_INSTRUCTION).format(n=n) + problem_blocks(questions)
    else:
        raise ValueError(f"unknown prompt style {style!r} (use 'bcr' or 'standard')")
    return chat_prompt_ids(tokenizer, content, system)


def problem_blocks(questions):
    """The N problems of a BCR prompt: "\n\n### Problem k\n{question}" for k = 1..N."""
    return "".join(f"\n\n{HEADER.format(k=k)}\n{q}" for k, q in enumerate(questions, 1))


def chat_prompt_ids(tokenizer, content, system=None):
    """Token ids of one user turn (after an optional system turn), ready for the assistant's reply."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if not isinstance(ids, list):  # some versions return a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def opens_thinking(tokenizer):
    """Does the chat template's generation prompt open a thinking block ("...<think>\\n")?"""
    text = tokenizer.apply_chat_template([{"role": "user", "content": "1+1"}], add_generation_prompt=True,
                                         tokenize=False)
    return text.rfind("<think>") > text.rfind("</think>")


# ---------------------------------------------------------------------------------------------
# reading the N answers of a response

# a final summary: "Answers:", "**Final Answers:**", "Summary of answers:", "In summary:" on its own line,
# or followed on the same line by its first item ("Final answers: 1. 5 2. 9")
_SUMMARY_RE = re.compile(
    r"^[ \t>#*_]*(?:final[ \t]+answers?|answers|summary(?:[ \t]+of[ \t]+(?:the[ \t]+)?(?:final[ \t]+)?answers?)?"
    r"|in[ \t]+summary|results)[ \t*_]*[:：]?[ \t*_]*"
    r"(?=\n|$|(?:\*\*)?(?:problem[ \t]*|question[ \t]*|q)?\d+[ \t]*[.):])",
    re.IGNORECASE | re.MULTILINE)
# one item of a summary: "1. 5", "- Problem 2: 7", "**Q3)** 9"; the number must be followed by . ) or :
# and a space, so that "3.5" is no item
_ITEM_RE = re.compile(r"[ \t>*_-]*(?:\*\*)?(?:(?:problem|question|q)[ \t]*)?(\d+)[ \t]*(?:\*\*)?[ \t]*[.):](?=\s|$)"
                      r"[ \t]*(?:\*\*)?[ \t]*", re.IGNORECASE)
_TABLE_KEY_RE = re.compile(r"(?:problem|question|q|#)?\s*(\d+)", re.IGNORECASE)
# any sign that the response labels its answers; without one, exactly N boxes are read in order
_ANY_LABEL_RE = re.compile(r"\b(?:answer|problem|question)s?[ \t]*#?\d|^[ \t#*]*Q[ \t]*\d",
                           re.IGNORECASE | re.MULTILINE)


def _segment_answer(seg):
    """The answer written in one labelled segment: its box, or its bare text. Several different
    boxes are a hedge (no answer); a box cut off mid-answer is no answer."""
    boxes = {b[2] for b in grader.find_boxes(seg)}
    if len(boxes) == 1:
        return boxes.pop()
    if len(boxes) > 1 or "\\boxed" in seg or "\\fbox" in seg:
        return None
    return grader.clean_inline(seg)


def _answer_lines(text, n):
    """[(start, end, k, answer)] for every "Answer k:" segment (to the end of its line, or to the
    next marker on the same line)."""
    marks = list(ANSWER_LINE_RE.finditer(text))
    out = []
    for i, m in enumerate(marks):
        end = text.find("\n", m.end())
        end = len(text) if end == -1 else end
        if i + 1 < len(marks) and marks[i + 1].start() < end:
            end = marks[i + 1].start()
        out.append((m.start(), end, int(m.group(1)), _segment_answer(text[m.end() : end])))
    return out


def _summary_items(text):
    """[(start, end, k, answer)] for the items of every summary block ("Answers:\n1. 5\n2. 9")."""
    out = []
    for h in _SUMMARY_RE.finditer(text):
        line_end = text.find("\n", h.end())
        line_end = len(text) if line_end == -1 else line_end
        if text[h.end() : line_end].strip():  # items on the heading's line: "Final answers: 1. 5 2. 9"
            out += _inline_items(text, h.end(), line_end)
            continue
        last = 0
        pos = line_end + 1
        while pos < len(text):
            e = text.find("\n", pos)
            e = len(text) if e == -1 else e
            line = text[pos:e]
            m = _ITEM_RE.match(line)
            if m and int(m.group(1)) > last:
                last = int(m.group(1))
                seg = line[m.end() :]
                if grader.find_boxes(seg) or len(seg.strip()) <= 60:  # a long line is a step, not an answer
                    out.append((pos, e, last, _item_answer(seg)))
            elif line.strip() and last:
                break  # the block ends at its first line that is no item
            pos = e + 1
    return out


def _inline_items(text, start, end):
    """Items written one after another on one line; each number must be the previous one plus 1."""
    out, want = [], 1
    marks = []
    for m in re.finditer(r"(?:^|(?<=\s))" + _ITEM_RE.pattern, text[start:end], re.IGNORECASE):
        if int(m.group(1)) == want:
            marks.append(m)
            want += 1
    for i, m in enumerate(marks):
        seg_end = marks[i + 1].start() if i + 1 < len(marks) else end - start
        seg = text[start + m.end() : start + seg_end]
        out.append((start + m.start(), start + seg_end, int(m.group(1)), _item_answer(seg)))
    return out


def _item_answer(seg):
    """A summary item's answer: as a segment, but prose ("the sum is 5") is read like a response."""
    if grader.find_boxes(seg) or "\\boxed" in seg:
        return _segment_answer(seg)
    return grader.extract_answer(seg)


def _table_rows(text):
    """[(start, end, k, answer)] for the rows of a markdown table whose header has an "Answer" column."""
    out, col, pos = [], None, 0
    for line in text.split("\n"):
        start, pos = pos, pos + len(line) + 1
        s = line.strip()
        if not (s.startswith("|") and s.endswith("|") and len(s) > 1):
            col = None
            continue
        cells = [c.strip().strip("*").strip() for c in s[1:-1].split("|")]
        if col is None:
            hits = [i for i, c in enumerate(cells) if "answer" in c.lower()]
            col = hits[-1] if hits and hits[-1] > 0 else None
            continue
        if re.fullmatch(r"[\s:|-]*", s) or col >= len(cells):
            continue  # the |---|---| separator
        m = _TABLE_KEY_RE.fullmatch(cells[0].strip("$ "))
        if m:
            out.append((start, start + len(line), int(m.group(1)), _segment_answer(cells[col])))
    return out


def _header_boxes(text, heads):
    """[(start, end, k, answer)] for header lines that carry their box ("Problem 2: \\boxed{7}", a summary)."""
    out = []
    for h in heads:
        e = text.find("\n", h.end())
        e = len(text) if e == -1 else e
        if grader.find_boxes(text[h.end() : e]):
            out.append((h.start(), e, int(h.group(1)), _segment_answer(text[h.end() : e])))
    return out


def split_answers(text, n):
    """Answers of an N-problem response, one per problem, None where a problem has no answer.

    Explicit answers come first, and of those the last one written wins (self-corrections, a final
    summary block overrides the sections): `Answer k:` lines (their box, or the bare text up to the
    end of the line or the next marker); items of a final summary ("Answers:\n1. 5\n2. 9",
    "Final answers: 1. 5 2. 9", "- Problem 2: 7"); rows of a markdown table with an Answer column;
    a header line with its box ("Problem k: \\boxed{X}", "Q2: \\boxed{X}"). One segment with several
    different boxes is a hedge and counts as no answer.
    Failing those, problem k's section (from a "Problem k", "Question k" or "Qk" header to the next
    header) gives its last box, else its own "Answer: X", "The answer is X" or "#### X".
    A response with no labels at all and exactly N boxes gives them in order.
    Only text after </think> (and before a chat-turn marker) counts. An answer written for problem j
    is never credited to problem k.
    """
    text = grader.after_think(text or "")
    answers = [None] * n
    heads = list(HEADER_RE.finditer(text))
    explicit = _answer_lines(text, n) + _summary_items(text) + _table_rows(text) + _header_boxes(text, heads)
    found = [False] * n
    for _, _, k, ans in sorted(explicit, key=lambda x: x[0]):
        if 1 <= k <= n:
            answers[k - 1] = ans  # the last one written wins
            found[k - 1] = True
    # sections, with every explicit segment blanked out so that no section reads another's answer
    masked = list(text)
    for a, b, _, _ in explicit:
        masked[a:b] = " " * (b - a)
    masked = "".join(masked)
    for i, h in enumerate(heads):
        k = int(h.group(1))
        if not 1 <= k <= n or found[k - 1]:
            continue
        end = heads[i + 1].start() if i + 1 < len(heads) else len(masked)
        section = masked[h.end() : end]
        boxes = grader.find_boxes(section)
        ans = boxes[-1][2] if boxes else grader.marker_answer(section)
        if ans:
            answers[k - 1] = ans
    if not explicit and not heads and not _ANY_LABEL_RE.search(text):
        boxes = grader.find_boxes(text)
        if len(boxes) == n:  # no labels at all: exactly N boxes are the N answers in order
            answers = [b[2] for b in boxes]
    return answers


# ---------------------------------------------------------------------------------------------
# verdicts and the reward


def complete_part(text, finished):
    """The part of a response whose answers count: all of it if the model stopped by itself,
    else everything up to its last full line (an answer cut by the budget is no answer)."""
    if finished:
        return text
    cut = text.rfind("\n")
    return text[:cut] if cut != -1 else ""


def final_answers(response, n, finished, thinking=False, style="bcr"):
    """The answers that count, one per problem (None: no answer), under the budget-cut and the
    thinking rules of the module docstring. style "standard": [the single answer] (n = 1)."""
    text = complete_part(response, finished)
    if thinking:
        end = text.rfind("</think>")
        if end == -1:  # the thinking never closed: whatever it holds is not an answer
            return [None] * n
        text = text[end + len("</think>") :]
    if style == "standard":
        return [grader.extract_answer(text)]
    return split_answers(text, n)


def judge(answers, golds):
    """Per-problem correctness [bool] * N of final_answers' answers."""
    return [grader.is_equiv(a, g) for a, g in zip(answers, golds)]


def problem_correctness(response, golds, finished, thinking=False, style="bcr"):
    """Per-problem correctness [bool] * N of one response: the one verdict that training, the
    evaluation tables, the budget curve and the standard-prompt grader all use."""
    return judge(final_answers(response, len(golds), finished, thinking, style), golds)


def rollout_reward(correct, length, budget, length_penalty=0.0, target_len=0, answered=None, format_weight=0.0):
    """The scalar reward of one rollout with per-problem verdicts `correct` and `length` tokens.

    BCR                       r = mean_k correct_k
    --length-penalty LAMBDA   r = mean_k correct_k - LAMBDA * length / budget
    --target-len L > 0        r = mean_k correct_k * 1[length <= L]          (truncation reward)
    --format-weight W         r = (1 - W) * r + W * answered   (answered: fraction of problems with an answer)
    """
    r = sum(correct) / len(correct)
    if target_len:
        r = r * float(length <= target_len)
    r = r - length_penalty * length / budget
    if format_weight:
        r = (1 - format_weight) * r + format_weight * answered
    return r


# ---------------------------------------------------------------------------------------------
# where answers end (the stop rule and per-problem token counts)


def last_answer_end(text, n):
    """Character offset just past the answer of the line "Answer n:" (the close of its \\boxed{...},
    else the end of the line), None while that answer is not complete in `text`."""
    m = next((m for m in ANSWER_LINE_RE.finditer(text) if int(m.group(1)) == n), None)
    if m is None:
        return None
    line_end = text.find("\n", m.end())
    seg = text[m.end():] if line_end == -1 else text[m.end():line_end]
    boxes = [b for b in grader.find_boxes(seg) if seg[b[1] - 1] == "}"]  # "\\boxed 5" may still grow to "\\boxed 52"
    if boxes:
        return m.end() + boxes[0][1]
    return None if line_end == -1 else line_end


def answer_line_ends(text, n):
    """Character offset just past each problem's (last) "Answer k:" line and its newline, None if absent."""
    ends = [None] * n
    for m in ANSWER_LINE_RE.finditer(text):
        k = int(m.group(1))
        if 1 <= k <= n:
            e = text.find("\n", m.end())
            ends[k - 1] = len(text) if e == -1 else e + 1
    return ends
