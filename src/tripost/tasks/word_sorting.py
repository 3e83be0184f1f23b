"""Word Sorting (BIG-Bench `word_sorting`, docs/method.md §1.1): the scripted bucket-sort world.

Question: ``Sort the following words alphabetically:\\nList: osteology embedded sharpshoot irwin``;
answer: the words sorted, joined by single spaces. The gold rationale is a recursive bucket sort on
the k-th letter with hierarchical step numbers::

    (1) The first letter: "alchemist"="a" (1), "pliable"="p" (16), "adsorbate"="a" (1).
    (2) We now have: (1) ["alchemist" ? "adsorbate"] < (16) "pliable".
    (3) Now sort this subpart ["alchemist" ? "adsorbate"] by looking at their second letters: ...
    (3.1) We now have: (4) "adsorbate" < (12) "alchemist".
    (3.2) Hence, we have "adsorbate" < "alchemist".
    (4) Hence, we have "adsorbate" < "alchemist" < "pliable".
    (Final response) So the answer is: adsorbate alchemist pliable.

A subpart whose words all share the k-th letter continues at the same level ("(3.1) We now have:
(15) [...]", "(3.2) Now sort this subpart [...] by looking at their third letters: ..."), as in the
paper's data; nested subparts are numbered (6.2), (6.3), ... (the original script repeated "(6.2)").

Conventions beyond the paper (exactly Python's `sorted` order, which BIG-Bench targets follow):
- letter k of a word with fewer than k characters is the empty letter ``""`` with number 0, and it
  sorts before every character ("cat" < "catalog");
- a..z are numbered 1..26; any other character c gets ord(c) - 96 (e.g. "'" is -57), so that
  punctuation and digits sort before letters as in `sorted`;
- copies of one word never split: they are written ``(1) "apple" = "apple"`` and joined by "=" in
  "Hence" lines; a bracket ``[... ? ...]`` always holds at least two different words.
Words may hold any non-space characters except ``" [ ] `` and the backtick.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from string import ascii_lowercase

from tripost import formats
from tripost.formats import FINAL_LABEL, Feedback, Step
from tripost.tasks.base import Example, Task

HEADER = "Sort the following words alphabetically:"
MAX_WORDS = 100

_QUESTION_RE = re.compile(r"^(?:Q\s*:\s*)?Sort the following words alphabetically\s*:?\s*List\s*:(.*)$", re.S | re.I)
_FORBIDDEN = set('"[]`')
_ORDINALS = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
    "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth"
).split()

# attempt parsing
_FIRST_RE = re.compile(r"^The first letters?\s*:(.*)$", re.S)
_SUBPART_RE = re.compile(
    r"^(?:Now (?:let's )?sort this subpart|Sort)\s*(\[[^\[\]]*\])\s*(?:again\s+)?"
    r"(by looking at their (\S+) letters?)\s*:(.*)$",
    re.S,
)
_ORDER_RE = re.compile(r"^We now have\s*:(.*)$", re.S)
_HENCE_RE = re.compile(r"^Hence,? we have\s*:?(.*)$", re.S)
_ITEM_RE = re.compile(r'"([^"]*)"\s*=\s*"([^"]*)"\s*\(\s*(-?\d{1,6})\s*\)')
_ENTRY_RE = re.compile(r'\s*\(\s*(-?\d{1,6})\s*\)\s*(\[[^\[\]]*\]|"[^"]*"(?:\s*[=<>?]\s*"[^"]*")*)')
_QUOTED_RE = re.compile(r'"([^"]*)"')
_ANSWER_RE = re.compile(r"the answer is\s*:?\s*(.*)$", re.S | re.I)
_BUCKET_RE = re.compile(r"(\d+)(?:-(\d+))?")


# ---------------------------------------------------------------------------------------------
# letters, numbers and text pieces


def ordinal(k: int) -> str:
    if k <= len(_ORDINALS):
        return _ORDINALS[k - 1]
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _ordinal_value(text: str) -> int | None:
    text = text.lower()
    if text in _ORDINALS:
        return _ORDINALS.index(text) + 1
    m = re.fullmatch(r"(\d{1,4})-?(?:st|nd|rd|th)", text)
    return int(m.group(1)) if m else None


def letter(word: str, k: int) -> str:
    """The k-th letter (1-based) of `word`; "" when the word is shorter."""
    return word[k - 1] if len(word) >= k else ""


def number(ch: str) -> int:
    """Alphabetical number: "" -> 0, a..z -> 1..26, any other character -> ord(ch) - 96."""
    return 0 if ch == "" else ord(ch) - 96


def _rank(n: int) -> tuple[bool, int]:
    """Sort key of a number: the empty letter (0) first, then by number (= by character)."""
    return (n != 0, n)


def _q(word: str) -> str:
    return f'"{word}"'


def _bracket(words) -> str:
    return "[" + " ? ".join(map(_q, words)) + "]"


def _entry(n: int, words) -> str:
    body = _bracket(words) if len(set(words)) > 1 else " = ".join(map(_q, words))
    return f"({n}) {body}"


def _chain(words) -> str:
    out = _q(words[0])
    for a, b in zip(words, words[1:]):
        out += (" = " if a == b else " < ") + _q(b)
    return out


def _extract(words, k: int) -> tuple:
    return tuple((w, letter(w, k), number(letter(w, k))) for w in words)


def _buckets(items) -> tuple:
    """Items -> ((number, words), ...) by ascending number; words keep their order of appearance."""
    groups: dict[int, list[str]] = {}
    for w, _, n in items:
        groups.setdefault(n, []).append(w)
    return tuple((n, tuple(ws)) for n, ws in sorted(groups.items(), key=lambda kv: _rank(kv[0])))


# ---------------------------------------------------------------------------------------------
# the scripted rationale


@dataclass(frozen=True)
class _Gold:
    """One step of a scripted rationale with its meaning."""

    label: str
    kind: str  # "first" | "subpart" | "order" | "hence" | "final"
    k: int = 0  # letter position of an extraction / ordering
    group: tuple = ()  # words being sorted by this step's block
    items: tuple = ()  # (word, letter, number) of an extraction
    entries: tuple = ()  # ((number, words), ...) of an ordering
    words: tuple = ()  # sorted words of a "Hence" / final step
    ref: str = ""  # label of the step this one builds on
    top: bool = False  # the block sorts the whole question

    @property
    def text(self) -> str:
        if self.kind == "first":
            return "The first letter: " + _items_text(self.items) + "."
        if self.kind == "subpart":
            return (
                f"Now sort this subpart {_bracket(self.group)} by looking at their {ordinal(self.k)} "
                f"letters: {_items_text(self.items)}."
            )
        if self.kind == "order":
            return "We now have: " + " < ".join(_entry(n, ws) for n, ws in self.entries) + "."
        if self.kind == "hence":
            return f"Hence, we have {_chain(self.words)}."
        return "So the answer is: " + " ".join(self.words) + "."

    @property
    def step(self) -> Step:
        return Step(self.label, self.text)


def _items_text(items) -> str:
    return ", ".join(f'{_q(w)}="{c}" ({n})' for w, c, n in items)


def _labels(prefix: str):
    n = 0
    while True:
        n += 1
        yield f"{prefix}.{n}" if prefix else str(n)


FAULTS = ("letter", "number", "drop", "swap", "hence", "final")


@dataclass
class _Fault:
    at: int  # index of the step to corrupt
    kind: str  # one of FAULTS
    rng: random.Random

    def apply(self, g: _Gold) -> _Gold:
        rng = self.rng
        if self.kind in ("letter", "number", "drop"):
            items = list(g.items)
            if self.kind == "drop":
                del items[rng.randrange(len(items))]
            elif self.kind == "letter":
                i = rng.randrange(len(items))
                w, c, _ = items[i]
                near = {letter(w, j) for j in (g.k - 1, g.k + 1) if j >= 1} - {"", c}
                c2 = rng.choice(sorted(near) or [x for x in ascii_lowercase if x != c])
                items[i] = (w, c2, number(c2))
            else:
                i = rng.choice([j for j, it in enumerate(items) if 1 <= it[2] <= 26])
                w, c, n = items[i]
                n2 = n + rng.choice((-1, 1))
                items[i] = (w, c, n2 if 1 <= n2 <= 26 else 2 * n - n2)
            return replace(g, items=tuple(items))
        if self.kind == "swap":
            entries = list(g.entries)
            i = rng.randrange(len(entries) - 1)
            (a, wa), (b, wb) = entries[i], entries[i + 1]
            entries[i], entries[i + 1] = (a, wb), (b, wa)
            return replace(g, entries=tuple(entries))
        words = list(g.words)
        if self.kind == "final" and rng.random() < 0.5:
            del words[rng.randrange(len(words))]
        else:
            i = rng.choice([j for j in range(len(words) - 1) if words[j] != words[j + 1]])
            words[i], words[i + 1] = words[i + 1], words[i]
        return replace(g, words=tuple(words))


def _applicable(g: _Gold) -> list[str]:
    """The faults that can be planted in step `g`."""
    if g.kind in ("first", "subpart"):
        out = ["letter"]
        if any(1 <= n <= 26 for _, _, n in g.items):
            out.append("number")
        if len(g.items) > 1:
            out.append("drop")
        return out
    if g.kind == "order":
        return ["swap"] if len(g.entries) > 1 else []
    if any(a != b for a, b in zip(g.words, g.words[1:])):
        return [g.kind]  # "hence" or "final"
    return []


def _splittable(words, k: int) -> bool:
    """Can letters after the k-th still tell `words` apart? In a correct rationale the words of a
    group share their first k letters, so this is "holds two different words"; after a planted
    fault it also stops words that differ only in their first k letters from recursing forever."""
    return len({w[k:] for w in words}) > 1


class _Builder:
    """Writes the scripted rationale; a `_Fault` corrupts one step and the rest follows from it."""

    def __init__(self, fault: _Fault | None = None):
        self.steps: list[_Gold] = []
        self.fault = fault

    def add(self, g: _Gold) -> _Gold:
        if self.fault is not None and len(self.steps) == self.fault.at:
            g = self.fault.apply(g)
        self.steps.append(g)
        return g

    def build(self, words) -> list[_Gold]:
        labels = _labels("")
        first = self.add(_Gold(next(labels), "first", k=1, group=tuple(words), items=_extract(words, 1), top=True))
        result = self.block(first, labels, top=True)
        self.add(_Gold(FINAL_LABEL, "final", words=result, ref=self.steps[-1].label))
        return self.steps

    def block(self, ext: _Gold, labels, top: bool) -> tuple:
        """Sort the words of extraction step `ext`; returns them sorted (as the steps say)."""
        group = tuple(w for w, _, _ in ext.items)
        while True:
            order = self.add(_Gold(next(labels), "order", k=ext.k, entries=_buckets(ext.items), ref=ext.label))
            unsorted = [ws for _, ws in order.entries if _splittable(ws, order.k)]
            if len(order.entries) == 1 and unsorted:  # no split at this letter: next letter, same level
                ws, k = unsorted[0], order.k + 1
                ext = self.add(_Gold(next(labels), "subpart", k=k, group=ws, items=_extract(ws, k), ref=order.label))
                continue
            result: list[str] = []
            for _, ws in order.entries:
                if not _splittable(ws, order.k):
                    result += ws
                    continue
                k = order.k + 1
                sub = self.add(_Gold(next(labels), "subpart", k=k, group=ws, items=_extract(ws, k), ref=order.label))
                result += self.block(sub, _labels(sub.label), top=False)
            return self.add(_Gold(next(labels), "hence", group=group, words=tuple(result), top=top)).words


@lru_cache(maxsize=4096)
def _gold(words: tuple) -> tuple:
    steps = tuple(_Builder().build(words))
    if list(steps[-1].words) != sorted(words):  # never write a wrong rationale
        raise AssertionError(f"internal error: scripted sort of {words} gave {steps[-1].words}")
    return steps


# ---------------------------------------------------------------------------------------------
# questions and words


def parse_words(question: str) -> list[str]:
    """The words of a question in any BIG-Bench form (one or two lines, with or without "Q: ")."""
    if not isinstance(question, str):
        raise ValueError(f"question must be a string, got {type(question).__name__}")
    m = _QUESTION_RE.match(question.strip())
    if not m:
        raise ValueError(f"not a word sorting question (expected '{HEADER} List: ...'): {question[:80]!r}")
    words = m.group(1).split()
    if not words:
        raise ValueError("the question lists no words")
    bad = [w for w in words if _FORBIDDEN & set(w)]
    if bad:
        raise ValueError(f"words may not contain any of {sorted(_FORBIDDEN)}: {bad[:3]}")
    return words


def make_question(words) -> str:
    return f"{HEADER}\nList: {' '.join(words)}"


@lru_cache(maxsize=1)
def word_list() -> tuple[str, ...]:
    """The shipped English word list (resources/words.txt; '#' lines are comments)."""
    text = resources.files("tripost").joinpath("resources/words.txt").read_text(encoding="utf-8")
    return tuple(w for w in (line.strip() for line in text.splitlines()) if w and not w.startswith("#"))


def _bucket_range(bucket: str) -> tuple[int, int]:
    m = _BUCKET_RE.fullmatch(bucket) if isinstance(bucket, str) else None
    if not m:
        raise ValueError(f"word sorting buckets are word counts 'a-b' or 'n', got {bucket!r}")
    a, b = int(m.group(1)), int(m.group(2) or m.group(1))
    if not 1 <= a <= b <= MAX_WORDS:
        raise ValueError(f"bucket {bucket!r}: need 1 <= a <= b <= {MAX_WORDS}")
    return a, b


# ---------------------------------------------------------------------------------------------
# attempt checking (scripted FBK)


def _attempt_steps(attempt: str) -> list[Step]:
    if not isinstance(attempt, str):
        raise ValueError(f"attempt must be a string, got {type(attempt).__name__}")
    steps = [s for s in map(formats.parse_step, attempt.splitlines()) if s is not None]
    if not steps:
        raise ValueError("the attempt has no step lines '(1) ...'")
    return steps


def _kind(step: Step) -> str | None:
    if step.label == FINAL_LABEL:
        return "final"
    t = step.text.strip()
    for kind, rx in (("first", _FIRST_RE), ("subpart", _SUBPART_RE), ("order", _ORDER_RE), ("hence", _HENCE_RE)):
        if rx.match(t):
            return kind
    return None


Problem = tuple[str, str]  # (wrong segment, reason)


def _wrong_kind(g: _Gold, kind: str | None) -> str:
    if g.kind == "first":
        return "the first step should give the first letter of every word in the list"
    if g.kind == "subpart":
        where = f"the subpart {_bracket(g.group)} in step ({g.ref})"
        if kind == "hence":
            return (
                f'this subpart has not yet been sorted completely ({where} contains "?"), '
                "so it should not be a conclusion step"
            )
        if kind == "final":
            return f"you have not yet sorted all the words in the question statement: {where} is still unsorted"
        return f"{where} should be sorted next, by looking at their {ordinal(g.k)} letters"
    if g.kind == "order":
        return f'this step should order the words by their numbers from step ({g.ref}), as "We now have: ..."'
    if g.kind == "hence":
        return 'every subpart is sorted now, so this step should combine them, as "Hence, we have ..."'
    if kind == "final":
        return 'the final response should give the answer as "So the answer is: ..."'
    return f"all the words are sorted in step ({g.ref}), so this step should give the final response"


def _check_items(body: str, g: _Gold, t: str) -> Problem | None:
    """An extraction list `"w"="c" (n), ...` (the end of step text `t`) against `g.group` at letter g.k."""
    whole = body.strip() or t
    if re.sub(r"[\s,.;]", "", _ITEM_RE.sub("", body)) or not _ITEM_RE.search(body):
        return whole, 'it cannot be understood: every word should be written as "word"="letter" (number)'
    scope = "the list of words provided by the question statement" if g.top else f"the subpart {_bracket(g.group)}"
    remaining = Counter(g.group)
    for m in _ITEM_RE.finditer(body):
        w, c, n = m.group(1), m.group(2), int(m.group(3))
        if remaining[w] == 0:
            if w in remaining:
                return m.group(0), f'"{w}" is listed more times than it appears in {scope}'
            return m.group(0), f'"{w}" is not in {scope}'
        remaining[w] -= 1
        true = letter(w, g.k)
        if c != true:
            if true == "":
                return m.group(0), f'"{w}" has no {ordinal(g.k)} letter, so it should be "" (0)'
            return m.group(0), f'the {ordinal(g.k)} letter of "{w}" should be "{true}"'
        if n != number(true):
            if true == "":
                return m.group(0), 'the alphabetical order for the empty letter "" should be 0'
            return m.group(0), f'the alphabetical order for the character "{true}" should be {number(true)}'
    missing = [w for w in dict.fromkeys(g.group) if remaining[w] > 0]
    if missing:
        return whole, f'"{missing[0]}" from {scope} is missing in this list'
    return None


def _check_subpart(t: str, g: _Gold) -> Problem | None:
    m = _SUBPART_RE.match(t)
    br = m.group(1)
    if Counter(_QUOTED_RE.findall(br)) != Counter(g.group):
        return br, f"according to step ({g.ref}), the next subpart to sort is {_bracket(g.group)}"
    if _ordinal_value(m.group(3)) != g.k:
        same = "letter" if g.k == 2 else f"{g.k - 1} letters"
        return m.group(2), (
            f"the words in this subpart share the same first {same}, so they should be sorted by looking "
            f"at their {ordinal(g.k)} letters"
        )
    return _check_items(m.group(4), g, t)


def _parse_order(body: str):
    """`(1) "a" < (3) ["b" ? "c"] < ...` -> [(number, words, separators, bracketed, start, end)] or None
    (start/end: the entry's span in `body`)."""
    s = body.rstrip()
    s = s[:-1] if s.endswith(".") else s
    out, pos = [], 0
    while True:
        m = _ENTRY_RE.match(s, pos)
        if not m:
            return None
        inner = m.group(2)
        seps = [x.strip() for x in _QUOTED_RE.split(inner)[::2]]  # text around the quoted words
        start = m.start() + len(m.group(0)) - len(m.group(0).lstrip())
        out.append((int(m.group(1)), _QUOTED_RE.findall(inner), seps[1:-1], inner.startswith("["), start, m.end()))
        pos = m.end()
        if not s[pos:].strip():
            return out
        sep = re.compile(r"\s*<\s*").match(s, pos)
        if not sep:
            return None
        pos = sep.end()


def _check_order(t: str, g: _Gold) -> Problem | None:
    body = _ORDER_RE.match(t).group(1)
    whole = body.strip() or t
    entries = _parse_order(body)
    if entries is None:
        return whole, "it is not a valid sorted list"
    gold = {n: ws for n, ws in g.entries}
    seen: set[int] = set()
    for n, _, _, _, a, b in entries:
        seg = body[a:b]
        if n not in gold:
            return seg, f"according to step ({g.ref}), no word has the number ({n})"
        if n in seen:
            return seg, f"the number ({n}) appears more than once"
        seen.add(n)
    missing = [n for n in gold if n not in seen]
    if missing:
        nums = " ".join(f"({n})" for n in missing)
        return whole, f"according to step ({g.ref}), this ordering is missing the words with the numbers {nums}"
    for a, b in zip(entries, entries[1:]):
        if _rank(a[0]) > _rank(b[0]):
            return body[a[4] : b[5]], (
                f"words are not sorted in ascending order. Using results from step ({g.ref}), "
                f"({b[0]}) should come before ({a[0]})"
            )
    wrong = [e for e in entries if Counter(e[1]) != Counter(gold[e[0]])]
    if wrong:
        nums = " ".join(f"({e[0]})" for e in wrong)
        n0 = wrong[0][0]
        return body[wrong[0][4] : wrong[0][5]], (
            f"according to step ({g.ref}), this ordering does not have words with the numbers {nums} sorted "
            f"correctly: ({n0}) should be {_entry(n0, gold[n0])[len(str(n0)) + 3 :]}"
        )
    for n, ws, seps, bracketed, a, b in entries:
        seg = body[a:b]
        distinct = len(set(ws))
        if bracketed and distinct == 1 and len(ws) == 1:
            return seg, "it is not a valid sorted list: a single word is already sorted and needs no brackets"
        if bracketed and distinct == 1:
            return seg, f"these are copies of the same word, so they should be written as {' = '.join(map(_q, ws))}"
        if not bracketed and distinct > 1:
            return seg, f"different words with the same number form an unsorted subpart, written as {_bracket(ws)}"
        if any(x != ("?" if bracketed else "=") for x in seps):
            joiner = '"?" in an unsorted subpart' if bracketed else '"=" between copies of one word'
            return seg, f"it is not a valid sorted list: words are separated by {joiner}"
    return None


_NOT_CONCLUDED = 'this subpart has not yet been sorted completely (contains "?"), so it should not be a conclusion step'


def _established(prior, a: str, b: str) -> str | None:
    """Label of the ordering step where words a and b got different numbers."""
    for g in prior:
        if g.kind != "order":
            continue
        where = {w: n for n, ws in g.entries for w in ws}
        if a in where and b in where and where[a] != where[b]:
            return g.label
    return None


def _check_hence(t: str, g: _Gold, prior) -> Problem | None:
    body = _HENCE_RE.match(t).group(1)
    whole = body.strip() or t
    s = body.rstrip()
    s = s[:-1] if s.endswith(".") else s
    toks = list(_QUOTED_RE.finditer(s))
    parts = _QUOTED_RE.split(s)[::2]
    seps = [re.sub(r"[\s\[\]]", "", x) for x in parts]
    if not toks or seps[0] or seps[-1] or any(x not in ("<", "=", "?", ">") for x in seps[1:-1]):
        return whole, "it is not a valid sorted list"
    words = [m.group(1) for m in toks]
    pairs = [(toks[i], toks[i + 1], seps[i + 1]) for i in range(len(toks) - 1)]

    def span(x, y):
        return s[x.start() : y.end()]

    for x, y, rel in pairs:
        if rel == "?":
            return span(x, y), _NOT_CONCLUDED
        if rel == ">":
            return span(x, y), 'the words should be listed in ascending order, joined by "<"'
    scope = "the list of words provided by the question statement" if g.top else f"the subpart {_bracket(g.group)}"
    remaining = Counter(g.group)
    for m in toks:
        w = m.group(1)
        if remaining[w] == 0:
            if w in remaining:
                return m.group(0), f'"{w}" is listed more times than it appears in {scope}'
            return m.group(0), f'"{w}" is not in {scope}'
        remaining[w] -= 1
    missing = [w for w in dict.fromkeys(g.group) if remaining[w] > 0]
    if missing:
        if g.top:
            return whole, f'you have not yet sorted all the words in the question statement: "{missing[0]}" is missing'
        return whole, f'"{missing[0]}" from {scope} is missing'
    for x, y, rel in pairs:
        a, b = x.group(1), y.group(1)
        if a > b:
            label = _established(prior, a, b)
            if label is None:
                return span(x, y), f'"{b}" comes before "{a}" alphabetically'
            return span(x, y), f'in step ({label}) it is established that: "{b}" < "{a}"'
        if a == b and rel != "=":
            return span(x, y), f'"{a}" and "{b}" are the same word, so they should be joined by "="'
        if a != b and rel != "<":
            return span(x, y), f'"{a}" and "{b}" are different words, so they should be joined by "<"'
    return None


def _check_final(t: str, g: _Gold) -> Problem | None:
    m = _ANSWER_RE.search(t)
    if not m:
        return t, 'the final response should give the answer as "So the answer is: ..."'
    got = _answer_words(m.group(1))
    if got == list(g.words):
        return None
    seg = t[m.start() :].strip()
    missing = [w for w in dict.fromkeys(g.words) if Counter(got)[w] < Counter(g.words)[w]]
    if missing:
        return seg, f'this answer is inconsistent with the result in step ({g.ref}): "{missing[0]}" is missing'
    return seg, f"this answer is inconsistent with the result in step ({g.ref})"


def _answer_words(text: str) -> list[str]:
    """Words after "the answer is:", up to the last "." (as the paper's regex `the answer is:(.*)\\.`)."""
    return (text[: text.rindex(".")] if "." in text else text).split()


def _check(step: Step, g: _Gold, prior) -> Problem | None:
    kind = _kind(step)
    t = step.text.strip()
    if not t:
        return step.line.strip(), "this step is empty" if g.kind != "final" else _wrong_kind(g, "final")
    if kind != g.kind:
        return t, _wrong_kind(g, kind)
    if kind == "first":
        return _check_items(_FIRST_RE.match(t).group(1), g, t)
    if kind == "subpart":
        return _check_subpart(t, g)
    if kind == "order":
        return _check_order(t, g)
    if kind == "hence":
        return _check_hence(t, g, prior)
    return _check_final(t, g)


def _first_error(gold, steps: list[Step]) -> tuple[int, str, str] | None:
    """(index, segment, reason) of the first wrong step of an attempt, None if it is all correct."""
    for i, step in enumerate(steps):
        if i >= len(gold):
            return i, step.line.strip(), "the final response was already given, so no step should follow it"
        problem = _check(step, gold[i], gold[:i])
        if problem is None and step.label != gold[i].label:
            problem = f"({step.label})", f"the step number should be ({gold[i].label})"
        if problem is not None:
            return (i, *problem)
    if len(steps) < len(gold):
        i = len(steps) - 1
        return i, steps[i].line.strip(), "the rationale stops here without a final response"
    return None


# ---------------------------------------------------------------------------------------------
# the task


class WordSorting(Task):
    name = "word_sorting"
    label = "WS"
    info = ""
    default_buckets = {"seen": ["2-3", "4-7"], "unseen": ["8-10", "11-15", "16-20"]}

    def __init__(self, vocabulary_size: int | None = None):
        """`vocabulary_size`: draw question words from a fixed subset of that many words of the
        shipped list (a seeded sample, the same everywhere) instead of all 15k; the embedded default
        uses it so a model trained from scratch sees each word often. Checking is unaffected."""
        self.vocabulary_size = vocabulary_size
        words = word_list()
        if vocabulary_size is None:
            self.words = words
        else:
            n = int(vocabulary_size)
            if not MAX_WORDS <= n <= len(words):
                raise ValueError(f"vocabulary_size must be between {MAX_WORDS} and {len(words)}, got {vocabulary_size!r}")
            self.words = tuple(sorted(random.Random("word_sorting/vocabulary").sample(words, n)))

    # -- generation ---------------------------------------------------------------------------
    def check_bucket(self, bucket: str) -> None:
        _bucket_range(bucket)

    def sample(self, bucket: str, rng: random.Random) -> tuple[str, str]:
        a, b = _bucket_range(bucket)
        words = rng.sample(self.words, rng.randint(a, b))
        return make_question(words), " ".join(sorted(words))

    def bucket_of(self, question: str) -> str:
        """The default bucket holding the word count; fewer than 2 words -> the lowest bucket ("2-3"),
        more than 20 -> the highest ("16-20", the evaluator's open-ended "15+" bucket)."""
        n = len(parse_words(question))
        buckets = self.default_buckets["seen"] + self.default_buckets["unseen"]
        for bucket in buckets:
            a, b = _bucket_range(bucket)
            if a <= n <= b:
                return bucket
        return buckets[0] if n < _bucket_range(buckets[0])[0] else buckets[-1]

    # -- solving and checking -----------------------------------------------------------------
    def solve(self, question: str) -> str:
        return formats.join_steps([g.step for g in _gold(tuple(parse_words(question)))])

    def parse_answer(self, text: str) -> str | None:
        if not isinstance(text, str):
            return None
        finals = [s for s in map(formats.parse_step, formats.last_attempt(text).splitlines()) if s]
        finals = [s for s in finals if s.label == FINAL_LABEL]
        m = _ANSWER_RE.search(finals[-1].text) if finals else None
        words = _answer_words(m.group(1)) if m else []
        return " ".join(words) if words else None

    def is_correct(self, pred: str | None, gold: str) -> bool:
        return pred is not None and pred.split() == gold.split()

    def feedback(self, question: str, attempt: str) -> Feedback:
        steps = _attempt_steps(attempt)
        error = _first_error(_gold(tuple(parse_words(question))), steps)
        if error is None:
            return self.all_correct(steps)
        i, segment, reason = error
        step = steps[i]
        context = [s for s in steps[:i] if s.label != step.label] + [step]  # repeated labels: theirs
        return self.wrong_step(context, step.label, segment, reason)

    def improve(self, question: str, attempt: str, feedback: Feedback) -> str:
        """Steps before the first wrong one (the IMP rule, `Task.rewrite_from`) are kept verbatim and the
        scripted rationale continues from there (a prefix that FBK accepted means the same as the gold
        prefix, so the continuation fits it). A "correct" verdict returns the attempt's steps."""
        gold = _gold(tuple(parse_words(question)))
        steps = _attempt_steps(attempt)
        if feedback.is_correct:
            return formats.join_steps(steps)
        i = self.rewrite_from(question, attempt, steps, feedback)
        return formats.join_steps(steps[:i] + [g.step for g in gold[i:]])

    def corrupt(self, question: str, rationale: str, rng: random.Random) -> tuple[str, str]:
        """One planted error (a wrong letter or number, a dropped word, two words swapped in an
        ordering, a "Hence" line or the final answer), carried forward by the later steps. The
        attempt is built from the question's scripted rationale (`rationale` is not re-read)."""
        words = tuple(parse_words(question))
        options: dict[str, list[int]] = {}
        for i, g in enumerate(_gold(words)):
            for kind in _applicable(g):
                options.setdefault(kind, []).append(i)
        kind = rng.choice(sorted(options))
        fault = _Fault(rng.choice(options[kind]), kind, rng)
        steps = _Builder(fault).build(words)
        return formats.join_steps([g.step for g in steps]), steps[fault.at].label

    # -- real BIG-Bench data ------------------------------------------------------------------
    def from_bigbench(self, input: str, target: str, choices: list[str] | None = None) -> Example:
        words = parse_words(input)
        if isinstance(target, (list, tuple)) and all(isinstance(t, str) for t in target):
            target = " ".join(target)
        if not isinstance(target, str):
            raise ValueError(f"target must be the sorted words as a string, got {type(target).__name__}")
        answer = " ".join(sorted(words))
        if target.split() != answer.split():
            raise ValueError(f"target {target!r} is not the sorted word list {answer!r}")
        question = make_question(words)
        bucket = self.bucket_of(question)
        return Example(question, answer, self.solve(question), bucket, self.split_of(bucket))
