"""Logical Deduction (BIG-Bench `logical_deduction`, 3 / 5 / 7 objects; docs/method.md §1.1).

Questions
    BIG-Bench(-Hard) paragraphs: the fixed preamble, one scenario sentence listing the objects
    ("On a shelf, there are three books: a white book, ..."), statements, then
    "\\nOptions:\\n(A) ...", one option per object in listed order, all with the asked position.
    Scenarios generated: books on a shelf, birds on a branch (left/right), golfers in a tournament
    (above/below, first/last), vehicles at an antique car show (older/newer), fruits at a stand
    (cheaper / less / more expensive).  Answer = the option letter ("A"); buckets "3", "5", "7"
    (seen = 3, 5; unseen = 7).

Orderings (the paper's notation)
    Every scenario is put on one axis with a *start* and an *end*: (left)/(right),
    (first)/(last), (oldest)/(newest), (most expensive)/(least expensive).  An ordering is
    `"(start) t t ... (end)"` with t an object name, `?` (exactly one object) or `??` (zero or more).
    Its meaning is *closed-world*: the set of permutations of the question's N objects that it
    matches.  Permutation sets are Python ints used as bitsets over all N! orders (N <= 7), so "this
    ordering follows from those steps" is `cited & ~ordering == 0`.

Gold rationale (`solve`), deterministic
    (1..m)  one step per statement, in paragraph order: `<statement>: "<its exact ordering>".`
    (m+1)   `There are in total N <objects>: a, b, and c.`
    then    `Combining (i) and (j) we get the following ordering: "...".` steps, chosen by a greedy
            pool planner: the pool starts as the statement steps; each round combines the two pool
            steps (or a pool step and the list step) whose combination is the most informative
            (fewest matching orders; ties: a total ordering, then the earliest pair), provided it is
            strictly more informative than both; steps the result subsumes leave the pool.  A
            combination writes the most informative single ordering over the objects named in the
            steps it cites: exact gaps where they are fixed, `??` elsewhere.  Without the list step
            a gap that is fixed only by the number of objects (not among N + 1 objects) is written
            `??`, so the list step closes the ordering as in the paper's example (which
            this reproduces verbatim).  Should the greedy stall (not seen in tests), one step cites
            every statement and the list step.  It ends with the total ordering.
    then    `According to this ordering, the <object> that <asked position> is <the object>.`
    (Final response) `<text of the right option>. So the answer is (X).`

Scripted FBK: checks the steps in order and reports the first wrong one: a statement step must
restate a statement of the question and its ordering must follow from it; the list step must give
the right number and objects; a combination's ordering must follow from the steps it cites
(reasons say which relation is contradicted or not established); the reading step must use the
last total ordering and the asked position; the final response's option must be the one that
ordering makes true.  Unreadable steps are errors at that step; steps after the final response,
a missing final response or a repeated step number are errors too.  `feedback` raises ValueError
only when the attempt has no step line (or the question cannot be read).

IMP keeps the steps before the wrong one verbatim (the earlier of the feedback's step and the
first error this checker finds, so that a late model feedback cannot leave an error in the prefix)
and continues with the gold planner from there: statements not yet given with their full ordering
are restated, the list step is added if missing, the verified combinations of the prefix join the
pool, and new steps are numbered after the largest number used so far.

`corrupt` plants one error of a random kind and carries it forward: a misread statement (relation
reversed, position shifted or counted from the other end, kept only if the misread statements
still have one solution, which the rest of the rationale then derives), a wrong combination or a
wrong final ordering (this and every later ordering re-told for an order with two objects swapped),
the wrong object read off the ordering, or a wrong option letter.

`from_bigbench` reads BIG-Bench-Hard items (input with "Options:", target "(A)") and BIG-Bench
task.json items (paragraph, `choices` = option texts, target = the right text; the preamble is
added when missing and trailing periods of the options are dropped, as in BBH), and raises
ValueError when the solver's letter differs from the target.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, field
from functools import lru_cache

from tripost import formats
from tripost.formats import FINAL_LABEL, Feedback, Step
from tripost.tasks.base import Example, Task

# --------------------------------------------------------------------------------------------
# words
# --------------------------------------------------------------------------------------------
_NUM_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
_NUM = {w: i for i, w in enumerate(_NUM_WORDS)}
_ORDS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]
_ORD = {w: i + 1 for i, w in enumerate(_ORDS)}
_ORD.update({"1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "6th": 6, "7th": 7, "8th": 8, "9th": 9, "10th": 10})
_ORD_ALT = "|".join(sorted(_ORD, key=len, reverse=True))
_MAX_N = 7
PREAMBLE = (
    "The following paragraphs each describe a set of {n} objects arranged in a fixed order. "
    "The statements are logically consistent within each paragraph."
)
INFO = 'Let "??" represents 0 or more objects, and "?" represents exactly 1 object.'


def _num_word(n: int) -> str:
    return _NUM_WORDS[n] if 0 <= n < len(_NUM_WORDS) else str(n)


def _count_of(word: str) -> int | None:
    w = word.strip().lower()
    if w.isdigit():
        return int(w)
    return _NUM.get(w)


def _join_and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    if len(items) == 2:
        return f"{items[0]} and {items[1]}"
    return ", ".join(items[:-1]) + f", and {items[-1]}"


def _cite(labels: list[str]) -> str:
    refs = [f"({lab})" for lab in labels]
    if len(refs) == 1:
        return refs[0]
    return ", ".join(refs[:-1]) + f" and {refs[-1]}"


def _cite_reason(labels: list[str]) -> str:
    return ("step " if len(labels) == 1 else "steps ") + _cite(labels)


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:1].isupper() and not s[1:2].isupper() else s


def _upper_first(s: str) -> str:
    return s[:1].upper() + s[1:]


# --------------------------------------------------------------------------------------------
# axis families: phrasing of positions and relations
# --------------------------------------------------------------------------------------------
_FAMILIES = {
    # key: (start label, end label)
    "lr": ("left", "right"),
    "golf": ("first", "last"),
    "age": ("oldest", "newest"),
    "price": ("most expensive", "least expensive"),
}
_NOUN_FAMILY = {"books": "lr", "birds": "lr", "golfers": "golf", "vehicles": "age", "fruits": "price"}

_LABEL_SIDE = {
    "left": "start", "leftmost": "start", "first": "start", "above": "start", "top": "start",
    "oldest": "start", "most expensive": "start", "priciest": "start", "highest": "start",
    "right": "end", "rightmost": "end", "last": "end", "below": "end", "bottom": "end",
    "newest": "end", "youngest": "end", "least expensive": "end", "cheapest": "end", "lowest": "end",
}


def _abs_phrase(fam: str, side: str, k: int) -> str:
    """Position k (0-based) counted from `side`, without the verb: "the second from the left"."""
    o = _ORDS[k] if k < len(_ORDS) else f"{k + 1}th"
    if fam == "golf":
        if side == "start":
            return "first" if k == 0 else o
        return "last" if k == 0 else f"{o}-to-last"
    if fam == "age":
        if side == "start":
            return "the oldest" if k == 0 else f"the {o}-oldest"
        return "the newest" if k == 0 else f"the {o}-newest"
    if fam == "price":
        if side == "start":
            return "the most expensive" if k == 0 else f"the {o}-most expensive"
        return "the cheapest" if k == 0 else f"the {o}-cheapest"
    if side == "start":
        return "the leftmost" if k == 0 else f"the {o} from the left"
    return "the rightmost" if k == 0 else f"the {o} from the right"


def _abs_pred(fam: str, side: str, k: int, plural: bool = False) -> str:
    phrase = _abs_phrase(fam, side, k)
    if fam == "golf":
        return f"finished {phrase}"
    return f"{'are' if plural else 'is'} {phrase}"


def _rel_pred(fam: str, forward: bool, plural: bool = False, variant: int = 0) -> str:
    """Predicate saying that the subject comes before (`forward`) / after the object on the axis."""
    be = "are" if plural else "is"
    if fam == "golf":
        return "finished above" if forward else "finished below"
    if fam == "age":
        return f"{be} older than" if forward else f"{be} newer than"
    if fam == "price":
        if forward:
            return f"{be} more expensive than"
        return f"{be} {'less expensive' if variant % 2 else 'cheaper'} than"
    return f"{be} to the left of" if forward else f"{be} to the right of"


# --------------------------------------------------------------------------------------------
# scenarios (generation)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Scenario:
    name: str
    family: str
    noun_sg: str
    noun_pl: str
    intro: str  # with {n} and {items}
    pool: tuple[str, ...]
    proper: bool = False  # golfers: names, no article
    plural: bool = False  # fruits: "The apples are ..."
    suffix: str = ""  # books: "white" -> "white book"

    def item(self, short: str) -> str:
        """The object as listed in the scenario sentence: "a white book", "an owl", "Ana", "apples"."""
        if self.proper or self.plural:
            return short
        full = f"{short} {self.suffix}" if self.suffix else short
        return ("an " if full[0] in "aeiou" else "a ") + full

    def np(self, short: str) -> str:
        if self.proper:
            return short
        return f"the {short} {self.suffix}" if self.suffix else f"the {short}"


_SCENARIOS = (
    _Scenario("books", "lr", "book", "books", "On a shelf, there are {n} books: {items}.",
              ("white", "green", "orange", "red", "blue", "black", "brown", "gray", "purple", "yellow"),
              suffix="book"),
    _Scenario("birds", "lr", "bird", "birds", "On a branch, there are {n} birds: {items}.",
              ("hummingbird", "cardinal", "blue jay", "owl", "raven", "quail", "robin", "falcon", "hawk",
               "crow")),
    _Scenario("golfers", "golf", "golfer", "golfers", "In a golf tournament, there were {n} golfers: {items}.",
              ("Ana", "Rob", "Amy", "Dan", "Joe", "Eve", "Eli", "Mel", "Mya", "Ada"), proper=True),
    _Scenario("vehicles", "age", "vehicle", "vehicles", "In an antique car show, there are {n} vehicles: {items}.",
              ("motorcyle", "bus", "tractor", "sedan", "convertible", "truck", "minivan", "limousine",
               "station wagon", "hatchback")),
    _Scenario("fruits", "price", "fruit", "fruits", "A fruit stand sells {n} fruits: {items}.",
              ("apples", "peaches", "mangoes", "loquats", "watermelons", "oranges", "kiwis", "plums", "pears",
               "cantaloupes"), plural=True),
)

# spelling variants accepted for an object (BIG-Bench itself writes "motorcyle")
_ALIASES = {"motorcyle": ("motorcycle",), "motorcycle": ("motorcyle",), "gray": ("grey",), "grey": ("gray",)}


# --------------------------------------------------------------------------------------------
# permutation bitsets
# --------------------------------------------------------------------------------------------
class _Tables:
    """All n! orders of objects 0..n-1 (perm[pos] = object) and bitsets of where each fact holds."""

    def __init__(self, n: int):
        self.n = n
        self.perms = list(itertools.permutations(range(n)))
        size = len(self.perms)
        self.full = (1 << size) - 1
        nbytes = (size + 7) // 8
        at = [[bytearray(nbytes) for _ in range(n)] for _ in range(n)]
        off = [[[bytearray(nbytes) for _ in range(2 * n - 1)] for _ in range(n)] for _ in range(n)]
        pos = [0] * n
        for i, perm in enumerate(self.perms):
            byte, bit = i >> 3, 1 << (i & 7)
            for p, o in enumerate(perm):
                pos[o] = p
                at[o][p][byte] |= bit
            for a in range(n):
                pa = pos[a] - n + 1
                row = off[a]
                for b in range(n):
                    if a != b:
                        row[b][pos[b] - pa][byte] |= bit
        conv = lambda ba: int.from_bytes(bytes(ba), "little")  # noqa: E731
        self.at = [[conv(at[o][p]) for p in range(n)] for o in range(n)]
        # off[a][b][d + n - 1]: pos[b] - pos[a] == d
        self.off = [[[conv(x) for x in off[a][b]] for b in range(n)] for a in range(n)]
        self._cache: dict = {}

    def start(self, x: int, k: int, exact: bool) -> int:
        n = self.n
        if exact:
            return self.at[x][k] if 0 <= k < n else 0
        key = ("s", x, k)
        if key not in self._cache:
            m = 0
            for p in range(max(k, 0), n):
                m |= self.at[x][p]
            self._cache[key] = m
        return self._cache[key]

    def end(self, x: int, k: int, exact: bool) -> int:
        n = self.n
        if exact:
            return self.at[x][n - 1 - k] if 0 <= k < n else 0
        key = ("e", x, k)
        if key not in self._cache:
            m = 0
            for p in range(0, n - k):
                m |= self.at[x][p]
            self._cache[key] = m
        return self._cache[key]

    def gap(self, a: int, b: int, k: int, exact: bool) -> int:
        """b comes after a with exactly (or at least) k objects in between."""
        n = self.n
        if a == b:
            return 0
        if exact:
            d = k + 1
            return self.off[a][b][d + n - 1] if 1 <= d < n else 0
        key = ("g", a, b, k)
        if key not in self._cache:
            m = 0
            for d in range(max(k + 1, 1), n):
                m |= self.off[a][b][d + n - 1]
            self._cache[key] = m
        return self._cache[key]

    def before(self, a: int, b: int) -> int:
        return self.gap(a, b, 0, False)


_TABLES: dict[int, _Tables] = {}


def _tables(n: int) -> _Tables:
    if n not in _TABLES:
        _TABLES[n] = _Tables(n)
    return _TABLES[n]


# A pattern is (chain, gaps): named objects from start to end and len(chain) + 1 gaps (k, exact).
Pattern = tuple[tuple[int, ...], tuple[tuple[int, bool], ...]]


def _pattern_mask(T: _Tables, pat: Pattern) -> int:
    chain, gaps = pat
    if len(set(chain)) != len(chain):
        return 0
    if not chain:
        k, exact = gaps[0]
        return T.full if (T.n == k if exact else T.n >= k) else 0
    m = T.full & T.start(chain[0], *gaps[0])
    for i in range(len(chain) - 1):
        m &= T.gap(chain[i], chain[i + 1], *gaps[i + 1])
    return m & T.end(chain[-1], *gaps[-1])


def _is_total(T: _Tables, pat: Pattern) -> bool:
    chain, gaps = pat
    return len(chain) == T.n and len(set(chain)) == T.n and all(g == (0, True) for g in gaps)


def _constraint_mask(T: _Tables, c: tuple) -> int:
    if c[0] == "before":
        return T.before(c[1], c[2])
    _, x, side, k = c
    return T.start(x, k, True) if side == "start" else T.end(x, k, True)


def _constraint_pattern(c: tuple) -> Pattern:
    if c[0] == "before":
        return (c[1], c[2]), ((0, False), (0, False), (0, False))
    _, x, side, k = c
    if side == "start":
        return (x,), ((k, True), (0, False))
    return (x,), ((0, False), (k, True))


def _render(T: _Tables, M: int, cands) -> Pattern:
    """The most informative single ordering over objects in `cands` that every order in M matches.

    Among all chains of objects whose relative order is the same in every order of M, pick the one
    whose ordering (exact gaps where M fixes them, `??` elsewhere) matches the fewest orders; ties:
    a total ordering, then fewer objects, then the smaller object indices."""
    cands = sorted(set(cands))
    n, full = T.n, T.full
    nc = len(cands)
    start_at, end_at = {}, {}
    for x in cands:
        for p in range(n):
            if M & ~T.at[x][p] == 0:
                start_at[x] = p
                end_at[x] = n - 1 - p
                break
    comp = [1 << i for i in range(nc)]
    rank = {}  # (a, b) -> exact offset or 0 when a is always before b
    for i, a in enumerate(cands):
        for j, b in enumerate(cands):
            if i != j and M & ~T.before(a, b) == 0:
                comp[i] |= 1 << j
                comp[j] |= 1 << i
                d = next((d for d in range(1, n) if M & ~T.off[a][b][d + n - 1] == 0), 0)
                rank[(a, b)] = d
    best_key, best = None, None
    for sub in range(1 << nc):
        idx = [i for i in range(nc) if sub >> i & 1]
        if any(sub & ~comp[i] for i in idx):
            continue
        objs = [cands[i] for i in idx]
        if not objs:
            pat, mask = ((), ((0, False),)), full
        else:
            chain = sorted(objs, key=lambda o: sum(1 for q in objs if (q, o) in rank))
            first, last = chain[0], chain[-1]
            gaps = [(start_at[first], True) if first in start_at else (0, False)]
            mask = T.start(first, *gaps[0])
            for a, b in zip(chain, chain[1:]):
                d = rank[(a, b)]
                g = (d - 1, True) if d else (0, False)
                gaps.append(g)
                mask &= T.gap(a, b, *g)
            gaps.append((end_at[last], True) if last in end_at else (0, False))
            mask &= T.end(last, *gaps[-1])
            pat = (tuple(chain), tuple(gaps))
        key = (mask.bit_count(), 0 if _is_total(T, pat) else 1, len(pat[0]), pat[0])
        if best_key is None or key < best_key:
            best_key, best = key, pat
    return best


# --------------------------------------------------------------------------------------------
# parsing questions
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Obj:
    short: str  # name used in orderings
    item: str  # as listed, without article
    np: str  # noun phrase inside a sentence: "the white book", "Ana"
    plural: bool = False  # "the apples are"


@dataclass
class _Problem:
    n: int
    fam: str
    noun_sg: str
    noun_pl: str
    objects: list[_Obj]
    statements: list[tuple[str, tuple]]  # (sentence without final period, constraint)
    options: list[tuple[str, str, int, tuple]]  # (letter, text, object, (side, k))
    truth: tuple[int, ...]
    answer: str
    asked: tuple[str, int]
    asked_pred: str  # singular predicate of the asked position: "is the leftmost", "finished third"
    mention_re: re.Pattern = field(repr=False, default=None)
    forms: dict = field(repr=False, default_factory=dict)
    token_re: re.Pattern = field(repr=False, default=None)

    @property
    def start_label(self) -> str:
        return _FAMILIES[self.fam][0]

    @property
    def end_label(self) -> str:
        return _FAMILIES[self.fam][1]

    def index(self, side: str, k: int) -> int:
        return k if side == "start" else self.n - 1 - k

    def gold_option(self) -> tuple[str, str, int, tuple]:
        return next(o for o in self.options if o[0] == self.answer)


_LIST_RE = re.compile(
    r"\b(two|three|four|five|six|seven|eight|nine|ten|\d+)\s+([A-Za-z][A-Za-z ]*?)\s*:\s*([^.]+)\.",
    re.IGNORECASE,
)
_OPTION_RE = re.compile(r"^\s*\(([A-Za-z])\)\s*(.*?)\s*$")

_BEFORE_KEYS = ("left of", "above", "older than", "more expensive than", "pricier than", "more costly than",
                "ahead of", "higher than", "earlier than", "before")
_AFTER_KEYS = ("right of", "below", "newer than", "younger than", "cheaper than", "less expensive than",
               "less costly than", "behind", "lower than", "later than", "after")

_SUPER_SIDE = {"oldest": "start", "newest": "end", "youngest": "end", "cheapest": "end", "priciest": "start",
               "most expensive": "start", "least expensive": "end"}
_SUPER_ALT = r"oldest|newest|youngest|cheapest|priciest|most[\s-]+expensive|least[\s-]+expensive"
_POS_RULES = (
    (re.compile(rf"\b({_ORD_ALT})[\s-]+(?:from|to)[\s-]+(?:the[\s-]+)?(left|right)\b"),
     lambda m: ("start" if m[2] == "left" else "end", _ORD[m[1]] - 1)),
    (re.compile(r"\bleft[\s-]*most\b"), lambda m: ("start", 0)),
    (re.compile(r"\bright[\s-]*most\b"), lambda m: ("end", 0)),
    (re.compile(rf"\b({_ORD_ALT})[\s-]+to[\s-]+(?:the[\s-]+)?last\b"), lambda m: ("end", _ORD[m[1]] - 1)),
    (re.compile(rf"\b({_ORD_ALT})[\s-]+({_SUPER_ALT})\b"),
     lambda m: (_SUPER_SIDE[re.sub(r"[\s-]+", " ", m[2])], _ORD[m[1]] - 1)),
    (re.compile(rf"\b({_SUPER_ALT})\b"), lambda m: (_SUPER_SIDE[re.sub(r"[\s-]+", " ", m[1])], 0)),
    (re.compile(r"\blast\b"), lambda m: ("end", 0)),
    (re.compile(rf"\b({_ORD_ALT})\b"), lambda m: ("start", _ORD[m[1]] - 1)),
)


def _parse_position(text: str) -> tuple[str, int] | None:
    t = text.lower()
    for rx, fn in _POS_RULES:
        m = rx.search(t)
        if m:
            return fn(m)
    return None


def _parse_relation(text: str) -> str | None:
    t = " " + re.sub(r"\s+", " ", text.lower()) + " "
    hits = []
    for key in _BEFORE_KEYS:
        m = re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", t)
        if m:
            hits.append((m.start(), -len(key), "before"))
    for key in _AFTER_KEYS:
        m = re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", t)
        if m:
            hits.append((m.start(), -len(key), "after"))
    return min(hits)[2] if hits else None


def _family_from_text(noun_pl: str, text: str) -> str:
    if noun_pl.lower() in _NOUN_FAMILY:
        return _NOUN_FAMILY[noun_pl.lower()]
    t = text.lower()
    if re.search(r"\b(left|right|leftmost|rightmost)\b", t):
        return "lr"
    if "finished" in t:
        return "golf"
    if re.search(r"\b(older|newer|oldest|newest)\b", t):
        return "age"
    if re.search(r"expensive|cheap", t):
        return "price"
    return "lr"


def _singular(noun: str) -> str:
    if noun.endswith("ies"):
        return noun[:-3] + "y"
    if noun.endswith("s") and not noun.endswith("ss"):
        return noun[:-1]
    return noun


def _strip_article(item: str) -> str:
    return re.sub(r"^(?:a|an|the)\s+", "", item.strip(), flags=re.IGNORECASE)


def _build_objects(items: list[str], noun_sg: str, noun_pl: str = "") -> list[_Obj]:
    objs = []
    known = noun_pl.lower() in _NOUN_FAMILY
    for raw in items:
        item = _strip_article(raw)
        short = item
        if noun_sg and item.lower().endswith(" " + noun_sg.lower()) and len(item) > len(noun_sg) + 1:
            short = item[: -len(noun_sg) - 1]
        proper = item[:1].isupper()
        np = item if proper else f"the {item}"
        if known:
            plural = noun_pl.lower() == "fruits"
        else:
            plural = not proper and item.endswith("s") and not item.endswith(("ss", "us"))
        objs.append(_Obj(short, item, np, plural))
    return objs


def _attach_regexes(pb: _Problem) -> None:
    forms: dict[str, int] = {}
    for i, o in enumerate(pb.objects):
        for f in (o.item, o.short, *_ALIASES.get(o.short.lower(), ()), *_ALIASES.get(o.item.lower(), ())):
            forms.setdefault(f.lower(), i)
        for a in _ALIASES.get(o.short.lower(), ()):
            if o.item.lower() != o.short.lower():
                forms.setdefault(o.item.lower().replace(o.short.lower(), a), i)
    alt = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    pb.forms = forms
    pb.mention_re = re.compile(rf"(?<![\w-])(?:the\s+)?({alt})(?![\w-])", re.IGNORECASE)
    pb.token_re = re.compile(rf"\s*(\?\?|\?|(?<![\w-])(?:{alt})(?![\w-]))", re.IGNORECASE)


def _mentions(pb: _Problem, text: str) -> list[tuple[int, int, int]]:
    return [(m.start(), m.end(), pb.forms[m.group(1).lower()]) for m in pb.mention_re.finditer(text)]


def _object_of(pb: _Problem, text: str) -> int | None:
    """The object a noun phrase names exactly ("the white book", "Ana"), or None."""
    t = text.strip().rstrip(".").strip()
    m = pb.mention_re.fullmatch(t)
    return pb.forms[m.group(1).lower()] if m else None


def _parse_statement(pb: _Problem, sentence: str) -> tuple | None:
    s = sentence.strip().rstrip(".").strip()
    ms = _mentions(pb, s)
    if len(ms) == 2 and ms[0][2] != ms[1][2]:
        rel = _parse_relation(s[ms[0][1]: ms[1][0]])
        if rel is None:
            return None
        a, b = ms[0][2], ms[1][2]
        return ("before", a, b) if rel == "before" else ("before", b, a)
    if len(ms) == 1:
        rest = s[ms[0][1]:] if s[ms[0][1]:].strip() else s[: ms[0][0]]
        if _parse_relation(rest) is not None:
            return None
        pos = _parse_position(rest)
        if pos is None or not 0 <= pos[1] < pb.n:
            return None
        return ("at", ms[0][2], pos[0], pos[1])
    return None


def _split_question(question: str) -> tuple[str, list[tuple[str, str]]]:
    text = question.strip()
    if text.startswith("Q:"):
        text = text[2:].strip()
    m = re.search(r"(?:^|\n|\s)Options:\s*", text)
    if not m:
        raise ValueError("no 'Options:' block in the question")
    paragraph = re.sub(r"\s+", " ", text[: m.start()]).strip()
    options = []
    for line in text[m.end():].splitlines():
        om = _OPTION_RE.match(line)
        if om:
            options.append((om.group(1).upper(), om.group(2)))
        elif line.strip() and options:
            break
    if not options:
        raise ValueError("no options in the question")
    return paragraph, options


@lru_cache(maxsize=4096)
def _problem(question: str) -> _Problem:
    if not isinstance(question, str):
        raise ValueError("question must be a string")
    paragraph, raw_options = _split_question(question)
    lm = _LIST_RE.search(paragraph)
    if not lm:
        raise ValueError("cannot find the list of objects")
    n = _count_of(lm.group(1))
    noun_pl = lm.group(2).strip().split()[-1]
    items = [x for x in re.split(r",\s*(?:and\s+)?|\s+and\s+", lm.group(3).strip()) if x.strip()]
    if n is None or n != len(items):
        raise ValueError("the number of listed objects does not match")
    if not 2 <= n <= _MAX_N:
        raise ValueError(f"only 2 to {_MAX_N} objects are supported, got {n}")
    noun_sg = _singular(noun_pl)
    objects = _build_objects(items, noun_sg, noun_pl)
    if len({o.item.lower() for o in objects}) != n:
        raise ValueError("duplicate objects")
    rest = paragraph[lm.end():]
    fam = _family_from_text(noun_pl, rest + " " + " ".join(t for _, t in raw_options))
    pb = _Problem(n, fam, noun_sg, noun_pl, objects, [], [], (), "", ("start", 0), "")
    _attach_regexes(pb)
    T = _tables(n)
    sentences = [s.strip() for s in re.split(r"\.(?:\s+|$)", rest) if s.strip()]
    mask = T.full
    for s in sentences:
        if not _mentions(pb, s):
            continue
        c = _parse_statement(pb, s)
        if c is None:
            raise ValueError(f"cannot read the statement {s!r}")
        pb.statements.append((s, c))
        mask &= _constraint_mask(T, c)
    if mask.bit_count() != 1:
        raise ValueError("the statements do not determine exactly one ordering")
    pb.truth = T.perms[mask.bit_length() - 1]
    true_pos = {o: p for p, o in enumerate(pb.truth)}
    for letter, text in raw_options:
        ms = _mentions(pb, text)
        if len(ms) != 1:
            raise ValueError(f"cannot read the option {text!r}")
        s0, e0, obj = ms[0]
        pos = _parse_position(text[e0:] if text[e0:].strip() else text[:s0])
        if pos is None or not 0 <= pos[1] < n:
            raise ValueError(f"cannot read the option {text!r}")
        pb.options.append((letter, text, obj, pos))
    if len({o[0] for o in pb.options}) != len(pb.options):
        raise ValueError("repeated option letters")
    good = [o for o in pb.options if true_pos[o[2]] == pb.index(*o[3])]
    if len(good) != 1:
        raise ValueError("not exactly one option is true")
    pb.answer = good[0][0]
    positions = {pb.index(*o[3]) for o in pb.options}
    pb.asked = good[0][3] if len(positions) > 1 else pb.options[0][3]
    pb.asked_pred = _option_pred(pb, good[0])
    return pb


def _option_pred(pb: _Problem, option) -> str:
    _, text, obj, pos = option
    ms = _mentions(pb, text)
    pred = text[ms[0][1]:].strip().rstrip(".") if ms and ms[0][0] <= 4 else ""
    if not pred or _parse_position(pred) != pos:
        return _abs_pred(pb.fam, pos[0], pos[1])
    return re.sub(r"^are\b", "is", pred)


# --------------------------------------------------------------------------------------------
# orderings as text
# --------------------------------------------------------------------------------------------
def _pattern_text(pb: _Problem, pat: Pattern) -> str:
    chain, gaps = pat
    toks = [f"({pb.start_label})"]
    for i, x in enumerate(chain):
        k, exact = gaps[i]
        toks += ["?"] * k + ([] if exact else ["??"])
        toks.append(pb.objects[x].short)
    k, exact = gaps[-1]
    toks += ["?"] * k + ([] if exact else ["??"])
    toks.append(f"({pb.end_label})")
    return " ".join(toks)


def _parse_pattern(pb: _Problem, text: str) -> Pattern | None:
    m = re.fullmatch(r"\s*\(([^()]*)\)(.*?)\(([^()]*)\)\s*", text)
    if not m:
        return None
    s1 = _LABEL_SIDE.get(re.sub(r"[\s-]+", " ", m.group(1).strip().lower()))
    s2 = _LABEL_SIDE.get(re.sub(r"[\s-]+", " ", m.group(3).strip().lower()))
    if s1 is None or s2 is None or s1 == s2:
        return None
    body, toks, i = m.group(2), [], 0
    while i < len(body):
        if body[i:].strip() == "":
            break
        tm = pb.token_re.match(body, i)
        if not tm:
            return None
        t = tm.group(1)
        toks.append(t if t.startswith("?") else pb.forms[t.lower()])
        i = tm.end()
    if s1 == "end":
        toks.reverse()
    chain, gaps, k, exact = [], [], 0, True
    for t in toks:
        if t == "?":
            k += 1
        elif t == "??":
            exact = False
        else:
            gaps.append((k, exact))
            chain.append(t)
            k, exact = 0, True
    gaps.append((k, exact))
    return tuple(chain), tuple(gaps)


def _np(pb: _Problem, x: int) -> str:
    return pb.objects[x].np


def _describe_before(pb: _Problem, a: int, b: int) -> str:
    return f"{_np(pb, a)} {_rel_pred(pb.fam, True, pb.objects[a].plural)} {_np(pb, b)}"


def _describe_at(pb: _Problem, x: int, side: str, k: int) -> str:
    return f"{_np(pb, x)} {_abs_pred(pb.fam, side, k, pb.objects[x].plural)}"


def _describe_gap(pb: _Problem, a: int, b: int, k: int, exact: bool) -> str:
    noun = pb.noun_sg if k == 1 else pb.noun_pl
    if exact and k == 0:
        return f"there is no {pb.noun_sg} between {_np(pb, a)} and {_np(pb, b)}"
    qual = "exactly" if exact else "at least"
    return f"there {'is' if k == 1 else 'are'} {qual} {_num_word(k)} {noun} between {_np(pb, a)} and {_np(pb, b)}"


# --------------------------------------------------------------------------------------------
# checking attempts
# --------------------------------------------------------------------------------------------
@dataclass
class _Rec:
    label: str
    kind: str  # stmt | total | comb | accord | final
    mask: int = 0
    objs: frozenset = frozenset()
    stmt: int | None = None
    order: tuple | None = None  # comb with a total ordering
    obj: int | None = None  # accord: the object read off
    pat: Pattern | None = None  # stmt / comb: the ordering as written


_STMT_RE = re.compile(r'^(.*?):\s*"(.*)"\s*\.?\s*$')
_TOTAL_RE = re.compile(r"^There (?:are|were|is) in total (\S+) ([^:]+?)\s*:\s*(.+?)\.?\s*$", re.IGNORECASE)
_COMB_RE = re.compile(r'^Combining (.+?) we get the following ordering:\s*"(.*)"\s*\.?\s*$', re.IGNORECASE)
_ACCORD_RE = re.compile(r"^According to this ordering, the (.+?) that (.+) is (.+?)\.?\s*$", re.IGNORECASE)
_ANSWER_RE = re.compile(r"answer is \(([A-Za-z])\)", re.IGNORECASE)


def _lenient_steps(attempt: str) -> list[Step]:
    steps = []
    for line in str(attempt).splitlines():
        st = formats.parse_step(line)
        if st is not None:
            steps.append(st)
    if not steps:
        raise ValueError("the attempt has no step lines")
    return steps


class _Err(Exception):
    def __init__(self, segment: str, reason: str):
        super().__init__(reason)
        self.segment = " ".join(str(segment).split()) or "?"
        self.reason = " ".join(str(reason).split())


def _key(r: _Rec) -> tuple[int, int]:
    return r.mask.bit_count(), 0 if r.order is not None else 1


def _latest(recs: list[_Rec], kind: str) -> _Rec | None:
    for r in reversed(recs):
        if kind == "total_order" and r.kind == "comb" and r.order is not None:
            return r
        if r.kind == kind:
            return r
    return None


def _check_step(pb: _Problem, st: Step, recs: list[_Rec]) -> _Rec:
    T = _tables(pb.n)
    text = st.text.strip()
    if st.label == FINAL_LABEL:
        return _check_final(pb, st, text, recs)
    m = _COMB_RE.match(text)
    if m:
        return _check_comb(pb, st, m, recs)
    m = _TOTAL_RE.match(text)
    if m:
        count = _count_of(m.group(1))
        if count != pb.n:
            raise _Err(f"in total {m.group(1)}",
                       f"the question describes {_num_word(pb.n)} {pb.noun_pl}, not {m.group(1)}")
        items = [x for x in re.split(r",\s*(?:and\s+)?|\s+and\s+", m.group(3)) if x.strip()]
        objs = [_object_of(pb, x) for x in items]
        if None in objs or sorted(objs) != list(range(pb.n)):
            names = _join_and([o.short for o in pb.objects])
            raise _Err(m.group(3), f"the {pb.noun_pl} in the question are {names}")
        return _Rec(st.label, "total", T.full, frozenset(range(pb.n)))
    m = _ACCORD_RE.match(text)
    if m:
        return _check_accord(pb, st, m, recs)
    m = _STMT_RE.match(text)
    if m:
        sentence, ptext = m.group(1).strip(), m.group(2).strip()
        c = _parse_statement(pb, sentence)
        idx = None
        if c is not None:
            cm = _constraint_mask(T, c)
            idx = next((i for i, (_, qc) in enumerate(pb.statements) if _constraint_mask(T, qc) == cm), None)
        if idx is None:
            raise _Err(sentence, f'the question does not state that {_lower_first(sentence.rstrip("."))}')
        pat = _parse_pattern(pb, ptext)
        if pat is None:
            raise _Err(ptext, _format_reason(pb))
        pm = _pattern_mask(T, pat)
        qc = pb.statements[idx][1]
        if _constraint_mask(T, qc) & ~pm:
            gold = _pattern_text(pb, _constraint_pattern(qc))
            raise _Err(ptext, f'the statement says that {_lower_first(sentence.rstrip("."))}, '
                              f'so the ordering should be "{gold}"')
        return _Rec(st.label, "stmt", pm, frozenset(pat[0]), stmt=idx, pat=pat)
    raise _Err(text, f"this step is neither a statement from the question, the list of the {pb.noun_pl}, "
                     f"a combination of earlier steps, nor a reading of the final ordering")


def _format_reason(pb: _Problem) -> str:
    return (f'this ordering cannot be read; it should look like "({pb.start_label}) ?? {pb.objects[0].short} ?? '
            f'{pb.objects[1].short} ?? ({pb.end_label})"')


def _check_comb(pb: _Problem, st: Step, m: re.Match, recs: list[_Rec]) -> _Rec:
    T = _tables(pb.n)
    cite_text, ptext = m.group(1), m.group(2).strip()
    labels = re.findall(r"\(([^()]*)\)", cite_text)
    if not labels:
        raise _Err(cite_text, "it does not say which earlier steps are combined")
    by_label = {r.label: r for r in recs}
    cited = []
    for lab in labels:
        r = by_label.get(lab.strip())
        if r is None or r.kind not in ("stmt", "total", "comb"):
            raise _Err(cite_text, f"there is no earlier step ({lab}) with an ordering to combine")
        cited.append(r)
    pat = _parse_pattern(pb, ptext)
    if pat is None:
        raise _Err(ptext, _format_reason(pb))
    M = T.full
    for r in cited:
        M &= r.mask
    pm = _pattern_mask(T, pat)
    labs = [r.label for r in cited]
    if M & ~pm:
        raise _Err(ptext, _comb_reason(pb, T, M, pat, labs))
    order = tuple(pat[0]) if _is_total(T, pat) else None
    return _Rec(st.label, "comb", pm, frozenset(pat[0]), order=order, pat=pat)


def _atoms(T: _Tables, pat: Pattern):
    """(mask, description args) of each elementary fact an ordering states, from start to end."""
    chain, gaps = pat
    if not chain:
        yield _pattern_mask(T, pat), ("count",)
        return
    if len(set(chain)) != len(chain):
        dup = next(x for x in chain if chain.count(x) > 1)
        yield 0, ("dup", dup)
        return
    k, exact = gaps[0]
    if exact or k:
        yield T.start(chain[0], k, exact), ("start", chain[0], k, exact)
    for i in range(len(chain) - 1):
        a, b = chain[i], chain[i + 1]
        yield T.before(a, b), ("before", a, b)
        k, exact = gaps[i + 1]
        if exact or k:
            yield T.gap(a, b, k, exact), ("gap", a, b, k, exact)
    k, exact = gaps[-1]
    if exact or k:
        yield T.end(chain[-1], k, exact), ("end", chain[-1], k, exact)


def _atom_text(pb: _Problem, atom: tuple) -> str:
    kind = atom[0]
    if kind == "before":
        return _describe_before(pb, atom[1], atom[2])
    if kind == "gap":
        return _describe_gap(pb, *atom[1:])
    if kind in ("start", "end"):
        x, k, exact = atom[1:]
        if exact:
            return _describe_at(pb, x, kind, k)
        where = "before" if kind == "start" else "after"
        return f"at least {_num_word(k)} {pb.noun_pl if k != 1 else pb.noun_sg} come {where} {_np(pb, x)}"
    if kind == "dup":
        return f"{_np(pb, atom[1])} appears only once"
    return f"there are {_num_word(pb.n)} {pb.noun_pl}"


def _comb_reason(pb: _Problem, T: _Tables, M: int, pat: Pattern, labs: list[str]) -> str:
    cites = _cite_reason(labs)
    if M == 0:
        return f"{cites} contradict each other"
    chain = pat[0]
    pm = _pattern_mask(T, pat)
    if len(set(chain)) == len(chain):
        for i, a in enumerate(chain):  # an order the cited steps settle the other way round
            for b in chain[i + 1:]:
                if M & ~T.before(b, a) == 0:
                    return f"according to {cites}, {_describe_before(pb, b, a)}"
        for x in chain:  # a position the cited steps fix, put elsewhere
            for p in range(pb.n):
                if M & ~T.at[x][p] == 0 and pm & T.at[x][p] == 0:
                    side, k = ("start", p) if p <= pb.n - 1 - p else ("end", pb.n - 1 - p)
                    return f"according to {cites}, {_describe_at(pb, x, side, k)}"
    for amask, atom in _atoms(T, pat):
        if M & ~amask == 0:
            continue
        if atom[0] == "dup":
            return f"{_np(pb, atom[1])} appears more than once in this ordering"
        if M & amask == 0:
            # contradicted: say what the cited steps establish instead
            if atom[0] in ("before", "gap"):
                a, b = atom[1], atom[2]
                if M & ~T.before(b, a) == 0:
                    return f"according to {cites}, {_describe_before(pb, b, a)}"
            if atom[0] in ("start", "end"):
                x = atom[1]
                for p in range(pb.n):
                    if M & ~T.at[x][p] == 0:
                        side, k = ("start", p) if p <= pb.n - 1 - p else ("end", pb.n - 1 - p)
                        return f"according to {cites}, {_describe_at(pb, x, side, k)}"
            return f"according to {cites}, it cannot be that {_atom_text(pb, atom)}"
        return f"{cites} do not establish that {_atom_text(pb, atom)}" if len(labs) > 1 else \
            f"{cites} does not establish that {_atom_text(pb, atom)}"
    return f"this ordering does not follow from {cites}"


def _check_accord(pb: _Problem, st: Step, m: re.Match, recs: list[_Rec]) -> _Rec:
    tot = _latest(recs, "total_order")
    if tot is None:
        raise _Err(st.text.strip().split(",")[0], f"the ordering of all the {pb.noun_pl} has not been established yet")
    pred, np_text = m.group(2).strip(), m.group(3).strip()
    pos = _parse_position(pred)
    if pos is None or not 0 <= pos[1] < pb.n or pb.index(*pos) != pb.index(*pb.asked):
        raise _Err(pred, f"the question asks for the {pb.noun_sg} that {pb.asked_pred}")
    obj = _object_of(pb, np_text)
    expected = tot.order[pb.index(*pos)]
    if obj is None:
        raise _Err(np_text, f'"{np_text}" is not one of the {pb.noun_pl} in the question')
    if obj != expected:
        raise _Err(np_text, f"according to the ordering in step ({tot.label}), the {pb.noun_sg} that {pred} "
                            f"is {_np(pb, expected)}")
    return _Rec(st.label, "accord", obj=obj)


def _check_final(pb: _Problem, st: Step, text: str, recs: list[_Rec]) -> _Rec:
    am = None
    for am in _ANSWER_RE.finditer(text):
        pass
    if am is None:
        raise _Err(text, 'the answer should end with "So the answer is (X)" naming one of the options')
    letter = am.group(1).upper()
    letters = [o[0] for o in pb.options]
    if letter not in letters:
        raise _Err(am.group(0), f"there is no option ({letter}); the options are "
                                f"{_join_and(['(' + x + ')' for x in letters])}")
    tot = _latest(recs, "total_order")
    if tot is None:
        raise _Err(am.group(0), f"the ordering of all the {pb.noun_pl} has not been established yet")
    acc = _latest(recs, "accord")
    ref = acc if acc is not None and recs.index(acc) > recs.index(tot) else tot
    expected_obj = tot.order[pb.index(*pb.asked)]
    right = next((o for o in pb.options if o[2] == expected_obj and pb.index(*o[3]) == pb.index(*pb.asked)), None)
    if right is None:
        raise _Err(am.group(0), "none of the options matches the ordering")
    before = re.split(r"\bso\s+the\s+answer\b", text[: am.start()] + "answer", flags=re.IGNORECASE)[0].strip()
    if before:
        c = _parse_statement(pb, before)
        if c is not None and c[0] == "at" and (c[1] != expected_obj or pb.index(c[2], c[3]) != pb.index(*pb.asked)):
            raise _Err(before.rstrip("."), f"according to step ({ref.label}), the {pb.noun_sg} that "
                                           f"{pb.asked_pred} is {_np(pb, expected_obj)}")
    if letter != right[0]:
        raise _Err(am.group(0), f'according to step ({ref.label}), the correct option is ({right[0]}) "{right[1]}"')
    return _Rec(st.label, "final")


def _check(pb: _Problem, steps: list[Step]) -> tuple[list[_Rec], tuple[int, str, str] | None]:
    """Verified records of the steps before the first error, and (index, segment, reason) of it."""
    recs: list[_Rec] = []
    for i, st in enumerate(steps):
        try:
            if any(r.kind == "final" for r in recs):
                raise _Err(st.text, "the final response should be the last step")
            if st.label in {r.label for r in recs}:
                raise _Err(st.text, f"step ({st.label}) appears twice")
            recs.append(_check_step(pb, st, recs))
        except _Err as e:
            return recs, (i, e.segment, e.reason)
    if not recs or recs[-1].kind != "final":
        last = steps[-1]
        return recs[:-1], (len(steps) - 1, last.text, "the final response with the chosen option is missing")
    return recs, None


# --------------------------------------------------------------------------------------------
# writing rationales (gold, IMP continuation)
# --------------------------------------------------------------------------------------------
def _continue(pb: _Problem, prefix: list[_Rec], next_no: int) -> list[Step]:
    """Correct steps that continue a verified prefix (empty prefix: the gold rationale)."""
    T = _tables(pb.n)
    out: list[Step] = []
    recs = list(prefix)

    def emit(text: str, rec: _Rec) -> _Rec:
        rec.label = str(next_no + len(out))
        out.append(Step(rec.label, text))
        recs.append(rec)
        return rec

    if any(r.kind == "final" for r in recs):
        return out
    # a statement counts as stated once a step gives its full ordering (a weaker one may follow too)
    done = {r.stmt for r in recs if r.kind == "stmt" and r.mask == _constraint_mask(T, pb.statements[r.stmt][1])}
    for i, (sentence, c) in enumerate(pb.statements):
        if i not in done:
            pat = _constraint_pattern(c)
            emit(f'{sentence}: "{_pattern_text(pb, pat)}".',
                 _Rec("", "stmt", _pattern_mask(T, pat), frozenset(pat[0]), stmt=i, pat=pat))
    total = _latest(recs, "total")
    if total is None:
        total = emit(f"There are in total {_num_word(pb.n)} {pb.noun_pl}: "
                     f"{_join_and([o.short for o in pb.objects])}.",
                     _Rec("", "total", T.full, frozenset(range(pb.n))))
    stmts = [r for r in recs if r.kind == "stmt"]
    combs = [r for r in recs if r.kind == "comb"]

    def combined(cited: list[_Rec], M: int) -> tuple[Pattern, int]:
        """The ordering a combination of `cited` states, and its mask."""
        cands = frozenset().union(*(r.objs for r in cited))
        pat = _render(T, M, cands)
        if all(r.kind != "total" for r in cited):
            pat = _open(pb.n, pat, cited)
        return pat, _pattern_mask(T, pat)

    def comb(cited: list[_Rec], M: int) -> _Rec:
        pat, pm = combined(cited, M)
        labs = sorted((r.label for r in cited), key=_label_key)
        order = tuple(pat[0]) if _is_total(T, pat) else None
        return emit(f'Combining {_cite(labs)} we get the following ordering: "{_pattern_text(pb, pat)}".',
                    _Rec("", "comb", pm, frozenset(pat[0]), order=order, pat=pat))

    # Pool planner: repeatedly combine the two pool steps whose combination is most informative,
    # provided it is strictly more informative than both; steps it subsumes leave the pool.
    # The list step (all objects, no constraint) stays in the pool to place left-over objects.
    done_total = next((r for r in reversed(combs) if r.order is not None), None)
    pool = _prune(stmts + combs)
    used: set[tuple[str, str]] = set()
    cur = done_total
    rounds = 0
    while cur is None:
        rounds += 1
        best = None
        cands_pool = pool + [total]
        for i, a in enumerate(cands_pool):
            for b in cands_pool[i + 1:]:
                if (a.label, b.label) in used:
                    continue
                M = a.mask & b.mask
                if not M:
                    continue
                pat, pm = combined([a, b], M)
                k = (pm.bit_count(), 0 if _is_total(T, pat) else 1)
                if k < min(_key(a), _key(b)) and (best is None or k < best[0]):
                    best = (k, a, b, M)
        if best is None or rounds > 4 * pb.n:
            base = min(reversed(pool), key=_key) if pool else total
            M = base.mask
            for r in stmts:
                M &= r.mask
            if M.bit_count() != 1:
                raise ValueError("the statements do not determine exactly one ordering")
            cited = [base, *[r for r in stmts if r is not base], total]
            cur = comb(cited, M)
            break
        _, a, b, M = best
        used.add((a.label, b.label))
        new = comb([a, b], M)
        pool = _prune(pool + [new])
        if new.order is not None:
            cur = new
    acc = _latest(recs, "accord")
    if acc is not None and recs.index(acc) > recs.index(cur):
        obj = acc.obj
    else:
        obj = cur.order[pb.index(*pb.asked)]
        emit(f"According to this ordering, the {pb.noun_sg} that {pb.asked_pred} is {_np(pb, obj)}.",
             _Rec("", "accord", obj=obj))
    opt = next((o for o in pb.options if o[2] == obj and pb.index(*o[3]) == pb.index(*pb.asked)), None)
    if opt is None:
        raise ValueError("no option matches the ordering")
    out.append(Step(FINAL_LABEL, f"{opt[1].rstrip('.')}. So the answer is ({opt[0]})."))
    return out


def _open(n: int, pat: Pattern, cited: list[_Rec]) -> Pattern:
    """Turn into `??` the gaps that are exact only because there are exactly n objects.

    A gap stays exact if the cited orderings also fix it, with the same value, among n + 1 objects
    (one unnamed object more).  Without the list step ("There are in total ..."), combinations are
    thus written as in the paper: "(most expensive) ?? plums ?? pears ?? kiwis ?? (least expensive)"."""
    if n + 1 > _MAX_N + 1 or any(r.pat is None for r in cited):
        return pat
    U = _tables(n + 1)
    M1 = U.full
    for r in cited:
        M1 &= _pattern_mask(U, r.pat)
    chain, gaps = pat
    if not chain or not M1:
        return pat
    new = list(gaps)
    k, exact = gaps[0]
    if exact and M1 & ~U.at[chain[0]][k]:
        new[0] = (0, False)
    for i, (a, b) in enumerate(zip(chain, chain[1:])):
        k, exact = gaps[i + 1]
        if exact and M1 & ~U.off[a][b][k + 1 + n]:
            new[i + 1] = (0, False)
    k, exact = gaps[-1]
    if exact and M1 & ~U.at[chain[-1]][n - k]:
        new[-1] = (0, False)
    return chain, tuple(new)


def _prune(items: list[_Rec]) -> list[_Rec]:
    """Drop the steps another step is at least as strong as (of equals, the latest stays)."""
    keep = []
    for i, r in enumerate(items):
        dominated = any(
            j != i and c.mask & ~r.mask == 0 and (c.mask != r.mask or j > i) for j, c in enumerate(items)
        )
        if not dominated:
            keep.append(r)
    return keep


def _label_key(label: str):
    try:
        return tuple(int(x) for x in label.split("."))
    except ValueError:
        return (10**9,)


def _next_number(steps: list[Step]) -> int:
    """The first step number after every numbered step of `steps` (new labels never collide)."""
    heads = [int(st.label.split(".")[0]) for st in steps if st.label.split(".")[0].isdigit()]
    return max(heads, default=0) + 1


# --------------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------------
def _statement_sentence(sc: _Scenario, shorts: list[str], c: tuple, rng: random.Random) -> str:
    subj = lambda x: _upper_first(sc.np(shorts[x]))  # noqa: E731
    if c[0] == "before":
        a, b = c[1], c[2]
        if rng.random() < 0.5:
            return f"{subj(a)} {_rel_pred(sc.family, True, sc.plural)} {sc.np(shorts[b])}."
        return f"{subj(b)} {_rel_pred(sc.family, False, sc.plural, rng.randrange(2))} {sc.np(shorts[a])}."
    _, x, side, k = c
    return f"{subj(x)} {_abs_pred(sc.family, side, k, sc.plural)}."


def _natural(n: int, p: int) -> list[tuple[str, int]]:
    """How BIG-Bench names position p (0-based from the start): the nearer end, both for the middle."""
    sides = (("start", p), ("end", n - 1 - p))
    return [(side, k) for side, k in sides if k <= n // 2 and (k == 0 or p not in (0, n - 1))]


def _sample_constraints(n: int, truth: tuple[int, ...], rng: random.Random) -> list[tuple]:
    T = _tables(n)
    pos = {o: p for p, o in enumerate(truth)}
    relative = [("before", a, b) for a in range(n) for b in range(n) if a != b and pos[a] < pos[b]]
    absolute = []
    for x in range(n):
        p = pos[x]
        absolute += [("at", x, side, k) for side, k in _natural(n, p)]
    chosen: list[tuple] = []
    for attempt in range(40):
        chosen, mask = [], T.full
        while mask.bit_count() > 1:
            pool = absolute if rng.random() < 0.35 else relative
            c = rng.choice(pool)
            cm = _constraint_mask(T, c)
            if mask & cm == mask:
                continue
            chosen.append(c)
            mask &= cm
        order = list(range(len(chosen)))
        rng.shuffle(order)
        for i in order:  # prune redundant statements (minimal set, like BIG-Bench)
            rest = [c for j, c in enumerate(chosen) if j != i and c is not None]
            m = T.full
            for c in rest:
                m &= _constraint_mask(T, c)
            if m.bit_count() == 1:
                chosen[i] = None
        chosen = [c for c in chosen if c is not None]
        if len(chosen) == n - 1:
            break
    rng.shuffle(chosen)
    return chosen


# --------------------------------------------------------------------------------------------
# the task
# --------------------------------------------------------------------------------------------
class LogicalDeduction(Task):
    name = "logical_deduction"
    label = "LD"
    info = INFO
    default_buckets = {"seen": ["3", "5"], "unseen": ["7"]}
    BUCKETS = ("3", "5", "7")

    # -- generation -------------------------------------------------------------------------
    def check_bucket(self, bucket: str) -> None:
        if bucket not in self.BUCKETS:
            raise ValueError(f"logical_deduction buckets are {', '.join(self.BUCKETS)}; got {bucket!r}")

    def sample(self, bucket: str, rng: random.Random) -> tuple[str, str]:
        self.check_bucket(bucket)
        n = int(bucket)
        sc = rng.choice(_SCENARIOS)
        shorts = rng.sample(list(sc.pool), n)  # listed order = option order
        truth = tuple(rng.sample(range(n), n))  # truth[pos] = object
        constraints = _sample_constraints(n, truth, rng)
        sentences = [_statement_sentence(sc, shorts, c, rng) for c in constraints]
        p = rng.randrange(n)
        side, k = rng.choice(_natural(n, p))
        items = _join_and([sc.item(s) for s in shorts])
        paragraph = " ".join([PREAMBLE.format(n=_num_word(n)), sc.intro.format(n=_num_word(n), items=items),
                              *sentences])
        options = [f"({chr(65 + i)}) {_upper_first(sc.np(s))} {_abs_pred(sc.family, side, k, sc.plural)}"
                   for i, s in enumerate(shorts)]
        question = paragraph + "\nOptions:\n" + "\n".join(options)
        answer = chr(65 + truth[p])
        return question, answer

    def bucket_of(self, question: str) -> str:
        try:
            paragraph, options = _split_question(question)
        except ValueError:
            paragraph, options = str(question), []
        lm = _LIST_RE.search(re.sub(r"\s+", " ", paragraph))
        n = _count_of(lm.group(1)) if lm else None
        if n is None:
            if not options:
                raise ValueError("cannot tell the number of objects")
            n = len(options)
        return str(n)

    # -- solving and checking ---------------------------------------------------------------
    def solve(self, question: str) -> str:
        pb = _problem(question)
        return formats.join_steps(_continue(pb, [], 1))

    def answer_of(self, question: str) -> str:
        """The right option letter of a question (constraint solving)."""
        return _problem(question).answer

    def parse_answer(self, text: str) -> str | None:
        try:
            attempt = formats.last_attempt(str(text))
            finals = [ln for ln in attempt.splitlines() if ln.strip().startswith(f"({FINAL_LABEL})")]
            if not finals:
                return None
            found = _ANSWER_RE.findall(finals[-1])
            if not found or found[-1].upper() not in "ABCDEFG":
                return None
            return found[-1].upper()
        except Exception:  # noqa: BLE001 - a parser of model output must never raise
            return None

    def feedback(self, question: str, attempt: str) -> Feedback:
        steps = _lenient_steps(attempt)
        pb = _problem(question)
        _, err = _check(pb, steps)
        if err is None:
            return self.all_correct(steps)
        i, segment, reason = err
        return self.wrong_step(steps[: i + 1], steps[i].label, segment, reason)

    def improve(self, question: str, attempt: str, feedback: Feedback) -> str:
        pb = _problem(question)
        try:
            steps = _lenient_steps(attempt)
        except ValueError:
            return self.solve(question)
        recs, err = _check(pb, steps)
        if err is None and feedback.is_correct:
            return formats.join_steps(steps)
        cut = self.rewrite_from(question, attempt, steps, feedback)  # the IMP rule
        cut = min(cut, err[0] if err is not None else len(steps))  # the verified records reach no further
        prefix = steps[:cut]
        new = _continue(pb, recs[:cut], _next_number(prefix))
        return formats.join_steps(prefix + new)

    def corrupt(self, question: str, rationale: str, rng: random.Random) -> tuple[str, str]:
        pb = _problem(question)
        steps = _lenient_steps(rationale)
        recs, err = _check(pb, steps)
        if err is not None:
            return formats.join_steps(steps), steps[err[0]].label
        kinds = ["statement", "combination", "final_ordering", "according", "letter"]
        rng.shuffle(kinds)
        for kind in kinds + ["letter"]:
            for attempt in getattr(self, f"_corrupt_{kind}")(pb, steps, recs, rng):
                got = _check(pb, _lenient_steps(attempt[0]))[1]
                if got is not None and _lenient_steps(attempt[0])[got[0]].label == attempt[1]:
                    return attempt
        raise ValueError("cannot plant an error in this rationale")

    # each generator yields candidate (attempt, label) pairs, most plausible first
    def _corrupt_statement(self, pb, steps, recs, rng):
        T = _tables(pb.n)
        idxs = [i for i, r in enumerate(recs) if r.kind == "stmt"]
        rng.shuffle(idxs)
        for i in idxs:
            r = recs[i]
            c = pb.statements[r.stmt][1]
            if c[0] == "before":
                alts = [("before", c[2], c[1])]
            else:
                _, x, side, k = c
                other = "end" if side == "start" else "start"
                alts = [("at", x, side, k + 1), ("at", x, side, k - 1), ("at", x, other, k)]
                alts = [a for a in alts if 0 <= a[3] < pb.n]
                rng.shuffle(alts)
            for alt in alts:
                am = _constraint_mask(T, alt)
                if am == _constraint_mask(T, c):
                    continue
                M = am
                for j, (_, qc) in enumerate(pb.statements):
                    if j != r.stmt:
                        M &= _constraint_mask(T, qc)
                if M.bit_count() != 1:
                    continue
                pat = _constraint_pattern(alt)
                sentence = pb.statements[r.stmt][0]
                bad = Step(steps[i].label, f'{sentence}: "{_pattern_text(pb, pat)}".')
                bad_rec = _Rec(bad.label, "stmt", am, frozenset(pat[0]), stmt=r.stmt)
                prefix = steps[:i] + [bad]
                try:
                    rest = _continue(pb, recs[:i] + [bad_rec], _next_number(prefix))
                except ValueError:
                    continue
                yield formats.join_steps(prefix + rest), bad.label

    def _belief_orders(self, pb, rng):
        truth = list(pb.truth)
        pairs = [(i, j) for i in range(pb.n) for j in range(i + 1, pb.n)]
        rng.shuffle(pairs)
        pairs.sort(key=lambda p: p[1] - p[0] > 1)  # neighbours first: the likeliest slip
        for i, j in pairs[:8]:
            wrong = truth[:]
            wrong[i], wrong[j] = wrong[j], wrong[i]
            yield tuple(wrong)

    def _rewrite_from(self, pb, steps, recs, start, belief):
        """Steps from index `start` on, re-told as if `belief` were the true order."""
        bpos = {o: p for p, o in enumerate(belief)}
        out = list(steps[:start])
        obj = None
        for st, r in zip(steps[start:], recs[start:]):
            if r.kind == "comb":
                m = _COMB_RE.match(st.text.strip())
                pat = _parse_pattern(pb, m.group(2))
                chain = sorted(pat[0], key=lambda o: bpos[o])
                exact = [g[1] for g in pat[1]]  # keep which gaps were exact, re-measure them
                gaps = [(bpos[chain[0]], True) if exact[0] else (0, False)]
                for i, (a, b) in enumerate(zip(chain, chain[1:])):
                    gaps.append((bpos[b] - bpos[a] - 1, True) if exact[i + 1] else (0, False))
                gaps.append((pb.n - 1 - bpos[chain[-1]], True) if exact[-1] else (0, False))
                new_pat = (tuple(chain), tuple(gaps))
                text = st.text.strip().replace(f'"{m.group(2)}"', f'"{_pattern_text(pb, new_pat)}"')
                out.append(Step(st.label, text))
            elif r.kind == "accord":
                obj = belief[pb.index(*pb.asked)]
                out.append(Step(st.label, f"According to this ordering, the {pb.noun_sg} that {pb.asked_pred} "
                                          f"is {_np(pb, obj)}."))
            elif r.kind == "final":
                if obj is None:
                    obj = belief[pb.index(*pb.asked)]
                opt = next(o for o in pb.options if o[2] == obj)
                out.append(Step(FINAL_LABEL, f"{opt[1].rstrip('.')}. So the answer is ({opt[0]})."))
            else:
                out.append(st)
        return out

    def _corrupt_combination(self, pb, steps, recs, rng, last_only=False):
        idxs = [i for i, r in enumerate(recs) if r.kind == "comb"]
        if last_only:
            idxs = idxs[-1:]
        else:
            idxs = idxs[:-1] or idxs
            rng.shuffle(idxs)
        for i in idxs:
            for belief in self._belief_orders(pb, rng):
                new = self._rewrite_from(pb, steps, recs, i, belief)
                if new[i].text != steps[i].text:
                    yield formats.join_steps(new), steps[i].label

    def _corrupt_final_ordering(self, pb, steps, recs, rng):
        yield from self._corrupt_combination(pb, steps, recs, rng, last_only=True)

    def _corrupt_according(self, pb, steps, recs, rng):
        idx = next((i for i, r in enumerate(recs) if r.kind == "accord"), None)
        if idx is None:
            return
        p = pb.index(*pb.asked)
        for q in sorted(range(pb.n), key=lambda q: (abs(q - p), rng.random())):
            if q == p:
                continue
            obj = pb.truth[q]
            opt = next((o for o in pb.options if o[2] == obj), None)
            if opt is None:
                continue
            new = list(steps[:idx]) + [
                Step(steps[idx].label, f"According to this ordering, the {pb.noun_sg} that {pb.asked_pred} "
                                       f"is {_np(pb, obj)}."),
                Step(FINAL_LABEL, f"{opt[1].rstrip('.')}. So the answer is ({opt[0]}).")]
            yield formats.join_steps(new), steps[idx].label

    def _corrupt_letter(self, pb, steps, recs, rng):
        final = steps[-1]
        m = None
        for m in _ANSWER_RE.finditer(final.text):
            pass
        if m is None:
            return
        others = [o[0] for o in pb.options if o[0] != pb.answer]
        rng.shuffle(others)
        for letter in others:
            text = final.text[: m.start(1)] + letter + final.text[m.end(1):]
            yield formats.join_steps(steps[:-1] + [Step(FINAL_LABEL, text)]), FINAL_LABEL

    # -- real BIG-Bench data ----------------------------------------------------------------
    def from_bigbench(self, input: str, target: str, choices: list[str] | None = None) -> Example:
        if not isinstance(input, str) or not isinstance(target, str):
            raise ValueError("input and target must be strings")
        text = input.strip()
        if choices is not None:
            if "Options:" in text:
                raise ValueError("an input with options must not also get choices")
            opts = [str(c).strip().rstrip(".").strip() for c in choices]
            if not re.match(r"The following paragraphs", text):
                lm = _LIST_RE.search(re.sub(r"\s+", " ", text))
                if not lm:
                    raise ValueError("cannot find the list of objects")
                text = PREAMBLE.format(n=lm.group(1).lower()) + " " + text
            text = text + "\nOptions:\n" + "\n".join(f"({chr(65 + i)}) {o}" for i, o in enumerate(opts))
            t = target.strip().rstrip(".").strip()
            if t in opts:
                answer = chr(65 + opts.index(t))
            else:
                m = re.fullmatch(r"\(?([A-Ga-g])\)?", t)
                if not m:
                    raise ValueError(f"target {target!r} is not one of the choices")
                answer = m.group(1).upper()
        else:
            m = re.fullmatch(r"\(?([A-Ga-g])\)?", target.strip())
            if not m:
                raise ValueError(f"target {target!r} is not an option letter")
            answer = m.group(1).upper()
        pb = _problem(text)
        if pb.answer != answer:
            raise ValueError(f"the solver finds ({pb.answer}), the target says ({answer})")
        bucket = str(pb.n)
        return Example(text, answer, formats.join_steps(_continue(pb, [], 1)), bucket, self.split_of(bucket))
