"""
grader.py: is this answer the same as that one? Answer extraction and checking, regex + sympy.

The reward is the only training signal, so the grader has to be right in both directions (no
false positives, few false negatives), must never hang, and must give the same verdict on a busy
machine as on an idle one. reward.py reads the N answers of a BCR response and calls is_equiv on
each; this file knows nothing of the BCR format.

    find_boxes(text)            -> [(start, end, content)]  every \\boxed{...} in order
    extract_answer(text)        -> str | None   final answer of a single-problem response
    normalize(answer)           -> str          canonical string form of one answer
    is_equiv(pred, gold)        -> bool         are two final answers the same?
    grade(response, gold)       -> bool         extract_answer + is_equiv

Extraction (extract_answer), first that applies: the last \\boxed{}; the last final-answer marker
("The final answer is $42$. I hope it is correct.", "Final Answer: The area is 42.", "Answer: 17",
"#### 15 hours", "Answer \\( 42 \\)"); a short one-line text is itself the answer; otherwise the
last committed value of the prose (the last math span or number). Text after a chat-turn marker
(<|im_start|>, <|eot_id|>, ...) and thinking before the last </think> never count.

How is_equiv decides, cheapest test first:
  1. normalise both strings: LaTeX spellings (\\dfrac, \\cfrac, \\left, \\text{}, \\mathrm{}, spacing,
     \\geq / >= / ≥, Unicode minus), units and currency after a number (km, \\text{ inches}, \\$,
     dollars, percent, degrees), thousands separators (12,\\!500, 3{,}400, 10\\,000), \\mathbb{R},
     \\varnothing, case of word answers; compare the strings;
  2. structures: multiple-choice letters; matrices (any environment); ordered tuples and intervals
     (bracket types must match); sets and comma/";"/"or" lists (unordered, complete); unions;
     a ± b as the set {a+b, a-b}; inequalities turned into intervals when they are linear in one
     variable (2 >= x, -x > -4, 1 <= x <= 4, x != 1); equations ("x = 5" is 5, "x = 2+3 = 5" is 5,
     x = 2 is not y = 2, 3x+6y-2=0 equals y=-x/2+1/3: equal up to a nonzero factor); labelled lists
     ("x=2, y=-5" is the tuple (2, -5); "x = -1 or x = 6" is the set {-1, 6});
  3. numbers: integers, decimals, fractions, mixed numbers (2\\frac{3}{4}, 2 3/4), repeating
     decimals (0.\\overline{6}), scientific notation (3.1e8, 3.1 \\times 10^{8}) are compared exactly
     as Fractions, never through float; a decimal matches a non-terminating fraction only when it
     is that fraction correctly rounded to at least 2 decimals;
  4. expressions: a small hand-written LaTeX parser builds an expression tree; we evaluate both
     trees numerically at random points (plain Python floats, microseconds) and if they differ
     the answer is "no"; if they agree, sympy decides, in a worker process.

Bounded time that does not move with machine load: sympy runs in a child process
(`python grader.py --serve`) that we talk to over a pipe. Each is_equiv call may spend at most
TIMEOUT_S seconds of the worker's *CPU time* (a SIGPROF interval timer inside the worker raises
when it is used up, and the worker answers "timeout"); CPU time is what the work costs, so the
verdict is the same on a busy machine as on an idle one. The parent only keeps a much larger
wall-clock safety limit (WALL_LIMIT_S) that kills a wedged worker. This works from any thread and
inside worker processes (no signal.alarm in the caller). A timeout is a False verdict and is
counted in STATS["timeouts"]. Inputs longer than MAX_LEN characters are only compared as strings.
"""
import argparse
import cmath
import json
import math
import os
import random
import re
import select
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from functools import lru_cache

TIMEOUT_S = 1.0  # CPU seconds sympy may spend on one is_equiv call (all its sympy checks together)
WALL_LIMIT_S = 30.0  # wall-clock safety net: a worker silent this long is wedged, and is killed
MAX_LEN = 400  # longer normalised answers are compared as strings only
STATS = {"sympy_calls": 0, "timeouts": 0}

# ----------------------------------------------------------------------------------------------
# extraction


def _match_brace(s, i):
    """s[i] == '{'; return the index of the matching '}' or -1. Escaped braces (\\{ \\}) are text."""
    depth = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n and s[i + 1] in "{}":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")


def find_boxes(text):
    """All \\boxed{...} / \\fbox{...} / \\boxed 5 contents in order, as (start, end, content)."""
    out = []
    for m in _BOX_RE.finditer(text):
        j = m.end()
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            k = _match_brace(text, j)
            if k == -1:
                continue  # unbalanced: not an answer
            out.append((m.start(), k + 1, text[j + 1 : k].strip()))
        elif j > m.end():  # "\boxed 5": one token up to whitespace or $
            t = re.match(r"[^\s$]+", text[j:])
            if t:
                out.append((m.start(), j + t.end(), t.group(0)))
    return out


# a chat template's turn markers: whatever a model writes after one is not its answer
_TURN_RE = re.compile(
    r"<\|im_start\|>|<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>|<\|start_header_id\|>|<\|end\|>|<\|user\|>"
    r"|<｜User｜>|<｜end▁of▁sentence｜>|<end_of_turn>|<start_of_turn>|</s>|\[INST\]|\n(?:Human|User):")


def cut_turn(text):
    """The text up to the first chat-turn marker (one at the very start is skipped)."""
    start = len(text) - len(text.lstrip())
    m = _TURN_RE.search(text, start)
    if m is not None and m.start() == start:
        m = _TURN_RE.search(text, m.end())
    return text if m is None else text[: m.start()]


def after_think(text):
    """Only the text after the last </think> counts when a model thinks out loud, and nothing after
    a chat-turn marker (a model that goes on to write the user's next turn)."""
    text = cut_turn(text)
    i = text.rfind("</think>")
    return text if i == -1 else text[i + len("</think>") :]


def clean_inline(ans):
    """A bare answer written inline: strip markdown bold, a final period and $...$ / \\(...\\)."""
    ans = ans.strip()
    ans = re.sub(r"^\*+|\*+$", "", ans).strip().rstrip(".").strip()
    if ans.startswith("$") and ans.endswith("$") and len(ans) > 1:
        ans = ans.strip("$").strip().rstrip(".").strip()
    elif ans.startswith("\\(") and ans.endswith("\\)") or ans.startswith("\\[") and ans.endswith("\\]"):
        ans = ans[2:-2].strip().rstrip(".").strip()
    return ans or None


# "Final Answer: ...", "The final answer is ...", "The answer is ...", "Answer: ...", "#### ...",
# and a line that starts with "Answer" followed directly by math ("Answer \( 42 \)")
_MARKER_RE = re.compile(
    r"final\s+answer\s*(?:is\b|[:：])?|the\s+(?:final\s+|correct\s+)?answer\s+(?:is|would\s+be|should\s+be|must\s+be)\b"
    r"|answer\s*[:：]|####|^[ \t*#]*answer\b(?=[ \t*]*(?:\$|\\\(|\\\[))",
    re.IGNORECASE | re.MULTILINE)
_MATH_OPEN = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))
_MATH_SPAN_RE = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|(?<!\\)\$((?:\\\$|[^$])+?)(?<!\\)\$", re.DOTALL)
_SENTENCE_END_RE = re.compile(r"\.\s+(?=[A-Z(])|\.\s*$|;\s|!|\?\s")
_VERB_RE = re.compile(r"\s(?:is|are|was|were|equals|be|gives|get)\s+(?!.*\s(?:is|are|was|were|equals|be|gives)\s)")
_HEDGE_WORDS_RE = re.compile(
    r"^(?:approximately|approx\.?|about|roughly|exactly|just|only|simply|then|therefore|thus)\s+", re.IGNORECASE)


def _math_at_start(t):
    """If t starts with a math delimiter, the content up to its closer, else None."""
    for o, c in _MATH_OPEN:
        if t.startswith(o):
            j = t.find(c, len(o))
            while o == "$" and j > 0 and t[j - 1] == "\\":  # \$ inside $...$ is a dollar sign
                j = t.find(c, j + 1)
            if j != -1 and j - len(o) < 400:
                return t[len(o) : j].strip()
    return None


def _answer_in_sentence(line):
    """The answer stated by one line of prose: its math spans, else what follows its last verb."""
    line = _SENTENCE_END_RE.split(line, 1)[0].strip()
    spans = [next(g for g in m.groups() if g is not None).strip() for m in _MATH_SPAN_RE.finditer(line)]
    if spans:
        spans = [s for s in spans if s]
        return ", ".join(spans) if spans else None
    m = _VERB_RE.search(" " + line)
    if m:
        line = (" " + line)[m.end() :]
    return clean_inline(_HEDGE_WORDS_RE.sub("", line.strip()))


def _tail_answer(tail):
    """The answer written right after a final-answer marker."""
    t = tail.lstrip(" \t*:：_")
    t = re.sub(r"^\s*\n\s*", "", t, count=2)  # "Final Answer\n\n\[ 42 \]"
    t = _HEDGE_WORDS_RE.sub("", t)
    inner = _math_at_start(t)
    if inner is not None:
        return inner or None
    line = t.split("\n", 1)[0].strip()
    return _answer_in_sentence(line) if line else None


def marker_answer(text):
    """The answer after the last final-answer marker of a text that has one, else None."""
    for m in reversed(list(_MARKER_RE.finditer(text))):
        ans = _tail_answer(text[m.end() :])
        if ans:
            return ans
    return None


_CURRENCY_DOLLAR_RE = re.compile(r"(?<![\\$\w])\$(?=\d[\d,]*(?:\.\d+)?(?![\d,.]*\$))")
_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def _last_value(text):
    """The last committed value of unmarked prose: its last math span or number, whichever ends
    later. In a span "a = b = c" the value is c (and in "c \\approx d" it is c)."""
    text = _CURRENCY_DOLLAR_RE.sub("", text[-4000:])  # "$18 a day" is currency, not math
    best, best_end = None, -1
    for m in _MATH_SPAN_RE.finditer(text):
        body = next(g for g in m.groups() if g is not None)
        body = re.split(r"\\approx|≈", body)[0]
        body = body.split("=")[-1].strip()
        if body and re.search(r"\d|\\", body):
            best, best_end = body, m.end()
    masked = _MATH_SPAN_RE.sub(lambda m: " " * len(m.group(0)), text)
    for m in _NUMBER_RE.finditer(masked):
        if m.end() > best_end:
            best, best_end = m.group(0).rstrip(","), m.end()
    return best


def extract_answer(text):
    """Final answer of a single-problem response: last box, else a final-answer marker, else a
    short one-line text itself, else the last committed value of the prose; None if nothing."""
    if text is None:
        return None
    text = after_think(text)
    boxes = find_boxes(text)
    if boxes:
        return boxes[-1][2]
    if "\\boxed" in text or "\\fbox" in text:
        return None  # a box cut off mid-answer: no answer
    ans = marker_answer(text)
    if ans:
        return ans
    t = text.strip()
    if not t:
        return None
    if "\n" not in t and len(t) <= 80:
        outside = _MATH_SPAN_RE.sub(" ", t)
        if outside != t and re.search(r"[A-Za-z]{3}", outside):  # "Hence $x = 4$."
            return _last_value(t)
        if _VERB_RE.search(" " + t) and not _SENTENCE_END_RE.search(t.rstrip(". ")):
            return _answer_in_sentence(t)
        if _looks_like_answer(t) and not _is_prose(t):
            return clean_inline(t)
    return _last_value(t)


_WORD_ANSWERS_RE = re.compile(r"^(?:\W*\b(?:all|real|numbers?|no|solutions?|none|yes|true|false|even|odd|undefined|"
                              r"infinite(?:ly many)?|does|not|exist|neither|both|prime|composite|impossible)\b\W*)+$",
                              re.IGNORECASE)


def _is_prose(t):
    """More than 3 words outside math: a sentence, not an answer."""
    return len(_WORD2_RE.findall(_MATH_SPAN_RE.sub(" ", t))) > 3


_WORD2_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")


def _looks_like_answer(t):
    """Is a short line without a verb an answer by itself (a value, a choice, a word answer)?"""
    if re.search(r"[\d\\=^_{}()<>]", t) or len(re.findall(r"[A-Za-z]+", t)) <= 2:
        return True
    return bool(_CHOICE_RE.match(t) or re.match(r"^\(?[A-J][:.)]\s", t) or _WORD_ANSWERS_RE.match(t))


# ----------------------------------------------------------------------------------------------
# normalisation

_UNICODE = {
    "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00d7": "\\times ", "\u22c5": "\\cdot ", "\u00b7": "\\cdot ",
    "\u00f7": "\\div ", "\u2264": "\\le ", "\u2265": "\\ge ", "\u2260": "\\ne ", "\u221e": "\\infty ",
    "\u03c0": "\\pi ", "\u221a": "\\sqrt", "\u00b0": "^\\circ ", "\u2205": "\\emptyset ", "\u211d": "\\mathbb{R}",
    "\u222a": "\\cup ", "\u2229": "\\cap ", "\u00b1": "\\pm ", "\u2213": "\\mp ", "\u00b2": "^2", "\u00b3": "^3",
    "\u00bd": "\\frac{1}{2}", "\u00bc": "\\frac{1}{4}", "\u00be": "\\frac{3}{4}", "\u2208": "\\in ",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2002": " ", "\u2003": " ", "\uff0c": ",", "\uff1a": ":",
    "\u2192": "\\to ", "\u03b8": "\\theta ", "\u03b1": "\\alpha ", "\u03b2": "\\beta ", "\u20ac": "", "\u00a3": "",
    "\u00a5": "", "\u2032": "'", "\u2248": "\\approx ",
}
_UNICODE_RE = re.compile("|".join(map(re.escape, _UNICODE)))

# commands whose argument is plain text: \text{ km} -> " km"
_TEXT_CMDS = ("textbf", "textit", "textnormal", "textrm", "textsf", "texttt", "textup", "text", "mathrm", "mathbf",
              "mathit", "mathsf", "mathtt", "mathnormal", "mbox", "hbox", "operatorname", "boldsymbol", "bm", "emph")
_TEXT_CMD_RE = re.compile(r"\\(?:" + "|".join(_TEXT_CMDS) + r")(?![a-zA-Z])\s*\{")

# units after a number are dropped (exact comparison of the numbers stays: 12 km is never 120).
# Short names must be in this list; a word of 3+ letters after a number and a space counts as a
# unit or a noun ("18 apples") unless it is a word of mathematics.
_UNITS = set("""
km m cm mm nm um mi ft in yd pc au ly g kg mg lb lbs oz t s ms h hr hrs min mins sec secs d wk yr yrs
L l ml mL cc gal qt pt mph kph kmh kmph fps rpm J kJ N W kW MW V mV A mA Hz kHz MHz GHz Pa kPa atm K C F eV
keV MeV GeV mol M cal kcal Wh kWh dB sq cu st nd rd th ms ns us
""".split())
_MATH_WORDS = {"or", "and", "pi", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "mod", "max",
               "min", "gcd", "lcm", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "det", "not", "if", "for",
               "when", "where", "with", "all", "none", "yes", "true", "false", "undefined", "even", "odd",
               "infinity", "inf", "infty", "real", "is", "are", "to", "frac", "cdot", "times", "dfrac", "circ",
               "le", "ge", "ne", "cup", "cap", "emptyset", "mp", "pm", "approx", "neq", "leq", "geq"}
_UNIT_RE = re.compile(r"(?<=[\d})%])(\s*)((?:[A-Za-z]+)(?:\^\{?-?[1-3]\}?)?(?:(?:\s*/\s*|\s+|\s*-\s*|\\cdot\s*)"
                      r"[A-Za-z]+(?:\^\{?-?[1-3]\}?)?){0,3})\.?(?=\s*(?:$|[,;)\]]|\\\}|\\cup))")
_CONNECTOR_RE = re.compile(r"\s*,?\s+(?:or|and)\s+|\s*\\(?:quad|qquad)\s*(?:or|and)?\s*\\(?:quad|qquad)\s*")


def _strip_cmd_arg(s, cmd):
    """Replace \\cmd{X} by X for every occurrence (brace-matched)."""
    out, i = [], 0
    pat = "\\" + cmd
    while True:
        j = s.find(pat, i)
        if j == -1:
            out.append(s[i:])
            return "".join(out)
        k = j + len(pat)
        if k < len(s) and (s[k].isalpha()):
            out.append(s[i:k])
            i = k
            continue
        while k < len(s) and s[k] == " ":
            k += 1
        if k < len(s) and s[k] == "{":
            e = _match_brace(s, k)
            if e != -1:
                out.append(s[i:j] + s[k + 1 : e])
                i = e + 1
                continue
        out.append(s[i:k])
        i = k


def _unwrap_text(s):
    """\\text{ km} -> " km", for every text-like command (the argument keeps its own spaces)."""
    out, i = [], 0
    for _ in range(50):
        m = _TEXT_CMD_RE.search(s, i)
        if m is None:
            break
        e = _match_brace(s, m.end() - 1)
        if e == -1:
            break
        inner = s[m.end() : e]
        out.append(s[i : m.start()])
        # words inside \text{} are separated from what surrounds them
        out.append(" " + inner + " " if re.search(r"[A-Za-z]{2}", inner) else inner)
        i = e + 1
    out.append(s[i:])
    return "".join(out)


def _is_unit(word, spaced):
    if word in _UNITS:
        return True
    return spaced and len(word) >= 3 and word.lower() not in _MATH_WORDS


def _drop_units(s):
    def repl(m):
        words = re.findall(r"[A-Za-z]+", m.group(2))
        if all(_is_unit(w, bool(m.group(1))) for w in words):
            return ""
        return m.group(0)

    return _UNIT_RE.sub(repl, s)


def _canon_matrix(s):
    """\\begin{pmatrix}..\\end{pmatrix}, bmatrix, array{cc}, ... -> \\begin{matrix}..\\end{matrix}
    (a determinant, vmatrix, keeps its name); outer brackets around an array are dropped."""
    s = re.sub(r"\\begin\{array\}\s*\{[^{}]*\}", r"\\begin{matrix}", s)
    s = re.sub(r"\\(begin|end)\{(?:[pbB]?matrix|smallmatrix|array)\}", r"\\\1{matrix}", s)
    s = re.sub(r"\\(begin|end)\{Vmatrix\}", r"\\\1{vmatrix}", s)
    s = re.sub(r"^[(\[]\s*(\\begin\{matrix\}.*\\end\{matrix\})\s*[)\]]$", r"\1", s.strip(), flags=re.DOTALL)
    return s


_SPACING_RE = re.compile(r"(?<!\\)\\[,;: >]|\\q?quad(?![a-zA-Z])|~|\\hspace\*?\{[^{}]*\}")
_RELATIONS = (
    (re.compile(r"\\geq?(?:slant)?(?![a-zA-Z])|>=|=>"), "\\ge "),
    (re.compile(r"\\leq?(?:slant)?(?![a-zA-Z])|<="), "\\le "),
    (re.compile(r"\\neq?(?![a-zA-Z])|!=|\\not=|=/="), "\\ne "), (re.compile(r"\\gt(?![a-zA-Z])"), ">"),
    (re.compile(r"\\lt(?![a-zA-Z])"), "<"),
)
_REALS_RE = re.compile(r"\\mathbb\s*\{?\s*R\s*\}?|\\R(?![a-zA-Z])|(?i:\ball real numbers\b|\breal numbers\b)")
_EMPTY_RE = re.compile(r"\\varnothing(?![a-zA-Z])|\\emptyset(?![a-zA-Z])|^\\\{\s*\\\}$|(?i:^no solutions?$)")
_DEGREE_RE = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![a-zA-Z])|\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])")
_PERCENT_RE = re.compile(r"\\%|%|\s*\b(?:percent|per\s+cent|pct)\b\.?", re.IGNORECASE)
_CURRENCY_RE = re.compile(r"\\\$|\b(?:USD|US\$|Rs\.?|INR|EUR|GBP)(?=\s*\d)|(?<=\d)\s*(?:USD|EUR|GBP)\b")
_MIXED_RE = re.compile(r"^(-?\d+)\s+(\d+)\s*/\s*(\d+)$")
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _normalize_latex(s):
    """The LaTeX-spelling part of normalisation."""
    s = s.replace(",\\!", ",").replace("\\!", "")
    s = _SPACING_RE.sub(" ", s)
    s = s.replace("\\displaystyle", "").replace("\\limits", "")
    s = re.sub(r"\\(?:left|right)(?:\.|(?![a-zA-Z]))|\\[bB]igg?[lr]?(?![a-zA-Z])", "", s)  # never \leftarrow
    if "\\begin" in s:
        s = _canon_matrix(s)
    s = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", s)
    s = re.sub(r"\\[dt]binom(?![a-zA-Z])", r"\\binom", s)
    s = _DEGREE_RE.sub(" ", s)
    s = s.replace("\\%", "%")
    for _ in range(3):  # \text{\textbf{9}}
        if not _TEXT_CMD_RE.search(s):
            break
        s = re.sub(r"\s+\^", "^", _unwrap_text(s))
    if "\\mathbb" in s or "\\R" in s:
        s = _REALS_RE.sub(lambda _: "(-\\infty,\\infty)", s)
    s = re.sub(r"\\(?:mathbb|mathcal|mathfrak|mathscr)\s*\{\s*(\w)\s*\}", r"\1", s)
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)  # \frac12
    s = re.sub(r"\\frac\s*(\d)\s*\{", r"\\frac{\1}{", s)  # \frac1{x}
    s = re.sub(r"\\sqrt\s*(\d+|[a-zA-Z])(?![\d])", r"\\sqrt{\1}", s)  # \sqrt2
    s = re.sub(r"\\sqrt\s*\((\d+)\)", r"\\sqrt{\1}", s)  # √(2)
    return s


@lru_cache(maxsize=1 << 14)
def normalize(s):
    """Canonical string form of an answer; equal strings mean equal answers."""
    if s is None:
        return None
    s = str(s).strip()
    if len(s) > 10 * MAX_LEN:
        return s
    if not s.isascii():
        s = _UNICODE_RE.sub(lambda m: _UNICODE[m.group(0)], s)
    s = _CURRENCY_RE.sub(" ", s) if ("\\$" in s or "US" in s or "R" in s or "EU" in s or "GB" in s) else s
    s = s.replace("$", "")
    s = s.replace("\\(", "").replace("\\)", "").replace("\\[", "").replace("\\]", "")
    if "\\" in s:
        s = _normalize_latex(s)
    if "\\" in s or "=" in s:
        for pat, rep in _RELATIONS:
            s = pat.sub(lambda _, r=rep: r, s)
    s = s.replace("{,}", ",")  # 1{,}000
    s = _PERCENT_RE.sub(" ", s) if ("%" in s or "p" in s or "P" in s) else s
    s = s.strip().strip("*").strip()
    if re.search(r"[A-Za-z]", s):
        if "\\mathbb" in s or "\\R" in s or "real" in s:
            s = _REALS_RE.sub(lambda _: "(-\\infty,\\infty)", s)
        s = re.sub(r"(?i)\binfinity\b", lambda _: "\\infty", s)
        s = _CONNECTOR_RE.sub(",", s)  # "x = -1 or x = 6", "3 and 4"
        s = _EMPTY_RE.sub(lambda _: "\\emptyset", s)
        s = re.sub(r"^[a-zA-Z]\s*\\in\s*", "", s)  # x \in [1, 4]
        s = _drop_units(s)
    else:
        s = _EMPTY_RE.sub(lambda _: "\\emptyset", s)
    s = _THOUSANDS_RE.sub("", s)  # 1,000 -> 1000 (exactly 3 digits after)
    m = _MIXED_RE.match(s.strip())
    if m:  # 2 3/4 -> 2\frac{3}{4} (a mixed number, see parse_number)
        s = f"{m.group(1)}\\frac{{{m.group(2)}}}{{{m.group(3)}}}"
    s = s.strip().rstrip(".").strip()
    s = re.sub(r"\s+", " ", s)
    s = re.sub(r"(?<![a-zA-Z]) | (?![a-zA-Z])", "", s)  # spaces matter only between letters
    s = re.sub(r"(?:^|(?<=[(\[,]))\+(?=\\infty)", "", s)  # (3, +\infty)
    s = re.sub(r"_\{(\w+)\}", r"_\1", s)  # 101_{2} -> 101_2, x_{1} -> x_1
    s = re.sub(r"(?<![\d.])(-?\d+)\.0+(?![\d])", r"\1", s)  # 12.0 -> 12
    if re.fullmatch(r"[A-Za-z][A-Za-z '\-]*", s) and re.search(r"[A-Za-z]{3}", s):
        s = s.lower()  # "Even" and "even" are the same word answer
    return s


# ----------------------------------------------------------------------------------------------
# numbers

_INT_RE = re.compile(r"^[+-]?\d+$")
_DEC_RE = re.compile(r"^[+-]?(?:\d+\.\d*|\.\d+)$")
_FRAC_RE = re.compile(r"^([+-]?)\\frac\{([+-]?\d+)\}\{([+-]?\d+)\}$")
_SLASH_RE = re.compile(r"^([+-]?\d+)/(\d+)$")
_MIXED_NUM_RE = re.compile(r"^([+-]?)(\d+)\\frac\{(\d+)\}\{(\d+)\}$")
_REPEAT_RE = re.compile(r"^([+-]?)(\d*)\.(\d*)(?:\\overline\{(\d+)\}|\\dot\{?(\d)\}?|\((\d+)\))$")
# 3.1 \times 10^{8}; 3.1e8 and 1e-5 (a bare "1e5" could be the product 1*e*5, so a mantissa
# without a point needs a signed exponent or a capital E)
_SCI_RE = re.compile(r"^([+-]?\d+(?:\.\d+)?)(?:\\times|\\cdot|\*|x)10\^\{?([+-]?\d+)\}?$"
                     r"|^([+-]?\d+\.\d+)[eE]([+-]?\d+)$|^([+-]?\d+)(?:E([+-]?\d+)|e([+-]\d+))$")


def parse_number(s):
    """(value as Fraction, decimals or None) for a plain number, or None. Never uses float."""
    if _INT_RE.match(s):
        return Fraction(int(s)), None
    if _DEC_RE.match(s):
        return Fraction(s), len(s.split(".")[1])
    m = _FRAC_RE.match(s)
    if m and int(m.group(3)) != 0:
        v = Fraction(int(m.group(2)), int(m.group(3)))
        return (-v if m.group(1) == "-" else v), None
    m = _SLASH_RE.match(s)
    if m and int(m.group(2)) != 0:
        return Fraction(int(m.group(1)), int(m.group(2))), None
    if "\\" in s or "e" in s or "E" in s or "x" in s or "(" in s:
        return _parse_special_number(s)
    return None


def _parse_special_number(s):
    m = _MIXED_NUM_RE.match(s)
    if m and 0 < int(m.group(3)) < int(m.group(4)):  # 2\frac{3}{4}: two and three quarters
        v = int(m.group(2)) + Fraction(int(m.group(3)), int(m.group(4)))
        return (-v if m.group(1) == "-" else v), None
    m = _REPEAT_RE.match(s)
    if m:  # 0.1\overline{6} = 0.1666...
        sign, whole, fixed = m.group(1), m.group(2) or "0", m.group(3)
        rep = m.group(4) or m.group(5) or m.group(6)
        v = Fraction(int(whole)) + Fraction(int(fixed or "0"), 10 ** len(fixed))
        v += Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** len(fixed))
        return (-v if sign == "-" else v), None
    m = _SCI_RE.match(s)
    if m:
        mant, exp = next((m.group(i), m.group(j)) for i, j in ((1, 2), (3, 4), (5, 6), (5, 7)) if m.group(j))
        e = int(exp)
        if abs(e) > 400:
            return None
        return Fraction(mant) * Fraction(10) ** e, None
    return None


def _terminates(q):
    d = q.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def _numbers_equal(a, b):
    if a[0] == b[0]:
        return True
    # a decimal against a non-terminating fraction: equal only if correctly rounded, >= 2 places
    for (v, d), (w, e) in ((a, b), (b, a)):
        if d is not None and d >= 2 and e is None and not _terminates(w):
            if abs(w - v) <= Fraction(1, 2 * 10**d):
                return True
    return False


def _frac_latex(q):
    if q.denominator == 1:
        return str(q.numerator)
    return ("-" if q < 0 else "") + f"\\frac{{{abs(q.numerator)}}}{{{q.denominator}}}"


# ----------------------------------------------------------------------------------------------
# structures: what kind of answer is this string?
#   ("choice", letter, rest)   (B) 7, D: the second option, B
#   ("matrix", rows)           any matrix environment
#   ("list", items)            1, 2 / (1,2); (3,4) / a \pm b      unordered
#   ("union", items)           A \cup B                              unordered
#   ("set", items)             \{1, 2\}                              unordered
#   ("bracket", (o, items, c)) (1, 2), [1, 4), (3, \infty)           ordered, brackets must match
#   ("rel", (var, interval))   x \ge 2, 1 < x \le 4, x \ne 1; interval None when it is no interval
#   ("eq", segments)           x = 5, x = 2+3 = 5, 3x + 6y - 2 = 0
#   ("scalar", s)              everything else: a number, an expression, a word


def _split_top(s, sep=","):
    """Split on sep at bracket depth 0."""
    parts, depth, cur, i = [], 0, [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s) and s[i + 1] in "{}":
            depth += 1 if s[i + 1] == "{" else -1
            cur.append(s[i : i + 2])
            i += 2
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if depth == 0 and s.startswith(sep, i):
            parts.append("".join(cur))
            cur = []
            i += len(sep)
            continue
        cur.append(c)
        i += 1
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _outer_pair(s):
    """If s is wrapped in one bracket pair that closes at its end, return (open, inner, close)."""
    if len(s) < 2:
        return None
    if s.startswith("\\{") and s.endswith("\\}"):
        return "{", s[2:-2], "}"
    if s[0] not in "([" or s[-1] not in ")]":
        return None
    depth = 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0 and i != len(s) - 1:
                return None
    return s[0], s[1:-1], s[-1]


_CHOICE_RE = re.compile(r"^\(([A-J])\)(.*)$|^([A-J])(?:[:.)](.*))?$")
_CHOICE_WORD_RE = re.compile(r"^(?:(?:option|choice)\s*\(?([a-jA-J])\)?|\(([a-j])\))$", re.IGNORECASE)
_MATRIX_RE = re.compile(r"^\\begin\{(v?matrix)\}(.*)\\end\{\1\}$", re.DOTALL)
_REL_SPLIT_RE = re.compile(r"(\\(?:le|ge|ne)(?![a-zA-Z])|<|>)")
# what may stand left of "=" as a name for the value: x, \theta, x_1, f(x), PQ, \angle ABC, (a, b)
_LABEL_RE = re.compile(r"^(?:[A-Za-z]|\\(?!pi\b|infty\b)[a-zA-Z]+)(?:_\w+)?'?(?:\^\{-1\})?(?:\([A-Za-z]\))?$"
                       r"|^[A-Z]{2,3}$|^(?:m)?\\angle ?[A-Z]{1,3}$|^\((?:[a-z](?:_\w)?,)+[a-z](?:_\w)?\)$")


def _split_items(s):
    """Top-level items of a list separated by ',' or ';' (a single item: [s])."""
    if "," not in s and ";" not in s:
        return [s]
    items = [x for y in _split_top(s, ";") for x in _split_top(y, ",")]
    return [x for x in items if x]


def _structure(s):
    """(kind, payload) of a normalised answer; see the table above."""
    m = _CHOICE_RE.match(s)
    if m and not (m.group(2) or m.group(4) or "").startswith((",", ";")):  # "(A),(B)" is a list
        return "choice", (m.group(1) or m.group(3), (m.group(2) or m.group(4) or "").strip())
    m = _CHOICE_WORD_RE.match(s)
    if m:  # "Option C", "(b)"
        return "choice", ((m.group(1) or m.group(2)).upper(), "")
    if s.startswith("\\begin{"):
        m = _MATRIX_RE.match(s)
        if m:
            rows = [r for r in (x.strip() for x in m.group(2).split("\\\\")) if r]
            return ("matrix" if m.group(1) == "matrix" else "scalar"), [[c.strip() for c in r.split("&")] for r in rows]
    for pm in ("\\pm", "\\mp"):
        if s.count(pm) == 1:  # a \pm b is the set {a + b, a - b}
            return "list", [s.replace(pm, "+"), s.replace(pm, "-")]
    if "\\cup" in s:
        parts = _split_top(s, "\\cup")
        if len(parts) > 1:
            return "union", parts
    items = _split_items(s)
    if len(items) > 1:
        return "list", items
    p = _outer_pair(s)
    if p:
        o, inner, c = p
        if o == "{":
            return "set", _split_items(inner) if inner.strip() else []
        items = _split_items(inner)
        if len(items) > 1:
            return "bracket", (o, items, c)
    if _REL_SPLIT_RE.search(s):
        return "rel", _relation(s)
    if "=" in s:
        segs = _split_top(s, "=")
        if len(segs) > 1 and all(segs):
            return "eq", segs
    return "scalar", s


def _is_label(s):
    return bool(_LABEL_RE.match(s))


def _free_letters(s):
    """Does s mention a variable (a letter that is not part of a command like \\frac or \\pi)?"""
    return bool(re.search(r"(?<![\\a-zA-Z])[a-zA-Z]", re.sub(r"\\[a-zA-Z]+", "", s)))


def _interval(lo, lo_closed, hi, hi_closed):
    return f"{'[' if lo_closed else '('}{lo},{hi}{']' if hi_closed else ')'}"


def _relation(s):
    """(variable, interval string or None, canonical (f, op) with f op 0) of an inequality."""
    parts = [p.strip() for p in _REL_SPLIT_RE.split(s)]
    exprs, ops = parts[0::2], parts[1::2]
    if len(exprs) == 3 and all(exprs) and _is_label(exprs[1]) and not any(o == "\\ne" for o in ops):
        lo, var, hi = exprs
        if all(o in ("<", "\\le") for o in ops):  # 1 < x <= 4
            return var, _interval(lo, ops[0] == "\\le", hi, ops[1] == "\\le"), None
        if all(o in (">", "\\ge") for o in ops):  # 4 >= x > 1
            return var, _interval(hi, ops[1] == "\\ge", lo, ops[0] == "\\ge"), None
        return None, None, None
    if len(exprs) != 2 or not all(exprs):
        return None, None, None
    left, op, right = exprs[0], ops[0], exprs[1]
    # put it as f op 0 with op in (<, <=, !=): "a > b" is "b - a < 0"
    if op in (">", "\\ge"):
        f, cop = f"{right}-({left})", "<" if op == ">" else "\\le"
    else:
        f, cop = f"{left}-({right})", op
    canon = (f, cop)
    if _is_label(left) and not _free_letters(right):  # x <= 2
        var, bound, below, closed = left, right, op in ("<", "\\le", "\\ne"), op in ("\\le", "\\ge")
    elif _is_label(right) and not _free_letters(left):  # 2 >= x
        var, bound, below, closed = right, left, op in (">", "\\ge", "\\ne"), op in ("\\le", "\\ge")
    else:  # -x > -4: f = slope * (x - root) and f < 0 means x < root when slope > 0
        solved = _solve_linear(f)
        if solved is None:
            return None, None, canon
        var, root, slope = solved
        bound, below, closed = _frac_latex(root), slope > 0, cop == "\\le"
    if op == "\\ne":
        return var, f"(-\\infty,{bound})\\cup({bound},\\infty)", canon
    if below:
        return var, _interval("-\\infty", False, bound, closed), canon
    return var, _interval(bound, closed, "\\infty", False), canon


def _solve_linear(f):
    """(variable, root, slope) when f is linear in one variable with rational coefficients, else None."""
    try:
        tree = parse_latex(f)
    except (ParseError, ValueError, ZeroDivisionError, IndexError, RecursionError):
        return None
    syms = _symbols(tree, set())
    if len(syms) != 1:
        return None
    (x,) = syms
    try:
        f0, f1, f2 = (_eval_exact(tree, {x: Fraction(v)}) for v in (0, 1, 2))
    except (ValueError, ZeroDivisionError, KeyError, OverflowError):
        return None
    slope = f1 - f0
    if slope == 0 or f2 - f1 != slope:
        return None
    return x, -f0 / slope, slope


# ----------------------------------------------------------------------------------------------
# comparing structures


def _unordered_equal(xs, ys, eq):
    if len(xs) != len(ys):
        return False
    left = list(ys)
    for x in xs:
        for i, y in enumerate(left):
            if eq(x, y):
                del left[i]
                break
        else:
            return False
    return True


def _label_value(segs):
    """(label, value) of an equation used to state a value: "x = 5", "x = 2+3 = 5", "2+3 = 5"."""
    if _is_label(segs[0]):
        return segs[0], segs[-1]
    if len(segs) > 1 and not _free_letters(segs[0]):
        return None, segs[-1]  # a computation ending in its value
    return None


def _labelled(items):
    """For a list whose items all name a value ("x=2, y=-5"): ("same", values) when one name is
    repeated (x = -1 or x = 6: the set of its values), ("distinct", values) when the names differ
    (x=2, y=-5: the tuple of values); None otherwise."""
    labels, values = [], []
    for it in items:
        if "=" not in it:
            return None
        kind, segs = _structure(it)
        lv = _label_value(segs) if kind == "eq" else None
        if lv is None or lv[0] is None:
            return None
        labels.append(lv[0])
        values.append(lv[1])
    if len(set(labels)) == 1:
        return "same", values
    if len(set(labels)) == len(labels):
        return "distinct", values
    return None


_RANK = {"choice": 0, "matrix": 1, "eq": 2, "rel": 3, "list": 4, "set": 5, "union": 6, "bracket": 7, "scalar": 8}


def _equiv_norm(a, b):
    """Are two normalised answers equal?"""
    if a == b:
        return True
    if not a or not b or len(a) > MAX_LEN or len(b) > MAX_LEN:
        return False
    sa, sb = _structure(a), _structure(b)
    if _RANK[sa[0]] > _RANK[sb[0]]:
        (sa, a), (sb, b) = (sb, b), (sa, a)
    return _equiv_struct(sa, sb, a, b)


def _equiv_struct(sa, sb, a, b):
    """Equality of two structures, sa's kind ranked no later than sb's (see _RANK)."""
    (ka, pa), (kb, pb) = sa, sb
    if ka == "choice":
        if kb == "choice":
            return pa[0] == pb[0]
        return bool(pa[1]) and _equiv_norm(pa[1], b)  # "(B) 7" against the value 7
    if ka == "matrix":
        return _matrix_equal(pa, sb)
    if ka == "eq":
        return _eq_equal(pa, sb, b)
    if ka == "rel":
        return _rel_equal(pa, sb, b)
    if ka in ("list", "set"):
        return _collection_equal(ka, pa, sb, b)
    if ka == "union":
        return kb == "union" and _unordered_equal(pa, pb, _equiv_norm)
    if ka == "bracket":
        if kb != "bracket":
            return False
        (oa, xa, ca), (ob, xb, cb) = pa, pb
        return oa == ob and ca == cb and len(xa) == len(xb) and all(map(_equiv_norm, xa, xb))
    return _scalar_equal(a, b)


def _matrix_equal(rows, sb):
    kb, pb = sb
    if kb == "matrix":
        return len(rows) == len(pb) and all(len(r) == len(q) and all(map(_equiv_norm, r, q)) for r, q in zip(rows, pb))
    if kb == "bracket" and pb[0] == "(" and pb[2] == ")":  # a column or row vector written as a tuple
        flat = [c for r in rows for c in r]
        if (len(rows) == 1 or all(len(r) == 1 for r in rows)) and len(flat) == len(pb[1]):
            return all(map(_equiv_norm, flat, pb[1]))
    return False


def _eq_equal(segs, sb, b):
    lv = _label_value(segs)
    kb, pb = sb
    if kb != "eq":
        # "x = 5" against 5; "(a,b) = (4,1)" against (4,1); a bare equation is not its right side
        return lv is not None and _equiv_norm(lv[1], b)
    lvb = _label_value(pb)
    if lv and lvb and lv[0] is not None and lv[0] == lvb[0] and _equiv_norm(lv[1], lvb[1]):
        return True
    if len(segs) == 2 and len(pb) == 2:
        # the same equation up to a nonzero factor and a rearrangement
        if _equiv_norm(segs[0], pb[0]) and _equiv_norm(segs[1], pb[1]):
            return True
        return _proportional(f"{segs[0]}-({segs[1]})", f"{pb[0]}-({pb[1]})", positive=False)
    return False


def _rel_equal(pa, sb, b):
    var, interval, canon = pa
    kb, pb = sb
    if kb == "rel":
        varb, intervalb, canonb = pb
        if interval is not None and intervalb is not None:
            return var == varb and _equiv_norm(interval, intervalb)
        if canon and canonb and canon[1] == canonb[1]:
            return _proportional(canon[0], canonb[0], positive=canon[1] != "\\ne")
        return False
    if interval is None or kb not in ("bracket", "union", "list"):
        return False
    if kb == "list" and not all(_REL_SPLIT_RE.search(x) for x in pb):
        return False
    return _equiv_norm(interval, b)


def _collection_equal(ka, items, sb, b):
    """A list or set (unordered) against anything ranked after it."""
    kb, pb = sb
    lab = _labelled(items) if ka == "list" else None
    if kb in ("list", "set"):
        labb = _labelled(pb) if kb == "list" else None
        if lab and labb:
            return _unordered_equal(items, pb, _equiv_norm)
        if lab and lab[0] == "distinct":  # PQ=3, RS=8 against 3, 8: in order
            return len(lab[1]) == len(pb) and all(map(_equiv_norm, lab[1], pb))
        if labb and labb[0] == "distinct":
            return len(labb[1]) == len(items) and all(map(_equiv_norm, items, labb[1]))
        return _unordered_equal(lab[1] if lab else items, labb[1] if labb else pb, _equiv_norm)
    if kb == "union":  # "x < -1 or x > 2" against (-\infty,-1) \cup (2,\infty)
        return ka == "list" and any(_REL_SPLIT_RE.search(x) for x in items) and _unordered_equal(items, pb, _equiv_norm)
    if kb == "bracket":
        if lab and lab[0] == "distinct" and pb[0] == "(" and pb[2] == ")":  # x=2, y=-5 against (2, -5)
            return len(lab[1]) == len(pb[1]) and all(map(_equiv_norm, lab[1], pb[1]))
        return ka == "set" and len(items) == 1 and _equiv_norm(items[0], b)
    if ka == "set" and len(items) == 1:  # \{5\} against 5
        return _equiv_norm(items[0], b)
    if lab and lab[0] == "same" and len(lab[1]) == 1:
        return _equiv_norm(lab[1][0], b)
    return False


def _scalar_equal(a, b):
    na, nb = parse_number(a), parse_number(b)
    if na is not None and nb is not None:
        return _numbers_equal(na, nb)
    # a number the parser would misread (2\frac{1}{2} is two and a half, not 2 * 1/2) goes in as its value
    if na is not None and na[1] is None:
        a = _frac_latex(na[0])
    if nb is not None and nb[1] is None:
        b = _frac_latex(nb[0])
    return _expr_equal(a, b)


# ----------------------------------------------------------------------------------------------
# a small LaTeX expression parser -> tree of tuples
#   node := ('num', Fraction) | ('sym', name) | ('const', 'pi'|'e'|'i'|'oo')
#         | ('add', [nodes]) | ('mul', [nodes]) | ('neg', node) | ('div', a, b)
#         | ('pow', base, exp) | ('fn', name, arg)

_TOKEN_RE = re.compile(r"\s*(\d+\.\d*|\.\d+|\d+|\\[a-zA-Z]+|[a-zA-Z]|\\\{|\\\}|[+\-*/^()\[\]{}!,|_])")
_FUNCS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "arcsin", "arccos", "arctan"}
_CONSTS = {"pi": ("const", "pi"), "infty": ("const", "oo"), "infinity": ("const", "oo")}
_GREEK = {"alpha", "beta", "gamma", "delta", "theta", "phi", "lambda", "mu", "sigma", "omega", "tau", "rho", "epsilon",
          "varphi", "varepsilon", "psi", "eta", "kappa", "nu", "xi", "zeta", "chi"}


class ParseError(Exception):
    pass


def _tokenize(s):
    toks, i = [], 0
    s = s.strip()
    while i < len(s):
        m = _TOKEN_RE.match(s, i)
        if not m:
            raise ParseError(f"bad character {s[i]!r}")
        toks.append(m.group(1))
        i = m.end()
        while i < len(s) and s[i] == " ":
            i += 1
    return toks


class _Parser:
    def __init__(self, s):
        self.t = _tokenize(s)
        self.i = 0

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, want=None):
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise ParseError(f"expected {want}, got {tok}")
        self.i += 1
        return tok

    def parse(self):
        node = self.expr()
        if self.peek() is not None:
            raise ParseError(f"trailing {self.peek()}")
        return node

    def expr(self):
        terms = [self.term()]
        while self.peek() in ("+", "-", "\\pm"):
            op = self.take()
            if op == "\\pm":
                raise ParseError("+-")
            t = self.term()
            terms.append(("neg", t) if op == "-" else t)
        return terms[0] if len(terms) == 1 else ("add", terms)

    def _starts_factor(self, tok):
        if tok is None:
            return False
        if tok in ("(", "{", "[") or tok[0].isdigit() or tok[0] == "." or tok.isalpha():
            return True
        return tok.startswith("\\") and tok not in ("\\cdot", "\\times", "\\div", "\\pm", "\\}", "\\{")

    def term(self):
        node = self.unary()
        while True:
            tok = self.peek()
            if tok in ("*", "\\cdot", "\\times"):
                self.take()
                node = ("mul", [node, self.unary()])
            elif tok in ("/", "\\div"):
                self.take()
                node = ("div", node, self.unary())
            elif self._starts_factor(tok):  # implicit multiplication: 2x, 2\pi, x(y+1)
                node = ("mul", [node, self.power()])
            else:
                return node

    def unary(self):
        if self.peek() == "-":
            self.take()
            return ("neg", self.unary())
        if self.peek() == "+":
            self.take()
            return self.unary()
        return self.power()

    def power(self):
        base = self.atom()
        while self.peek() == "!":
            self.take()
            base = ("fn", "factorial", base)
        if self.peek() == "^":
            self.take()
            exp = self.group_or_atom(signed=True)
            return ("pow", base, exp)
        return base

    def group_or_atom(self, signed=False):
        if self.peek() == "{":
            self.take("{")
            e = self.expr()
            self.take("}")
            return e
        if signed and self.peek() == "-":
            self.take()
            return ("neg", self.group_or_atom())
        tok = self.peek()
        if tok is not None and tok[0].isdigit() and "." not in tok:
            # x^23: LaTeX would typeset x^2 3, but whoever writes 2^10 means 2^{10}
            self.take()
            return ("num", Fraction(int(tok)))
        return self.atom()

    def atom(self):
        tok = self.take()
        if tok[0].isdigit() or tok[0] == ".":
            return ("num", Fraction(tok))
        if tok in ("(", "["):
            e = self.expr()
            self.take(")" if tok == "(" else "]")
            return e
        if tok == "{":
            e = self.expr()
            self.take("}")
            return e
        if tok == "|":
            e = self.expr()
            self.take("|")
            return ("fn", "Abs", e)
        if tok.isalpha():
            if self.peek() == "_":  # subscripts: x_1, a_{n}
                self.take()
                sub = self.take()
                if sub == "{":
                    parts = []
                    while self.peek() not in ("}", None):
                        parts.append(self.take())
                    self.take("}")
                    sub = "".join(parts)
                tok = f"{tok}_{sub}"
            if tok in ("e", "i"):  # in a final answer, e is Euler's number and i the imaginary unit
                return ("const", tok)
            return ("sym", tok)
        if tok == "\\frac":
            num = self.group_or_atom()
            den = self.group_or_atom()
            return ("div", num, den)
        if tok == "\\binom":
            return ("fn", "binomial", ("args", self.group_or_atom(), self.group_or_atom()))
        if tok in ("\\log", "\\ln") and self.peek() == "_":  # \log_2 8 = ln 8 / ln 2
            self.take()
            tok = self.peek()
            if tok is not None and tok.isdigit() and len(tok) > 1:  # \log_28: base 2 of 8, as LaTeX sets it
                self.t[self.i : self.i + 1] = [tok[0], tok[1:]]
            base = self.group_or_atom()
            return ("div", ("fn", "log", self.unary_arg()), ("fn", "log", base))
        if tok == "\\sqrt":
            if self.peek() == "[":
                self.take("[")
                root = self.expr()
                self.take("]")
                return ("pow", self.group_or_atom(), ("div", ("num", Fraction(1)), root))
            return ("pow", self.group_or_atom(), ("num", Fraction(1, 2)))
        name = tok[1:]
        if name in _CONSTS:
            return _CONSTS[name]
        if name in _GREEK:
            return ("sym", name)
        if name in _FUNCS:
            if self.peek() == "^":  # \sin^2 x
                self.take()
                p = self.group_or_atom()
                return ("pow", ("fn", name, self.unary_arg()), p)
            return ("fn", name, self.unary_arg())
        raise ParseError(f"unknown command {tok}")

    def unary_arg(self):
        if self.peek() in ("(", "{", "["):
            return self.atom()
        return self.power()


def parse_latex(s):
    """LaTeX string -> expression tree (raises ParseError)."""
    return _Parser(s).parse()


_MAX_EXP = 1000  # refuse a^b with |b| > _MAX_EXP before anyone tries to compute it
_CFUNCS = {"sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "log": cmath.log, "ln": cmath.log, "exp": cmath.exp,
           "arcsin": cmath.asin, "arccos": cmath.acos, "arctan": cmath.atan, "cot": lambda z: 1 / cmath.tan(z),
           "sec": lambda z: 1 / cmath.cos(z), "csc": lambda z: 1 / cmath.sin(z), "Abs": abs}


def _eval(node, env):
    """Evaluate a tree with Python complex numbers (for the fast numeric probe)."""
    kind = node[0]
    if kind == "num":
        return complex(node[1])
    if kind == "sym":
        return env[node[1]]
    if kind == "const":
        return {"pi": math.pi, "oo": float("inf"), "e": math.e, "i": 1j}[node[1]]
    if kind == "add":
        return sum(_eval(n, env) for n in node[1])
    if kind == "mul":
        v = 1
        for n in node[1]:
            v *= _eval(n, env)
        return v
    if kind == "neg":
        return -_eval(node[1], env)
    if kind == "div":
        return _eval(node[1], env) / _eval(node[2], env)
    if kind == "pow":
        b, e = _eval(node[1], env), _eval(node[2], env)
        if abs(e) > _MAX_EXP:
            raise OverflowError("exponent too large")
        return b**e
    if kind == "fn" and node[1] == "binomial":
        n, k = _eval(node[2][1], env), _eval(node[2][2], env)
        if n.imag or k.imag or n.real != int(n.real) or k.real != int(k.real) or not 0 <= n.real <= 1000:
            raise ValueError("binomial")
        return complex(math.comb(int(n.real), int(k.real)))
    if kind == "fn":
        x = _eval(node[2], env)
        if node[1] == "factorial":
            if x.imag or x.real != int(x.real) or not 0 <= x.real <= 170:
                raise ValueError("factorial")
            return complex(math.factorial(int(x.real)))
        return complex(_CFUNCS[node[1]](x))
    raise ValueError(kind)


def _eval_exact(node, env):
    """Evaluate a rational tree exactly with Fractions (ValueError for anything else)."""
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "sym":
        return env[node[1]]
    if kind == "add":
        return sum((_eval_exact(n, env) for n in node[1]), Fraction(0))
    if kind == "mul":
        v = Fraction(1)
        for n in node[1]:
            v *= _eval_exact(n, env)
        return v
    if kind == "neg":
        return -_eval_exact(node[1], env)
    if kind == "div":
        return _eval_exact(node[1], env) / _eval_exact(node[2], env)
    if kind == "pow":
        b, e = _eval_exact(node[1], env), _eval_exact(node[2], env)
        if e.denominator != 1 or abs(e) > 64:
            raise ValueError("not a small integer power")
        return b ** int(e)
    raise ValueError(kind)


def _symbols(node, acc):
    if node[0] == "sym":
        acc.add(node[1])
    elif node[0] in ("add", "mul"):
        for n in node[1]:
            _symbols(n, acc)
    elif node[0] in ("neg",):
        _symbols(node[1], acc)
    elif node[0] in ("div", "pow"):
        _symbols(node[1], acc)
        _symbols(node[2], acc)
    elif node[0] == "fn":
        _symbols(node[2], acc)
    elif node[0] == "args":
        for n in node[1:]:
            _symbols(n, acc)
    return acc


def _probe_values(ta, tb):
    """[(a, b)] values of both trees at 3 random points, or None when they cannot be computed."""
    syms = sorted(_symbols(ta, set()) | _symbols(tb, set()))
    rng = random.Random(0)
    out = []
    for _ in range(3):
        env = {s: complex(rng.uniform(0.3, 1.7), 0) for s in syms}
        try:
            va, vb = _eval(ta, env), _eval(tb, env)
        except (OverflowError, ZeroDivisionError, ValueError, KeyError, TypeError):
            return None
        if any(map(math.isnan, (va.real, va.imag, vb.real, vb.imag))) or any(map(math.isinf, (abs(va), abs(vb)))):
            return None
        out.append((va, vb))
    return out


def _numeric_probe(ta, tb):
    """False when the numeric values differ, else True (None when they cannot be computed)."""
    vals = _probe_values(ta, tb)
    if vals is None:
        return None
    return all(abs(va - vb) <= 1e-9 * max(1.0, abs(va), abs(vb)) for va, vb in vals)


def _ratio_probe(ta, tb):
    """False when a / b is not one nonzero constant at the random points, else True (None: unknown)."""
    vals = _probe_values(ta, tb)
    if vals is None:
        return None
    ratios = []
    for va, vb in vals:
        if abs(va) < 1e-12 or abs(vb) < 1e-12:
            return None
        ratios.append(va / vb)
    return all(abs(r - ratios[0]) <= 1e-9 * max(1.0, abs(ratios[0])) for r in ratios)


def _to_sympy(node):
    import sympy as sp

    kind = node[0]
    if kind == "num":
        return sp.Rational(node[1].numerator, node[1].denominator)
    if kind == "sym":
        return sp.Symbol(node[1])
    if kind == "const":
        return {"pi": sp.pi, "oo": sp.oo, "e": sp.E, "i": sp.I}[node[1]]
    if kind == "add":
        return sp.Add(*[_to_sympy(n) for n in node[1]])
    if kind == "mul":
        return sp.Mul(*[_to_sympy(n) for n in node[1]])
    if kind == "neg":
        return -_to_sympy(node[1])
    if kind == "div":
        return _to_sympy(node[1]) / _to_sympy(node[2])
    if kind == "pow":
        b, e = _to_sympy(node[1]), _to_sympy(node[2])
        if e.is_number and abs(e) > _MAX_EXP:
            raise OverflowError("exponent too large")
        return sp.Pow(b, e)
    if kind == "fn" and node[1] == "binomial":
        return sp.binomial(_to_sympy(node[2][1]), _to_sympy(node[2][2]))
    if kind == "fn":
        f = {"ln": sp.log, "Abs": sp.Abs, "factorial": sp.factorial}.get(node[1]) or getattr(sp, {
            "arcsin": "asin", "arccos": "acos", "arctan": "atan"}.get(node[1], node[1]))
        return f(_to_sympy(node[2]))
    raise ValueError(kind)


def sympy_equal(a, b):
    """The slow, symbolic check a == b. Runs in the worker process (see _Worker)."""
    import sympy as sp

    ea, eb = _to_sympy(parse_latex(a)), _to_sympy(parse_latex(b))
    return bool(sp.simplify(ea - eb) == 0)


def sympy_proportional(a, b, positive=False):
    """Is a = c * b for a nonzero (positive) constant c? Runs in the worker process."""
    import sympy as sp

    ea, eb = _to_sympy(parse_latex(a)), _to_sympy(parse_latex(b))
    if ea == 0 or eb == 0:
        return False
    q = sp.simplify(ea / eb)
    if q.free_symbols or not q.is_number or q == 0 or not q.is_finite:
        return False
    return bool(q.is_positive) if positive else bool(q.is_nonzero)


_PARSE_ERRORS = (ParseError, ValueError, ZeroDivisionError, IndexError, RecursionError, OverflowError)


def _expr_equal(a, b):
    try:
        ta, tb = parse_latex(a), parse_latex(b)
    except _PARSE_ERRORS:
        return False
    if _numeric_probe(ta, tb) is False:
        return False
    return _WORKER.call("eq", a, b)


def _proportional(a, b, positive):
    """Is a = c * b for a nonzero constant c (c > 0 when positive)? Equations and inequalities."""
    try:
        ta, tb = parse_latex(a), parse_latex(b)
    except _PARSE_ERRORS:
        return False
    if _symbols(ta, set()) != _symbols(tb, set()) or _ratio_probe(ta, tb) is False:
        return False
    return _WORKER.call("ppos" if positive else "prop", a, b)


# ----------------------------------------------------------------------------------------------
# the sympy worker: CPU-time limits inside, a wall-clock safety net outside

_OPS = {"eq": sympy_equal, "prop": sympy_proportional, "ppos": lambda a, b: sympy_proportional(a, b, positive=True)}
_BUDGET = threading.local()  # CPU seconds of sympy left to the is_equiv call running in this thread


class _CpuTimeout(Exception):
    pass


def _on_sigprof(signum, frame):
    raise _CpuTimeout()


def _serve():
    """The worker loop: one JSON request [op, a, b, cpu_limit] a line, one reply [verdict, cpu_used]."""
    import sympy  # noqa: F401  (pay the import before saying ready)

    sys.setrecursionlimit(5000)
    signal.signal(signal.SIGPROF, _on_sigprof)
    print("ready", flush=True)
    for line in sys.stdin:
        op, a, b, limit = json.loads(line)
        t0 = time.process_time()
        try:
            try:
                # ITIMER_PROF counts this process's CPU time (user + system), not wall time, so a
                # busy machine slows the check down but does not change its verdict
                signal.setitimer(signal.ITIMER_PROF, max(float(limit), 1e-4))
                ok = _OPS[op](a, b)
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
            reply = "1" if ok else "0"
        except _CpuTimeout:
            reply = "t"
        except Exception:
            reply = "0"
        print(json.dumps([reply, time.process_time() - t0]), flush=True)


class _Worker:
    """A sympy child process. The CPU-time limit is enforced inside it; the parent waits at most
    WALL_LIMIT_S wall seconds per call (a wedged worker, say in C code that ignores signals) and
    then kills and later restarts it."""

    def __init__(self):
        self.proc = None
        self.lock = threading.Lock()

    def _start(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
        )
        if self._readline(120.0) != "ready":  # the one-time sympy import is not counted as a call
            self._kill()
            raise RuntimeError("grader.py: the sympy worker did not start")

    def _readline(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        return self.proc.stdout.readline().strip()

    def _kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def warmup(self):
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._start()

    def call(self, op, a, b):
        """The verdict of sympy op(a, b) within the CPU budget left to this is_equiv call."""
        left = getattr(_BUDGET, "left", TIMEOUT_S)
        if left <= 0:
            STATS["timeouts"] += 1
            return False
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            STATS["sympy_calls"] += 1
            self.proc.stdin.write(json.dumps([op, a, b, left]) + "\n")
            self.proc.stdin.flush()
            line = self._readline(WALL_LIMIT_S + 10 * left)
            if not line:
                STATS["timeouts"] += 1
                self._kill()
                _BUDGET.left = 0.0
                return False
        verdict, used = json.loads(line)
        _BUDGET.left = left - used
        if verdict == "t":
            STATS["timeouts"] += 1
            _BUDGET.left = 0.0
            return False
        return verdict == "1"


_WORKER = _Worker()


def warmup():
    """Start the sympy worker now, so that the first comparison does not pay for its start-up."""
    _WORKER.warmup()


# ----------------------------------------------------------------------------------------------
# the public verdicts

_PERCENT_SIDE_RE = re.compile(r"%|\bpercent\b|\bpct\b|\bper\s+cent\b", re.IGNORECASE)


_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")


def _answer_part(s):
    """A final answer passed with its surroundings ("\\boxed{5}", "Final Answer: ... 5", "#### 5")
    is reduced to the answer; a plain answer is returned as it is."""
    if ("\\boxed" in s or "\\fbox" in s or "\n" in s or "####" in s or "nswer" in s or len(s) > 200
            or _VERB_RE.search(" " + s) or ("$" in s and _WORD_RE.search(_MATH_SPAN_RE.sub(" ", s)))
            or _is_prose(s)):
        return extract_answer(s) or s
    return s


def _percent_equal(pred, gold, a, b):
    """35\\% against 0.35: a percentage is also its value divided by 100."""
    pa, pb = bool(_PERCENT_SIDE_RE.search(pred)), bool(_PERCENT_SIDE_RE.search(gold))
    if pa == pb:
        return False
    na, nb = parse_number(a), parse_number(b)
    if na is None or nb is None:
        return False
    if pa:
        na = (na[0] / 100, None)
    else:
        nb = (nb[0] / 100, None)
    return na[0] == nb[0]


def is_equiv(pred, gold):
    """Are two final-answer strings the same answer? (A pred passed with its surroundings, such as
    "Final Answer: The final answer is $42$.", is first reduced to its answer.)"""
    if pred is None or gold is None:
        return False
    try:
        return _equiv_answers(_answer_part(str(pred)), gold)
    except Exception:
        return False


def _equiv_answers(pred, gold):
    """is_equiv of an extracted answer."""
    if pred is None or gold is None:
        return False
    try:
        pred, gold = str(pred), str(gold)
        if "\\boxed" in gold or "\\fbox" in gold:  # a gold answer is an answer; only unwrap its box
            gold = extract_answer(gold) or gold
        a, b = normalize(pred), normalize(gold)
        if not a or not b:
            return False
        if a == b:
            return True
        _BUDGET.left = TIMEOUT_S
        return _equiv_norm(a, b) or _percent_equal(pred, gold, a, b)
    except RecursionError:
        return False
    except Exception:  # a grader bug must cost a false negative, never a crashed training run
        return False


def grade(response, gold):
    """Is a single-problem response correct?"""
    try:
        return _equiv_answers(extract_answer(response), gold)
    except Exception:
        return False


if __name__ == "__main__":
    if "--serve" in sys.argv:  # the sympy worker (see _Worker)
        _serve()
        sys.exit(0)
    ap = argparse.ArgumentParser(description="Is PRED the same answer as GOLD? (python grader.py PRED GOLD)")
    ap.add_argument("pred")
    ap.add_argument("gold")
    args = ap.parse_args()
    print(is_equiv(args.pred, args.gold))
