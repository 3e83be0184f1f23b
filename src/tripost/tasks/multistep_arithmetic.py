"""Multistep Arithmetic (BIG-Bench): generator, scripted solver, parser, scripted FBK and IMP.

docs/method.md §1 (data and rationale format), §2.3 (scripted FBK), §2.5 (IMP).

A question is a tree of parenthesised groups, e.g. `((-2 - -3 * -7) - (-5 * -4 - 2)) =`. The gold
rationale names every innermost group with a letter, calculates each letter, then the final equation:

    (1) This equation can be written as "(A - B)", where A = (-2 - -3 * -7) and B = (-5 * -4 - 2).
    (2) Let's calculate A = (-2 - -3 * -7) = (-2 - (-3 * -7)) = (-2 - 21) = -23.
    (3) Let's calculate B = (-5 * -4 - 2) = ((-5 * -4) - 2) = (20 - 2) = 18.
    (4) Then, the final equation is (A - B) = (-23 - 18) = -41.
    (Final response) So the answer is -41.

A calculation first writes the group fully parenthesised (`*` before `+`/`-`, left to right), then
reduces one bracket per `=`: all brackets of height 1 left to right, then those of height 2, and so on
(the order of the paper's data). Nested questions use the same final-equation step for every level:
`((A + B) - (C * D)) = ((28 + 51) - (0 * 6)) = (79 - (0 * 6)) = (79 - 0) = 79`.

Checking (FBK) and continuing (IMP, `corrupt`) share one state machine: partition -> one calculation
per letter, in the order the partition lists them -> final equation -> final response. FBK accepts any
step that is *true* (a partition that re-substitutes to the question, any `=` chain whose links are
equal, ...), not only the canonical text, so IMP continues from whatever correct prefix a model wrote:
it reads the prefix's partition and values and writes the rest from there.
"""

from __future__ import annotations

import ast
import math
import operator
import random
import re
from dataclasses import dataclass, field

from tripost import formats
from tripost.formats import FINAL_LABEL, Feedback, Step
from tripost.tasks.base import Example, Task

INFO = (
    "Recall that the order of operations in mathematics is as follows: (1) Parentheses, (2) exponents, "
    "(3) multiplication and division (from left to right), (4) addition and multiplication (from left to "
    "right). So, remember to always compute the expressions inside parentheses or brackets first."
)  # sic "addition and multiplication": the paper's prompt text (docs/method.md §1.1)

OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MISSING = "<missing>"  # segment of a step that is absent; never part of a correct step

PARTITION = "This equation can be written as"
CALCULATE = "Let's calculate"
FINAL_EQ = "Then, the final equation is"

# Which mistakes `corrupt` can plant in each kind of step.
_KINDS = {
    "partition": ("definition", "pattern_op"),  # a miscopied group / a wrong operator in the pattern
    "calc": ("arith", "precedence"),  # a wrong intermediate result / left-to-right instead of * first
    "final": ("pattern_op", "substitution", "arith"),
    "answer": ("answer",),  # a final answer that does not match the final equation
}


# ---------------------------------------------------------------------------------------------
# Expressions. A written expression is a number (int), a letter (str) or an Expr; a calculation
# tree is a number or a tuple (op, left, right).


@dataclass(frozen=True)
class Expr:
    """Operands and operators alternate in `items`; `paren` is whether it is written inside ( )."""

    items: tuple
    paren: bool = True

    @property
    def operands(self) -> tuple:
        return self.items[0::2]


_TOKEN = re.compile(r"\s*([0-9]+|[-+*()]|[A-Z])")


def _tokens(text: str, letters: bool) -> list[str]:
    out, pos, text = [], 0, text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or (m.group(1).isalpha() and not letters):
            raise ValueError(f"unexpected character in {text!r} at position {pos}")
        out.append(m.group(1))
        pos = m.end()
    return out


def parse_expr(text: str, letters: bool = False):
    """`(-2 - -3 * -7)` -> Expr. A `-` right before a number where an operand is due is its sign."""
    toks = _tokens(text, letters)
    pos = 0

    def operand():
        nonlocal pos
        tok = toks[pos] if pos < len(toks) else None
        if tok == "(":
            pos += 1
            items = sequence()
            if pos >= len(toks) or toks[pos] != ")":
                raise ValueError(f"unbalanced parentheses in {text!r}")
            pos += 1
            return Expr(items)
        if tok == "-" and pos + 1 < len(toks) and toks[pos + 1].isdigit():
            pos += 2
            return -int(toks[pos - 1])
        if tok is not None and tok.isdigit():
            pos += 1
            return int(tok)
        if tok is not None and tok.isalpha():
            pos += 1
            return tok
        raise ValueError(f"expected a number or '(' in {text!r}")

    def sequence() -> tuple:
        nonlocal pos
        items = [operand()]
        while pos < len(toks) and toks[pos] in OPS:
            items.append(toks[pos])
            pos += 1
            items.append(operand())
        return tuple(items)

    try:
        items = sequence()
    except RecursionError:
        raise ValueError("expression nested too deeply") from None
    if pos != len(toks):
        raise ValueError(f"unexpected {toks[pos]!r} in {text!r}")
    return items[0] if len(items) == 1 else Expr(items, paren=False)


def render(node) -> str:
    if isinstance(node, Expr):
        body = " ".join(x if k % 2 else render(x) for k, x in enumerate(node.items))
        return f"({body})" if node.paren else body
    return str(node)


def to_tree(node, precedence: bool = True):
    """Calculation tree of a letter-free expression; precedence=False folds strictly left to right
    (the classic mistake `corrupt` plants)."""
    if isinstance(node, int):
        return node
    if not isinstance(node, Expr):
        raise ValueError(f"{node} is not a number")
    operands = [to_tree(x, precedence) for x in node.operands]
    ops = node.items[1::2]
    if not precedence:
        tree = operands[0]
        for op, x in zip(ops, operands[1:]):
            tree = (op, tree, x)
        return tree
    terms, signs = [operands[0]], []
    for op, x in zip(ops, operands[1:]):
        if op == "*":
            terms[-1] = ("*", terms[-1], x)
        else:
            signs.append(op)
            terms.append(x)
    tree = terms[0]
    for op, x in zip(signs, terms[1:]):
        tree = (op, tree, x)
    return tree


def show(tree) -> str:
    return str(tree) if isinstance(tree, int) else f"({show(tree[1])} {tree[0]} {show(tree[2])})"


def value(tree) -> int:
    return tree if isinstance(tree, int) else OPS[tree[0]](value(tree[1]), value(tree[2]))


def _reduction_order(tree) -> list[tuple]:
    """Paths of the brackets in the order they are reduced: by height, then left to right."""
    found = []

    def walk(t, path) -> int:
        if isinstance(t, int):
            return 0
        height = 1 + max(walk(t[1], path + (1,)), walk(t[2], path + (2,)))
        found.append((height, path))
        return height

    walk(tree, ())
    return [path for _, path in sorted(found)]


def _get(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def _set(tree, path, new):
    if not path:
        return new
    parts = list(tree)
    parts[path[0]] = _set(tree[path[0]], path[1:], new)
    return tuple(parts)


def _python_value(text: str) -> int:
    """Independent check of a question's value with Python's own grammar (no eval)."""
    kinds = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}

    def ev(n):
        if isinstance(n, ast.BinOp) and type(n.op) in kinds:
            return kinds[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return -ev(n.operand)
        if isinstance(n, ast.Constant) and type(n.value) is int:
            return n.value
        raise ValueError(f"unsupported expression {text!r}")

    return ev(ast.parse(text, mode="eval").body)


def _chain(node, mistake: str | None = None, rng: random.Random | None = None) -> list[str]:
    """The `=` chain of one calculation: as written, fully parenthesised, one reduction per link.
    `mistake` plants one wrong link ("precedence" or "arith") and carries it to the end."""
    texts = [render(node)]
    tree = to_tree(node)
    if mistake == "precedence":
        wrong = to_tree(node, precedence=False)
        if value(wrong) == value(tree):
            raise _NotApplicable
        tree = wrong
    elif mistake not in (None, "arith"):
        raise _NotApplicable
    if show(tree) != texts[0]:
        texts.append(show(tree))
    paths = _reduction_order(tree)
    planted = _pick_arith_error(tree, paths, rng) if mistake == "arith" else None
    for j, path in enumerate(paths):
        op, a, b = _get(tree, path)
        result = planted[1] if planted and planted[0] == j else OPS[op](a, b)
        tree = _set(tree, path, result)
        texts.append(show(tree))
    return texts


def _pick_arith_error(tree, paths, rng) -> tuple[int, int]:
    """(reduction index, wrong result) such that the planted link really changes the value."""
    befores = []
    for path in paths:
        befores.append(tree)
        op, a, b = _get(tree, path)
        tree = _set(tree, path, OPS[op](a, b))
    order = list(range(len(paths)))
    rng.shuffle(order)
    for j in order:
        before = befores[j]
        op, a, b = _get(before, paths[j])
        for wrong in _wrong_numbers(OPS[op](a, b), rng):
            if value(_set(before, paths[j], wrong)) != value(before):
                return j, wrong
    raise _NotApplicable


def _wrong_numbers(v: int, rng: random.Random) -> list[int]:
    """Plausible slips for a correct result v: off by one, two or ten, or the wrong sign."""
    out = [v + 1, v - 1, v + 2, v - 2, v + 10, v - 10] + ([-v] if v else [])
    rng.shuffle(out)
    return out


def _substitute(node, values: dict):
    if isinstance(node, str):
        return values[node]
    if isinstance(node, Expr):
        return Expr(tuple(x if k % 2 else _substitute(x, values) for k, x in enumerate(node.items)), node.paren)
    return node


def _sites(node, want: str, path=()):
    """Paths of the numbers ("num") or operators ("op") of a written expression."""
    if isinstance(node, Expr):
        for k, x in enumerate(node.items):
            if k % 2:
                if want == "op":
                    yield path + (k,)
            else:
                yield from _sites(x, want, path + (k,))
    elif isinstance(node, int) and want == "num":
        yield path


def _replace(node, path, new):
    if not path:
        return new
    items = list(node.items)
    items[path[0]] = _replace(items[path[0]], path[1:], new)
    return Expr(tuple(items), node.paren)


def _miscopy(node, rng: random.Random, only_ops: bool = False):
    """The expression with one number or operator changed, as in a copying slip."""
    sites = [(p, "op") for p in _sites(node, "op")]
    if not only_ops:
        sites += [(p, "num") for p in _sites(node, "num")]
    if not sites:
        raise _NotApplicable
    path, kind = rng.choice(sites)
    old = _get_item(node, path)
    pool = [o for o in OPS if o != old] if kind == "op" else [n for n in range(-9, 10) if n != old]
    return _replace(node, path, rng.choice(pool))


def _get_item(node, path):
    for k in path:
        node = node.items[k]
    return node


def _leaf_group(node) -> bool:
    return isinstance(node, Expr) and node.paren and all(isinstance(x, int) for x in node.operands)


# ---------------------------------------------------------------------------------------------
# The state machine shared by FBK, IMP, solve and corrupt.


@dataclass(frozen=True)
class _Plan:
    pattern: object  # the question with letters for its parts, e.g. Expr for "(A - B)"
    defs: tuple  # ((letter, written expression), ...) in the order they are calculated


@dataclass
class _State:
    plan: _Plan | None = None
    values: dict = field(default_factory=dict)  # letter -> calculated value
    labels: dict = field(default_factory=dict)  # "partition" / letter / "final" -> step label
    result: int | None = None  # value of the final equation
    answered: bool = False

    def expected(self) -> tuple[str, int]:
        """The next step: ("partition"|"calc"|"final"|"answer"|"done", index of the letter)."""
        if self.plan is None:
            return "partition", 0
        if len(self.values) < len(self.plan.defs):
            return "calc", len(self.values)
        if self.result is None:
            return "final", 0
        return ("done", 0) if self.answered else ("answer", 0)


@dataclass
class _Verdict:
    index: int | None  # first wrong step (len(steps) if a step is missing); None if all correct
    label: str | None = None
    segment: str | None = None
    reason: str | None = None
    missing: bool = False
    state: _State | None = None  # after the last step checked


class _StepError(Exception):
    def __init__(self, segment: str, reason: str):
        super().__init__(reason)
        self.segment, self.reason = segment, reason


class _NotApplicable(Exception):
    """A planted mistake of this kind is impossible here (e.g. no `*` to misorder)."""


def _steps_of(attempt: str) -> tuple[list[Step], list[str]]:
    """The step lines of an attempt (other lines are ignored) and their stripped original text."""
    steps, lines = [], []
    for raw in str(attempt).splitlines():
        step = formats.parse_step(raw)
        if step is not None:
            steps.append(step)
            lines.append(raw.strip())
    if not steps:
        raise ValueError("the attempt has no step lines")
    return steps, lines


def _split_chain(text: str, start: int) -> list[tuple[str, int, int]]:
    """The `=`-separated parts of text[start:] as (stripped part, begin, end) spans into `text`."""
    out, pos = [], start
    for part in text[start:].split("="):
        begin = pos + len(part) - len(part.lstrip())
        end = max(begin, pos + len(part.rstrip()))
        out.append((text[begin:end], begin, end))
        pos += len(part) + 1
    return out


def _drop_period(text: str) -> str:
    text = text.strip()
    return text[:-1].rstrip() if text.endswith(".") else text


def _answer_in(text: str) -> tuple[int | None, str] | None:
    """The evaluator's rule (docs/method.md §1.4): `the answer is (.*)\\.` must match exactly once.
    Returns (integer or None if it is not one, matched segment), or None if there is no match."""
    text = text.strip()
    probe = text if text.endswith(".") else text + "."
    matches = list(re.finditer(r"the answer is (.*)\.", probe))
    if len(matches) != 1:
        return None
    m = matches[0]
    raw = m.group(1).strip()
    number = None
    if re.fullmatch(r"[+-]?[0-9]+", raw):
        try:
            number = int(raw)
        except ValueError:  # beyond Python's int-string digit limit
            number = None
    return number, probe[m.start() : min(m.end(), len(text))]


# ---------------------------------------------------------------------------------------------


class MultistepArithmetic(Task):
    name = "multistep_arithmetic"
    label = "MSA"
    info = INFO
    default_buckets = {
        "seen": ["l3d2", "l4d2", "l3d22", "l4d22"],
        "unseen": ["l3d222", "l4d222", "l5d222", "l6d222", "l5d2", "l6d2", "l5d22", "l6d22"],
    }

    # -- questions and buckets ------------------------------------------------------------------
    # Bucket `l{L}d{D}`: L operands in every innermost group; D = BIG-Bench's depth_levels written
    # as digits, outermost first ("2" -> (A op B), "22" -> ((A op B) op (C op D)), "0" -> one group).

    @staticmethod
    def _shape(bucket: str) -> tuple[int, tuple[int, ...]]:
        m = re.fullmatch(r"l([1-9][0-9]*)d(0|[2-9]+)", bucket) if isinstance(bucket, str) else None
        if m is None:
            raise ValueError(f"bad multistep_arithmetic bucket {bucket!r}; expected e.g. 'l3d2', 'l4d22', 'l2d0'")
        length = int(m.group(1))
        levels = () if m.group(2) == "0" else tuple(int(c) for c in m.group(2))
        if length < 2:
            raise ValueError(f"bucket {bucket!r}: groups need at least 2 operands")
        if math.prod(levels) > len(LETTERS):
            raise ValueError(f"bucket {bucket!r}: more than {len(LETTERS)} groups cannot be lettered")
        return length, levels

    def check_bucket(self, bucket: str) -> None:
        self._shape(bucket)

    def sample(self, bucket: str, rng: random.Random) -> tuple[str, str]:
        """BIG-Bench's generator: integers in [-9, 9], operators + - *, one operator between groups."""
        length, levels = self._shape(bucket)

        def group(levels) -> str:
            if levels:
                parts = [group(levels[1:]) for _ in range(levels[0])]
            else:
                parts = [str(rng.randint(-9, 9)) for _ in range(length)]
            out = parts[0]
            for part in parts[1:]:
                out += f" {rng.choice('+-*')} {part}"
            return f"({out})"

        text = group(levels)
        return f"{text} =", str(value(to_tree(parse_expr(text))))

    @staticmethod
    def _question(question: str) -> Expr:
        """Parse a question with or without `Q: ` and the trailing `=`; always one outer group."""
        if not isinstance(question, str):
            raise ValueError("the question must be a string")
        text = question.strip()
        if text.startswith("Q:"):
            text = text[2:].strip()
        if text.endswith("="):
            text = text[:-1].strip()
        node = parse_expr(text)
        if isinstance(node, int):
            raise ValueError(f"{question!r} has no arithmetic operation")
        if not node.paren:
            node = Expr(node.items)  # BIG-Bench always writes the outer brackets
        return node

    def normalize_question(self, question: str) -> str:
        """BIG-Bench's spelling: `((7 - -1 + -1 + -4) - (-7 + 7 * 3 * -9)) =`."""
        return f"{render(self._question(question))} ="

    def bucket_of(self, question: str) -> str:
        def shape(node) -> tuple[int, tuple[int, ...]]:
            if _leaf_group(node):
                return len(node.operands), ()
            if isinstance(node, Expr) and all(isinstance(x, Expr) and x.paren for x in node.operands):
                shapes = {shape(x) for x in node.operands}
                if len(shapes) == 1:
                    length, levels = shapes.pop()
                    return length, (len(node.operands),) + levels
            raise ValueError(f"{question!r} is not a regular BIG-Bench multistep arithmetic question")

        length, levels = shape(self._question(question))
        bucket = f"l{length}d{''.join(map(str, levels)) or '0'}"
        self.check_bucket(bucket)
        return bucket

    # -- writing steps ---------------------------------------------------------------------------

    @staticmethod
    def _canonical_plan(q: Expr) -> _Plan:
        defs = []

        def name(node):
            if _leaf_group(node):
                if len(defs) == len(LETTERS):
                    raise ValueError(f"more than {len(LETTERS)} groups cannot be lettered")
                defs.append((LETTERS[len(defs)], node))
                return defs[-1][0]
            if isinstance(node, Expr):
                return Expr(tuple(x if k % 2 else name(x) for k, x in enumerate(node.items)), node.paren)
            return node

        return _Plan(name(q), tuple(defs))

    @staticmethod
    def _partition_text(plan: _Plan) -> str:
        defs = [f"{letter} = {render(node)}" for letter, node in plan.defs]
        listed = defs[0] if len(defs) == 1 else ", ".join(defs[:-1]) + " and " + defs[-1]
        return f'{PARTITION} "{render(plan.pattern)}", where {listed}.'

    def _write(self, q: Expr, state: _State, start: int, mistake: str | None = None, rng=None) -> list[str]:
        """Step lines from `state` to the final response, numbered after `start` earlier steps.
        `mistake` is planted in the first step written and carried forward as a model would."""
        st = _State(state.plan, dict(state.values), dict(state.labels), state.result, state.answered)
        lines: list[str] = []
        while True:
            stage, k = st.expected()
            if stage == "done":
                return lines
            if mistake is not None and mistake not in _KINDS[stage]:
                raise _NotApplicable
            label = FINAL_LABEL if stage == "answer" else str(start + len(lines) + 1)
            lines.append(f"({label}) {self._write_step(q, st, stage, k, label, mistake, rng)}")
            mistake = None

    def _write_step(self, q, st: _State, stage: str, k: int, label: str, mistake, rng) -> str:
        if stage == "partition":
            plan = self._canonical_plan(q)
            if mistake == "definition":
                i = rng.randrange(len(plan.defs))
                defs = list(plan.defs)
                defs[i] = (defs[i][0], _miscopy(defs[i][1], rng))
                plan = _Plan(plan.pattern, tuple(defs))
            elif mistake == "pattern_op":
                plan = _Plan(_miscopy(plan.pattern, rng, only_ops=True), plan.defs)
            st.plan, st.labels["partition"] = plan, label
            return self._partition_text(plan)
        if stage == "calc":
            letter, node = st.plan.defs[k]
            chain = _chain(node, mistake, rng)
            st.values[letter], st.labels[letter] = int(chain[-1]), label
            return f"{CALCULATE} {letter} = {' = '.join(chain)}."
        if stage == "final":
            pattern = st.plan.pattern
            if mistake == "pattern_op":
                pattern = _miscopy(pattern, rng, only_ops=True)
            values = dict(st.values)
            if mistake == "substitution":
                if not values:
                    raise _NotApplicable
                letter = rng.choice(sorted(values))
                others = [v for v in values.values() if v != values[letter]]  # e.g. B's value copied for A
                values[letter] = rng.choice(others + _wrong_numbers(values[letter], rng)[:2])
            wrong_link = "arith" if mistake == "arith" else None
            chain = [render(pattern)] + _chain(_substitute(pattern, values), wrong_link, rng)
            st.result, st.labels["final"] = int(chain[-1]), label
            return f"{FINAL_EQ} {' = '.join(chain)}."
        # the final response
        answer = rng.choice(_wrong_numbers(st.result, rng)) if mistake == "answer" else st.result
        st.answered = True
        return f"So the answer is {answer}."

    def solve(self, question: str) -> str:
        q = self._question(question)
        lines = self._write(q, _State(), 0)
        written = _answer_in(formats.parse_step(lines[-1]).text)
        if written is None or written[0] != _python_value(render(q)):  # never hand out a wrong rationale
            raise RuntimeError(f"internal error: solver disagrees with Python on {question!r}")
        return "\n".join(lines)

    # -- answers ---------------------------------------------------------------------------------

    def parse_answer(self, text: str) -> str | None:
        try:
            steps = [formats.parse_step(line) for line in formats.last_attempt(text).splitlines()]
            finals = [s for s in steps if s is not None and s.label == FINAL_LABEL]
            found = _answer_in(finals[-1].text) if finals else None
            return None if found is None or found[0] is None else str(found[0])
        except Exception:  # parse_answer is applied to arbitrary model output: never raise
            return None

    def is_correct(self, pred: str | None, gold: str) -> bool:
        if pred is None:
            return False
        try:
            return int(str(pred).strip()) == int(str(gold).strip())
        except ValueError:
            return False

    # -- FBK -------------------------------------------------------------------------------------

    def feedback(self, question: str, attempt: str) -> Feedback:
        q = self._question(question)
        steps, _ = _steps_of(attempt)
        verdict = self._check(q, steps)
        if verdict.index is None:
            return self.all_correct(steps)
        shown = steps + [Step(verdict.label, "")] if verdict.missing else steps
        return self.wrong_step(shown, verdict.label, verdict.segment, verdict.reason)

    def _check(self, q: Expr, steps: list[Step]) -> _Verdict:
        """Visit the steps in order; the first failing check is the verdict."""
        truth = value(to_tree(q))
        st = _State()
        for i, step in enumerate(steps):
            stage, k = st.expected()
            bad = self._label_problem(steps, i, stage)
            if bad is not None:
                bad.state = st
                return bad
            try:
                self._check_step(q, truth, st, stage, k, step)
            except _StepError as e:
                return _Verdict(i, step.label, e.segment, e.reason, state=st)
        stage, k = st.expected()
        if stage == "done":
            return _Verdict(None, state=st)
        if stage == "answer":
            label = FINAL_LABEL
            reason = f"the final response with the result of step ({st.labels['final']}) is missing"
        else:
            label = str(len(steps) + 1)
            reason = f"the attempt stops here, but {self._todo(st, stage, k)}"
        return _Verdict(len(steps), label, MISSING, reason, missing=True, state=st)

    @staticmethod
    def _label_problem(steps: list[Step], i: int, stage: str) -> _Verdict | None:
        """Numbered steps must be (1), (2), ... and nothing may follow the final response."""
        step = steps[i]
        if stage == "done":  # steps[i - 1] was the final response
            return _Verdict(
                i - 1, FINAL_LABEL, steps[i - 1].text.strip(),
                f"the attempt should end with this final response, but step ({step.label}) follows it",
            )
        if step.label == FINAL_LABEL or step.label == str(i + 1):
            return None
        earlier = [s.label for s in steps[:i]]
        if step.label in earlier:  # reported at the first one so that FBK text and IMP agree
            return _Verdict(
                earlier.index(step.label), step.label, f"({step.label})",
                f"there are two steps numbered ({step.label}), but steps must be numbered (1), (2), (3), ... in order",
            )
        return _Verdict(i, step.label, f"({step.label})", f"this step should be numbered ({i + 1})")

    @staticmethod
    def _todo(st: _State, stage: str, k: int) -> str:
        if stage == "partition":
            return "the equation has not been split into parts yet"
        if stage == "calc":
            return f"{st.plan.defs[k][0]} has not been calculated yet"
        if stage == "final":
            return "the final equation has not been calculated yet"
        return f"the final equation in step ({st.labels['final']}) already gives the result"

    @staticmethod
    def _form(st: _State, stage: str, k: int) -> str:
        # No trailing "...": the feedback sentence strips trailing periods from the reason.
        if stage == "partition":
            return f'a step that starts with "{PARTITION}" and names each innermost group with a letter'
        if stage == "calc":
            return f'a step that starts with "{CALCULATE} {st.plan.defs[k][0]} ="'
        if stage == "final":
            return f'a step that starts with "{FINAL_EQ}"'
        return 'the final response "So the answer is N."'

    def _check_step(self, q: Expr, truth: int, st: _State, stage: str, k: int, step: Step) -> None:
        text = step.text.strip()
        if step.label == FINAL_LABEL:
            kind = "answer"
        else:
            starts = {PARTITION: "partition", CALCULATE: "calc", FINAL_EQ: "final"}
            kind = next((v for p, v in starts.items() if text.startswith(p)), None)
        if kind != stage:
            segment, form = text or step.line.strip(), self._form(st, stage, k)
            if kind is None:
                raise _StepError(segment, f"this step is not in the expected form; it should be {form}")
            raise _StepError(segment, f"{self._todo(st, stage, k)}, so this step should be {form}")
        if stage == "partition":
            st.plan = self._check_partition(q, text)
            st.labels["partition"] = step.label
        elif stage == "calc":
            letter, node = st.plan.defs[k]
            st.values[letter] = self._check_calc(text, letter, node, st.labels["partition"])
            st.labels[letter] = step.label
        elif stage == "final":
            st.result = self._check_final(text, st, truth)
            st.labels["final"] = step.label
        else:
            self._check_answer(text, st, truth)
            st.answered = True

    def _check_partition(self, q: Expr, text: str) -> _Plan:
        body = _drop_period(text)
        m = re.fullmatch(re.escape(PARTITION) + r' "([^"]*)", where (.+)', body)
        if m is None:
            form = self._form(_State(), "partition", 0)
            raise _StepError(text, f"this step is not in the expected form; it should be {form}")
        pattern_text = m.group(1).strip()
        try:
            pattern = parse_expr(pattern_text, letters=True)
        except ValueError:
            raise _StepError(pattern_text or text, f'"{pattern_text}" is not a valid expression') from None
        used = [x for x in re.findall(r"[A-Z]", pattern_text)]
        defs, pieces = [], [p.strip() for p in re.split(r",\s*(?:and\s+)?|\s+and\s+", m.group(2))]
        for piece in pieces:
            d = re.fullmatch(r"([A-Z])\s*=\s*(.+)", piece)
            if d is None:
                raise _StepError(piece or text, f"{piece or 'this'} should have the form A = (...)")
            if d.group(1) in [x for x, _ in defs]:
                raise _StepError(piece, f"{d.group(1)} is defined twice")
            try:
                defs.append((d.group(1), parse_expr(d.group(2))))
            except ValueError:
                raise _StepError(piece, f"{d.group(2)} is not a valid arithmetic expression") from None
        for letter in used:
            if used.count(letter) > 1 or letter not in dict(defs):
                raise _StepError(pattern_text, f"{letter} must appear once in this equation and be defined after it")
        for (letter, _), piece in zip(defs, pieces):
            if letter not in used:
                raise _StepError(piece, f'{letter} does not appear in "{pattern_text}"')
        # Re-substitute: a part written without its own brackets is put back inside brackets.
        parts = {x: (Expr(n.items) if isinstance(n, Expr) and not n.paren else n) for x, n in defs}
        if render(_substitute(pattern, parts)) != render(q):
            for (letter, node), piece in zip(defs, pieces):
                if render(parts[letter]) not in render(q):
                    raise _StepError(piece, f"{render(node)} is not a part of the question statement")
            raise _StepError(pattern_text, "this equation is inconsistent with the question statement")
        return _Plan(pattern, tuple(defs))

    @staticmethod
    def _element_value(element: str, text: str) -> int:
        if not element:
            raise _StepError(text, "one side of an equal sign is empty")
        try:
            return value(to_tree(parse_expr(element)))
        except (ValueError, RecursionError):
            raise _StepError(element, f"{element} is not a valid arithmetic expression") from None

    def _check_links(self, body: str, text: str, chain, prev: tuple[str, int, int], what: str) -> int:
        """Every `=` link must join equal values; the chain must end with a single number."""
        prev_text, prev_value, prev_begin = prev
        for element, begin, end in chain:
            v = self._element_value(element, text)
            if v != prev_value:
                reason = f"there is a calculation error, since {prev_text} is not equal to {element}"
                raise _StepError(body[prev_begin:end], reason)
            prev_text, prev_value, prev_begin = element, v, begin
        if not re.fullmatch(r"-?[0-9]+", prev_text):
            reason = f"the calculation of {what} is not finished, since {prev_text} is not a single number"
            raise _StepError(prev_text, reason)
        return prev_value

    def _check_calc(self, text: str, letter: str, node, partition_label: str) -> int:
        body = _drop_period(text)
        m = re.match(re.escape(CALCULATE) + r" ([A-Z])\s*=", body)
        if m is None:
            form = f'it should start with "{CALCULATE} {letter} ="'
            raise _StepError(text, f"this step is not in the expected form; {form}")
        if m.group(1) != letter:
            reason = f"the next part to calculate is {letter}, as listed in step ({partition_label})"
            raise _StepError(body[: m.end(1)], reason)
        chain = _split_chain(body, m.end())
        first, _, end = chain[0]
        want = value(to_tree(node))
        if self._element_value(first, text) != want:
            reason = f"{letter} = {render(node)} according to step ({partition_label}), which is not equal to {first}"
            raise _StepError(body[m.start(1) : end], reason)
        return self._check_links(body, text, chain[1:], (first, want, chain[0][1]), letter)

    def _check_final(self, text: str, st: _State, truth: int) -> int:
        body = _drop_period(text)
        chain = _split_chain(body, len(FINAL_EQ))
        first, begin, _ = chain[0]
        try:
            pattern = parse_expr(first, letters=True)
        except ValueError:
            raise _StepError(first or text, f"{first} is not a valid expression") from None
        if render(pattern) != render(st.plan.pattern):
            raise _StepError(first, "this equation is inconsistent with the question statement")
        if len(chain) < 2:
            reason = f"the results of the previous steps should be substituted into {first} and calculated"
            raise _StepError(text, reason)
        second, _, end = chain[1]
        expected = _substitute(st.plan.pattern, st.values)
        try:
            written = parse_expr(second, letters=True)
        except ValueError:
            raise _StepError(second or text, f"{second} is not a valid arithmetic expression") from None
        if render(written) != render(expected):
            letter = self._first_wrong_letter(st.plan.pattern, written, st.values)
            if letter:
                where = f"{letter} = {st.values[letter]}"
                reason = f"this is inconsistent with the result in step ({st.labels[letter]}), where {where}"
            else:
                reason = f"{second} is not {first} with the results of the previous steps substituted"
            raise _StepError(body[begin:end], reason)
        start = (second, value(to_tree(expected)), chain[1][1])
        result = self._check_links(body, text, chain[2:], start, "the final equation")
        if result != truth:  # cannot happen after the checks above; kept as a guard
            raise _StepError(chain[-1][0], "this result is not the value of the question")
        return result

    @staticmethod
    def _first_wrong_letter(pattern, written, values: dict) -> str | None:
        """The first letter whose value was substituted wrongly ("" if the shape itself differs)."""
        if isinstance(pattern, str):
            return None if isinstance(written, int) and written == values[pattern] else pattern
        if isinstance(pattern, int):
            return None if written == pattern else ""
        if not isinstance(written, Expr) or len(written.items) != len(pattern.items) or written.paren != pattern.paren:
            return ""
        for k, (p, w) in enumerate(zip(pattern.items, written.items)):
            wrong = ("" if p != w else None) if k % 2 else MultistepArithmetic._first_wrong_letter(p, w, values)
            if wrong is not None:
                return wrong
        return None

    @staticmethod
    def _check_answer(text: str, st: _State, truth: int) -> None:
        label = st.labels["final"]
        found = _answer_in(text)
        if found is None or found[0] is None:
            reason = f'the final response should be "So the answer is N.", where N is the result of step ({label})'
            raise _StepError(text or MISSING, reason)
        number, segment = found
        if number != st.result or number != truth:
            raise _StepError(segment, f"this answer is inconsistent with the result in step ({label})")

    # -- IMP -------------------------------------------------------------------------------------

    def improve(self, question: str, attempt: str, feedback: Feedback) -> str:
        """Keep the steps before the first wrong one verbatim (the IMP rule, `Task.rewrite_from`) and write
        the rest from the kept prefix, whose state the checker computes."""
        q = self._question(question)
        steps, lines = _steps_of(attempt)
        keep = self.rewrite_from(question, attempt, steps, feedback)  # the IMP rule
        verdict = self._check(q, steps)
        if verdict.index is not None:
            keep = min(keep, verdict.index)
        state = self._check(q, steps[:keep]).state
        return "\n".join(lines[:keep] + self._write(q, state, keep))

    # -- planted mistakes --------------------------------------------------------------------------

    def corrupt(self, question: str, rationale: str, rng: random.Random) -> tuple[str, str]:
        """One mistake at a random step, carried forward; the final answer always ends up wrong."""
        q = self._question(question)
        steps, lines = _steps_of(rationale)
        verdict = self._check(q, steps)
        if verdict.index is not None:
            raise ValueError("corrupt needs a correct rationale")
        gold = str(verdict.state.result)
        stages = ["partition"] + ["calc"] * len(verdict.state.plan.defs) + ["final", "answer"]
        options = [(i, kind) for i, stage in enumerate(stages) for kind in _KINDS[stage]]
        for _ in range(2 * len(options)):
            i, kind = rng.choice(options)
            try:
                written = self._write(q, self._check(q, steps[:i]).state, i, kind, rng)
            except _NotApplicable:
                continue
            attempt = "\n".join(lines[:i] + written)
            if self.parse_answer(attempt) != gold:
                return attempt, steps[i].label
        i = len(stages) - 1  # a wrong final answer is always possible
        written = self._write(q, self._check(q, steps[:i]).state, i, "answer", rng)
        return "\n".join(lines[:i] + written), FINAL_LABEL

    # -- real BIG-Bench data -----------------------------------------------------------------------

    def from_bigbench(self, input: str, target: str, choices: list[str] | None = None) -> Example:
        question = self.normalize_question(input)
        answer = str(value(to_tree(self._question(question))))
        try:
            given = int(str(target).strip())
        except ValueError:
            raise ValueError(f"target {target!r} is not an integer") from None
        if given != int(answer):
            raise ValueError(f"target {target!r} disagrees with the value {answer} of {question!r}")
        bucket = self.bucket_of(question)
        return Example(question, answer, self.solve(question), bucket, self.split_of(bucket))
