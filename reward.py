"""
reward.py: answer extraction and checking for math RL, regex + sympy only.

The reward is the only training signal, so the grader has to be right in both
directions (no false positives, few false negatives) and must never hang.

Public API (bcr.py, eval.py and the tests use these names):

    extract_answer(text)        -> str | None   final answer of a single-problem response
    split_answers(text, n)      -> list[str|None]  answers of an N-problem (BCR) response
    is_equiv(pred, gold)        -> bool          are two final answers the same?
    grade(response, gold)       -> bool          extract_answer + is_equiv
    score(response, golds)      -> list[bool]    split_answers + is_equiv, one verdict per problem

How is_equiv decides, cheapest test first:
  1. normalise both strings ($, \\text{}, \\left/\\right, \\dfrac, ^\\circ, \\%, thousands commas,
     a leading "x =", trailing ".", spaces) and compare the strings;
  2. structures: ordered tuples and intervals (bracket types must match), unions of intervals,
     sets and comma lists (unordered, complete), equations; items are compared recursively;
  3. numbers: integers and decimals are compared exactly as Fractions, never through float;
     a decimal matches a non-terminating fraction only when it is that fraction correctly
     rounded to at least 2 decimals;
  4. expressions: a small hand-written LaTeX parser builds an expression tree; we evaluate both
     trees numerically at random points (plain Python floats, microseconds) and if they differ
     the answer is "no"; if they agree, sympy.simplify(a - b) == 0 decides, in a worker
     process with a hard time limit.

Bounded time: sympy runs in a child process (`python reward.py --serve`) that we talk to over a
pipe and kill when it takes longer than TIMEOUT_S. This works from any thread and inside worker
processes (no signal.alarm). A timeout is a False verdict and is counted in STATS["timeouts"].
Inputs longer than MAX_LEN characters are only compared as strings.
"""
import argparse
import json
import math
import os
import random
import re
import select
import subprocess
import sys
import threading
import time
from fractions import Fraction

TIMEOUT_S = 1.0  # hard limit for one sympy comparison
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


_MARKER_RE = re.compile(r"(?:the final answer is|the answer is|####|answer:)\s*(.+)", re.IGNORECASE)


def _after_think(text):
    """Only the text after the last </think> counts when a model thinks out loud."""
    i = text.rfind("</think>")
    return text if i == -1 else text[i + len("</think>") :]


def _clean_inline(ans):
    ans = ans.strip()
    ans = re.sub(r"^\*+|\*+$", "", ans).strip().rstrip(".").strip()
    if ans.startswith("$") and ans.endswith("$") and len(ans) > 1:
        ans = ans.strip("$").strip().rstrip(".").strip()
    return ans or None


def extract_answer(text):
    """Final answer of a single-problem response: last box, else a final-answer marker, else None."""
    if text is None:
        return None
    text = _after_think(text)
    boxes = find_boxes(text)
    if boxes:
        return boxes[-1][2]
    hits = list(_MARKER_RE.finditer(text))
    if hits:
        line = hits[-1].group(1).split("\n")[0]
        return _clean_inline(line)
    return None


# "Answer 3:", "Answer 3::", "**Answer 3:**", "**Answer 3**:"; \b stops "Answer 1" matching "Answer 10"
_ANSWER_LINE_RE = re.compile(r"(?:\*\*)?\s*Answer\s+(\d+)\b\s*(?:\*\*)?\s*:+\s*(?:\*\*)?", re.IGNORECASE)
_HEADER_RE = re.compile(r"^[ \t]*(?:#+[ \t]*|\*\*)?Problem[ \t]+(\d+)\b", re.IGNORECASE | re.MULTILINE)


def split_answers(text, n):
    """Answers of an N-problem response, one per problem, None where a problem has no answer.

    Problem k's answer is the content of the *last* `Answer k:` marker: its box, or the bare text
    up to the end of the line (or up to the next `Answer j:` marker on the same line). One marker
    with several different boxes is a hedge and counts as no answer. Failing any `Answer k:`
    marker, the last box inside the `### Problem k` section is used. Only text after </think>
    counts. An answer written for problem j is never credited to problem k.
    """
    text = _after_think(text or "")
    answers = [None] * n
    found = [False] * n
    marks = list(_ANSWER_LINE_RE.finditer(text))
    spans = []  # where each "Answer j:" segment lies, so the fallback never reads another's answer
    for i, m in enumerate(marks):
        k = int(m.group(1))
        end = text.find("\n", m.end())
        end = len(text) if end == -1 else end
        if i + 1 < len(marks) and marks[i + 1].start() < end:
            end = marks[i + 1].start()
        spans.append((m.start(), end))
        if not 1 <= k <= n:
            continue
        seg = text[m.end() : end]
        boxes = {b[2] for b in find_boxes(seg)}
        if len(boxes) == 1:
            ans = boxes.pop()
        elif len(boxes) > 1:
            ans = None  # "Answer 1: \boxed{1} \boxed{2}": a hedge, no credit
        elif "\\boxed" in seg or "\\fbox" in seg:
            ans = None  # an unbalanced box: cut off mid-answer
        else:
            ans = _clean_inline(seg)
        answers[k - 1] = ans  # the last marker wins (self-corrections, final summary blocks)
        found[k - 1] = True
    # fallback: the last box inside the problem's own section, outside any "Answer j:" segment
    masked = list(text)
    for a, b in spans:
        masked[a:b] = " " * (b - a)
    text = "".join(masked)
    heads = list(_HEADER_RE.finditer(text))
    for i, h in enumerate(heads):
        k = int(h.group(1))
        if not 1 <= k <= n or found[k - 1]:
            continue
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        boxes = find_boxes(text[h.end() : end])
        if boxes:
            answers[k - 1] = boxes[-1][2]
    return answers


# ----------------------------------------------------------------------------------------------
# normalisation


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


_TEXT_CMDS = ("text", "textbf", "textit", "mathrm", "mathbf", "mbox", "operatorname")


def normalize(s):
    """Canonical string form of an answer; equal strings mean equal answers."""
    if s is None:
        return None
    s = str(s).strip()
    if len(s) > 10 * MAX_LEN:
        return s
    s = s.replace("$", "")
    s = re.sub(r"\\[,;:! ]", " ", s)  # spacing commands
    s = s.replace("\\displaystyle", "")
    s = re.sub(r"\\left(?![a-zA-Z])", "", s)  # \left( -> (, but never \leftarrow
    s = re.sub(r"\\right(?![a-zA-Z])", "", s)
    s = re.sub(r"\\[dt]frac(?![a-zA-Z])", r"\\frac", s)
    for c in _TEXT_CMDS:
        if "\\" + c in s:
            s = _strip_cmd_arg(s, c)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?", "", s)  # degrees
    s = s.replace("\\%", "").replace("%", "")
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)  # \frac12
    s = re.sub(r"\\frac\s*(\d)\s*\{", r"\\frac{\1}{", s)  # \frac1{x}
    s = re.sub(r"\\sqrt\s*(\d)", r"\\sqrt{\1}", s)  # \sqrt2
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)  # 1,000 -> 1000 (exactly 3 digits after)
    s = re.sub(r"\{,\}", "", s)  # 1{,}000
    s = s.strip().rstrip(".").strip()
    # a leading "x =" / "\theta =" when it is the only "="
    m = re.match(r"^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?\s*=\s*(.+)$", s)
    if m and "=" not in m.group(1):
        s = m.group(1)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"(?<![a-zA-Z]) | (?![a-zA-Z])", "", s)  # spaces matter only between letters
    s = re.sub(r"^(-?\d+)\.0+$", r"\1", s)  # 12.0 -> 12
    return s


# ----------------------------------------------------------------------------------------------
# numbers

_INT_RE = re.compile(r"^[+-]?\d+$")
_DEC_RE = re.compile(r"^[+-]?(?:\d+\.\d*|\.\d+)$")
_FRAC_RE = re.compile(r"^([+-]?)\\frac\{([+-]?\d+)\}\{([+-]?\d+)\}$")
_SLASH_RE = re.compile(r"^([+-]?\d+)/(\d+)$")


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


# ----------------------------------------------------------------------------------------------
# structures


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


def _structure(s):
    """('union'|'bracket'|'set'|'list'|'eq'|'scalar', payload)."""
    if len(_split_top(s, "\\cup")) > 1:
        return "union", _split_top(s, "\\cup")
    p = _outer_pair(s)
    if p:
        o, inner, c = p
        if o == "{":
            return "set", [x for x in _split_top(inner) if x]
        items = _split_top(inner)
        if len(items) > 1:
            return "bracket", (o, items, c)
    items = _split_top(s)
    if len(items) > 1:
        return "list", items
    if s.count("=") == 1 and "\\le" not in s and "\\ge" not in s:
        return "eq", tuple(x.strip() for x in s.split("="))
    return "scalar", s


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


def _equiv_norm(a, b):
    if a == b:
        return True
    if not a or not b or len(a) > MAX_LEN or len(b) > MAX_LEN:
        return False
    ka, pa = _structure(a)
    kb, pb = _structure(b)
    if ka != kb:
        # "(1,2)" as a tuple vs "1,2" as a list are different answers; a one-item set vs scalar too
        return False
    if ka == "union":
        return _unordered_equal(pa, pb, _equiv_norm)
    if ka == "bracket":
        (oa, xa, ca), (ob, xb, cb) = pa, pb
        return oa == ob and ca == cb and len(xa) == len(xb) and all(map(_equiv_norm, xa, xb))
    if ka in ("set", "list"):
        return _unordered_equal(pa, pb, _equiv_norm)
    if ka == "eq":
        (la, ra), (lb, rb) = pa, pb
        if _equiv_norm(la, lb) and _equiv_norm(ra, rb):
            return True
        if _equiv_norm(la, rb) and _equiv_norm(ra, lb):
            return True
        return _expr_equal(f"{la}-({ra})", f"{lb}-({rb})") or _expr_equal(f"{la}-({ra})", f"{rb}-({lb})")
    return _scalar_equal(a, b)


def _scalar_equal(a, b):
    na, nb = parse_number(a), parse_number(b)
    if na is not None and nb is not None:
        return _numbers_equal(na, nb)
    return _expr_equal(a, b)


# ----------------------------------------------------------------------------------------------
# a small LaTeX expression parser -> tree of tuples
#   node := ('num', Fraction) | ('sym', name) | ('const', 'pi'|'e'|'i'|'oo')
#         | ('add', [nodes]) | ('mul', [nodes]) | ('neg', node) | ('div', a, b)
#         | ('pow', base, exp) | ('fn', name, arg)

_TOKEN_RE = re.compile(r"\s*(\d+\.\d*|\.\d+|\d+|\\[a-zA-Z]+|[a-zA-Z]|\\\{|\\\}|[+\-*/^()\[\]{}!,|_])")
_FUNCS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "arcsin", "arccos", "arctan"}
_CONSTS = {"pi": ("const", "pi"), "infty": ("const", "oo"), "infinity": ("const", "oo")}
_GREEK = {"alpha", "beta", "gamma", "delta", "theta", "phi", "lambda", "mu", "sigma", "omega", "tau", "rho", "epsilon"}


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
            self.take()  # x^23 in LaTeX means x^2 * 3; x^{23} is the 23rd power
            return ("num", Fraction(int(tok[0]))) if len(tok) == 1 else self._digit_split(tok)
        return self.atom()

    def _digit_split(self, tok):
        # put the remaining digits back as a separate token
        self.t.insert(self.i, tok[1:])
        return ("num", Fraction(int(tok[0])))

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
            return ("sym", tok)
        if tok == "\\frac":
            num = self.group_or_atom()
            den = self.group_or_atom()
            return ("div", num, den)
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


def _eval(node, env):
    """Evaluate a tree with Python complex numbers (for the fast numeric probe)."""
    kind = node[0]
    if kind == "num":
        return complex(node[1])
    if kind == "sym":
        return env[node[1]]
    if kind == "const":
        return {"pi": math.pi, "oo": float("inf"), "e": math.e}[node[1]]
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
    if kind == "fn":
        import cmath

        x = _eval(node[2], env)
        f = {"sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "log": cmath.log, "ln": cmath.log,
             "exp": cmath.exp, "arcsin": cmath.asin, "arccos": cmath.acos, "arctan": cmath.atan,
             "cot": lambda z: 1 / cmath.tan(z), "sec": lambda z: 1 / cmath.cos(z), "csc": lambda z: 1 / cmath.sin(z),
             "Abs": abs}.get(node[1])
        if node[1] == "factorial":
            if x.imag or x.real != int(x.real) or not 0 <= x.real <= 170:
                raise ValueError("factorial")
            return complex(math.factorial(int(x.real)))
        return complex(f(x))
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
    return acc


def _numeric_probe(ta, tb):
    """True/False when the numeric values decide, None when they cannot (overflow, domain)."""
    syms = sorted(_symbols(ta, set()) | _symbols(tb, set()))
    rng = random.Random(0)
    decided_equal = True
    for _ in range(3):
        env = {s: complex(rng.uniform(0.3, 1.7), 0) for s in syms}
        try:
            va, vb = _eval(ta, env), _eval(tb, env)
        except (OverflowError, ZeroDivisionError, ValueError, KeyError, TypeError):
            return None
        if any(map(math.isnan, (va.real, va.imag, vb.real, vb.imag))) or any(map(math.isinf, (abs(va), abs(vb)))):
            return None
        if abs(va - vb) > 1e-9 * max(1.0, abs(va), abs(vb)):
            return False
    return decided_equal


def _to_sympy(node):
    import sympy as sp

    kind = node[0]
    if kind == "num":
        return sp.Rational(node[1].numerator, node[1].denominator)
    if kind == "sym":
        return sp.Symbol(node[1])
    if kind == "const":
        return {"pi": sp.pi, "oo": sp.oo, "e": sp.E}[node[1]]
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
    if kind == "fn":
        f = {"ln": sp.log, "Abs": sp.Abs, "factorial": sp.factorial}.get(node[1]) or getattr(sp, {
            "arcsin": "asin", "arccos": "acos", "arctan": "atan"}.get(node[1], node[1]))
        return f(_to_sympy(node[2]))
    raise ValueError(kind)


def sympy_equal(a, b):
    """The slow, symbolic check. Runs in the worker process (see _Worker)."""
    import sympy as sp

    ea, eb = _to_sympy(parse_latex(a)), _to_sympy(parse_latex(b))
    return bool(sp.simplify(ea - eb) == 0)


def _expr_equal(a, b):
    try:
        ta, tb = parse_latex(a), parse_latex(b)
    except (ParseError, ValueError, ZeroDivisionError, IndexError, RecursionError):
        return False
    probe = _numeric_probe(ta, tb)
    if probe is False:
        return False
    return _WORKER.equal(a, b)


class _Worker:
    """A sympy child process with a hard per-call time limit; killed and restarted on timeout."""

    def __init__(self):
        self.proc = None
        self.lock = threading.Lock()

    def _start(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
        )
        if self._readline(60.0) != "ready":  # the one-time sympy import is not counted as a call
            self._kill()
            raise RuntimeError("reward.py: the sympy worker did not start")

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

    def equal(self, a, b):
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            STATS["sympy_calls"] += 1
            self.proc.stdin.write(json.dumps([a, b]) + "\n")
            self.proc.stdin.flush()
            line = self._readline(TIMEOUT_S)
            if line is None or line == "":
                STATS["timeouts"] += 1
                self._kill()
                return False
            return line == "1"


_WORKER = _Worker()


def warmup():
    """Start the sympy worker now, so that the first comparison does not pay for its start-up."""
    _WORKER.warmup()


def _serve():
    import sympy  # noqa: F401  (pay the import before saying ready)

    sys.setrecursionlimit(5000)
    print("ready", flush=True)
    for line in sys.stdin:
        a, b = json.loads(line)
        try:
            ok = sympy_equal(a, b)
        except Exception:
            ok = False
        print("1" if ok else "0", flush=True)


# ----------------------------------------------------------------------------------------------
# the public verdicts


def is_equiv(pred, gold):
    """Are two final-answer strings the same answer?"""
    if pred is None or gold is None:
        return False
    a, b = normalize(pred), normalize(gold)
    if not a or not b:
        return False
    try:
        return _equiv_norm(a, b)
    except RecursionError:
        return False


def grade(response, gold):
    """Is a single-problem response correct?"""
    return is_equiv(extract_answer(response), gold)


def score(response, golds):
    """Per-problem correctness of an N-problem response; the BCR reward is the mean of this."""
    return [is_equiv(p, g) for p, g in zip(split_answers(response, len(golds)), golds)]


# ----------------------------------------------------------------------------------------------
# python reward.py --bench: grade calls per second on one core


def _bench(data_dir):
    def load(name):
        path = os.path.join(data_dir, name)
        with open(path) as f:
            return [json.loads(x) for x in f]

    cases = []
    for r in load("gsm8k/raw/test.jsonl"):
        gold = r["answer"].split("####")[-1].strip().replace(",", "")
        cases.append((r["answer"], gold))
    for r in load("math500/raw/test.jsonl"):
        cases.append((r["solution"], r["answer"]))
    rng = random.Random(0)
    golds = [g for _, g in cases]
    rng.shuffle(golds)
    pairs = cases + [(resp, g) for (resp, _), g in zip(cases, golds)]  # half right, half wrong
    warmup()
    t = time.perf_counter()
    right = sum(grade(r, g) for r, g in pairs)
    dt = time.perf_counter() - t
    print(f"{len(pairs)} grade calls ({len(cases)} own answers, {len(cases)} shuffled) in {dt:.2f}s: "
          f"{len(pairs) / dt:,.0f} calls/s on one core; {right} true; sympy calls {STATS['sympy_calls']}, "
          f"timeouts {STATS['timeouts']}")


if __name__ == "__main__":
    if "--serve" in sys.argv:
        _serve()
        sys.exit(0)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", action="store_true", help="grade calls per second over GSM8K and MATH-500")
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shared", "data"))
    ap.add_argument("pred", nargs="?")
    ap.add_argument("gold", nargs="?")
    args = ap.parse_args()
    if args.bench:
        _bench(args.data_dir)
    elif args.pred is not None and args.gold is not None:
        print(is_equiv(args.pred, args.gold))
    else:
        ap.print_help()
