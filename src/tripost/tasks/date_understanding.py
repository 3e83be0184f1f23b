"""Date Understanding (docs/method.md §1.1): BIG-Bench questions about dates, answered as one of six lettered
MM/DD/YYYY options (the paper's format) or, with `option_letters=False`, with the option's date
itself (BIG-Bench's own multiple choice, which scores the option texts).

Everything here is scripted and works on the question text alone:

* `sample` writes questions of BIG-Bench's families (a stated or implied "today", anniversaries,
  deadlines, people disagreeing about the date, holidays, "the first Monday of 2019", ...) followed
  by a question "What is the date <shift> in MM/DD/YYYY?" and six options with realistic distractors
  in a seeded random order.
* `solve` reads such a question (ours or a real BIG-Bench / BIG-Bench-Hard one) and writes the gold
  rationale. It is built for precision: a premise it does not recognise with certainty, a date that
  does not exist, an ambiguous reading whose answers are both among the options, or a computed date
  that is not exactly one option all raise ValueError.
* Rationale format (docs/method.md §1.3): one step per derived date, the last one followed by the MM/DD/YYYY
  form, then the option::

      (1) If today is Christmas Eve of 1937, then today's date is December 24, 1937.
      (2) 10 days before today is December 14, 1937, that is 12/14/1937.
      (Final response) So the answer is (D).

  With unlettered options the final response names the date: "So the answer is 12/14/1937."
  The number of non-final steps is the bucket ("1", "2", "3", "4+"); 1-2 steps are "seen",
  3 or more "unseen" (the paper's split of Codex rationales).
* `feedback` recomputes every step: the dates, weekdays, leap-year statements and numbers a step
  states are compared, in order, with those of the gold step at the same position; the first that
  differs is the error, explained from the gold computation ("December 24, 1937 minus 10 days is
  December 14, 1937, not December 15, 1937"). Then the chosen option is checked.
* `improve` keeps the steps before the wrong one verbatim and writes the gold steps from there on.

Calendar conventions: "a month/year ago/from today" keeps the day of the month. When that day does
not exist (one month before March 31), two readings are considered - the last day of the month
(February 29) and counting on past its end (March 2) - and `solve` answers only when exactly one
of the two answers is an option. The generator never asks such questions.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import random
import re
from dataclasses import dataclass
from typing import Callable, ClassVar

from tripost import formats
from tripost.formats import FINAL_LABEL, Feedback, Step
from tripost.tasks.base import Example, Task

__all__ = ["DateUnderstanding"]

# ------------------------------------------------------------------------------------------------
# calendar helpers
# ------------------------------------------------------------------------------------------------

Tup = tuple  # (year, month, day); may name a day that does not exist ("April 31, 2021")

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
MONTH_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_WD_ABBR = {w[:3].lower(): i for i, w in enumerate(WEEKDAYS)}
_WD_ABBR.update({w.lower(): i for i, w in enumerate(WEEKDAYS)})
_WD_ABBR.update({"tues": 1, "wed": 2, "thur": 3, "thurs": 3})

_MONTH_NUM = {m.lower(): i + 1 for i, m in enumerate(MONTHS)}
_MONTH_NUM.update({m.lower(): i + 1 for i, m in enumerate(MONTH_ABBR)})
_MONTH_NUM.update({"sept": 9, "feburary": 2})

_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
             "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12}
_ORD_WORD = {v: k for k, v in _ORDINALS.items()}
_NUMWORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
             "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
             "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
             "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50}

HOLIDAYS = {  # fixed-date holidays: name -> (month, day)
    "Christmas Eve": (12, 24),
    "Christmas Day": (12, 25),
    "Christmas": (12, 25),
    "New Year's Eve": (12, 31),
    "New Year's Day": (1, 1),
    "Halloween": (10, 31),
    "Valentine's Day": (2, 14),
    "April Fools' Day": (4, 1),
}


def _tup(d: dt.date) -> Tup:
    return (d.year, d.month, d.day)


def _valid(t) -> dt.date | None:
    try:
        return dt.date(int(t[0]), int(t[1]), int(t[2]))
    except (ValueError, TypeError, OverflowError, IndexError):
        return None


def _as_tup(d) -> Tup:
    return _tup(d) if isinstance(d, dt.date) else tuple(d)


def _long(d) -> str:
    y, m, day = _as_tup(d)
    name = MONTHS[m - 1] if 1 <= m <= 12 else f"month {m}"
    return f"{name} {day}, {y}"


def _num(d) -> str:
    y, m, day = _as_tup(d)
    return f"{m:02d}/{day:02d}/{y:04d}"


def _mlen(y: int, m: int) -> int:
    return calendar.monthrange(y, m)[1]


def _add_days(d: dt.date, n: int) -> dt.date:
    try:
        return d + dt.timedelta(days=n)
    except OverflowError as e:
        raise ValueError("date out of range") from e


def _shift_month(d: dt.date, months: int, mode: str) -> dt.date | None:
    """Same day `months` calendar months later. If that day does not exist: None (mode "exact"),
    the month's last day ("clamp") or counting on past its end ("overflow")."""
    y, m = divmod(d.month - 1 + months, 12)
    y += d.year
    m += 1
    if not 1 <= y <= 9999:
        raise ValueError("date out of range")
    n = _mlen(y, m)
    if d.day <= n:
        return dt.date(y, m, d.day)
    if mode == "clamp":
        return dt.date(y, m, n)
    if mode == "overflow":
        return _add_days(dt.date(y, m, n), d.day - n)
    return None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _invalid_note(t) -> str:
    """' (April 2021 has only 30 days)' when the (year, month, day) triple names no real day."""
    try:
        y, m, d = (int(x) for x in t)
    except (TypeError, ValueError):
        return ""
    if _valid((y, m, d)) is not None:
        return ""
    if not 1 <= m <= 12:
        return f" (there is no month {m})"
    if not 1 <= y <= 9999:
        return ""
    n = _mlen(y, m)
    if m == 2 and d == 29:
        return f" (February {y} has only 28 days, since {y} is not a leap year)"
    if d > n:
        return f" ({MONTHS[m - 1]} {y} has only {n} days)"
    return ""


# ------------------------------------------------------------------------------------------------
# tokens: the dates, weekdays, leap-year statements and numbers a step states
# ------------------------------------------------------------------------------------------------

_MONTH_ALT = ("January|February|Feburary|March|April|May|June|July|August|September|October|"
              "November|December|Sept|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Oct|Nov|Dec")
_WD_ALT = "|".join(WEEKDAYS)
_WD_ANY_ALT = "|".join(sorted({w.capitalize() for w in _WD_ABBR}, key=len, reverse=True))

_STEP_NAME_DATE_RE = re.compile(rf"\b({_MONTH_ALT})\.? (\d{{1,2}})(?:st|nd|rd|th)?,? (\d{{4}})(?!\d)")
_NUM_DATE_RE = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{4})(?![\d/])")
_LEAP_RE = re.compile(r"\b(\d{4}) is (not )?a leap year\b")
_WEEKDAY_RE = re.compile(rf"\b({_WD_ALT})s?\b")
_NUMBER_RE = re.compile(r"(?<![\w/])\d+")


@dataclass(frozen=True)
class _Tok:
    kind: str  # "date" | "leap" | "weekday" | "num"
    value: object
    start: int
    text: str


def _tokens(text: str) -> list[_Tok]:
    """All tokens of `text`, in order. Dates are (year, month, day) triples, never validated."""
    toks: list[_Tok] = []
    masked = list(text)

    def scan(regex, kind, value_of):
        s = "".join(masked)
        for m in regex.finditer(s):
            toks.append(_Tok(kind, value_of(m), m.start(), text[m.start() : m.end()]))
            masked[m.start() : m.end()] = "#" * (m.end() - m.start())

    scan(_LEAP_RE, "leap", lambda m: (int(m.group(1)), m.group(2) is None))
    scan(_STEP_NAME_DATE_RE, "date",
         lambda m: (int(m.group(3)), _MONTH_NUM[m.group(1).lower()], int(m.group(2))))
    scan(_NUM_DATE_RE, "date", lambda m: (int(m.group(3)), int(m.group(1)), int(m.group(2))))
    scan(_WEEKDAY_RE, "weekday", lambda m: WEEKDAYS.index(m.group(1)))
    scan(_NUMBER_RE, "num", lambda m: m.group(0))
    toks.sort(key=lambda t: t.start)
    return toks


# ------------------------------------------------------------------------------------------------
# step specifications: a rationale is a chain of steps, each deriving one date
# ------------------------------------------------------------------------------------------------

Piece = tuple  # (text, reason template with "{wrong}" or None)
_RES = object()  # marks where a step's result date goes


@dataclass
class _Spec:
    """One rationale step. `build(vals, ov)` -> (pieces, gold result, displayed result): `vals` are
    the results of the earlier steps (possibly wrong ones, carried forward), `ov` overrides used to
    plant an error ({"result": (y, m, d)} and/or {"leap": True})."""

    build: Callable
    src: Callable | None = None  # source date of a day shift (for month-length slips)
    delta: int = 0  # the day shift
    month_end: tuple | None = None  # (year, month) when the result is that month's last day
    leap: bool = False  # the step states whether a year is a leap year


def _spec(parts: list, compute: Callable, reason: Callable, **meta) -> _Spec:
    """`parts`: strings, static (text, reason) pieces, callables (vals, ov) -> piece, and _RES."""

    def build(vals, ov):
        gold = compute(vals)
        disp = tuple(ov.get("result", _tup(gold)))
        pieces = []
        for p in parts:
            if p is _RES:
                pieces.append((_long(disp), reason(vals, gold)))
            elif isinstance(p, str):
                pieces.append((p, None))
            elif isinstance(p, tuple):
                pieces.append(p)
            else:
                pieces.append(p(vals, ov))
        return pieces, gold, disp

    return _Spec(build, **meta)


def _given(d: dt.date, what: str, raw: str) -> Piece:
    """A date the question states."""
    if raw.strip() == _long(d):
        return (_long(d), f"the question says {what} {raw}, not {{wrong}}")
    return (_long(d), f"the question says {what} {raw}, which is {_long(d)}, not {{wrong}}")


def _prev(k: int, what: str) -> Callable:
    """The result of step k+1, restated."""
    return lambda vals, ov: (_long(vals[k]), f"{what} is {_long(vals[k])} (step ({k + 1})), not {{wrong}}")


def _qnum(n, why: str) -> Piece:
    return (str(n), f"{why}, so the number is {n}, not {{wrong}}")


def _days_reason(src: dt.date, delta: int, res: dt.date) -> str:
    op = "plus" if delta >= 0 else "minus"
    return f"{_long(src)} {op} {_plural(abs(delta), 'day')} is {_long(res)}, not {{wrong}}"


def _day_spec(parts: list, src_of: Callable, delta: int) -> _Spec:
    """A step whose result is its source date shifted by `delta` days."""
    return _spec(parts, lambda v: _add_days(src_of(v), delta),
                 lambda v, g: _days_reason(src_of(v), delta, g), src=src_of, delta=delta)


@dataclass
class _Chain:
    """How a premise fixes today: steps, or an explicit date (then no step is needed)."""

    specs: list
    explicit: tuple | None = None  # (date, raw text in the question)


def _source(src, what: str):
    """(piece function, value function) for a date that is either stated (src = (date, raw)) or the
    result of an earlier step (src = step index)."""
    if isinstance(src, int):
        return _prev(src, what), (lambda v, k=src: v[k])
    d, raw = src
    piece = _given(d, what, raw)
    return (lambda v, ov, p=piece: p), (lambda v, d=d: d)


# relation steps between "the day before yesterday" ... "the day after tomorrow"
_REL = {
    # wrapper: list of (lead words for the source, words for the result, delta)
    "yesterday": [("Yesterday was", "so today is", 1)],
    "tomorrow": [("Tomorrow is", "so today is", -1)],
    "dby": [("The day before yesterday was", "so yesterday was", 1), ("Yesterday was", "so today is", 1)],
    "dat": [("The day after tomorrow is", "so tomorrow is", -1), ("Tomorrow is", "so today is", -1)],
}
_REL_WHAT = {"The day before yesterday was": "the day before yesterday was",
             "Yesterday was": "yesterday was", "Tomorrow is": "tomorrow is",
             "The day after tomorrow is": "the day after tomorrow is"}


def _wrap(anchor_specs: list, anchor_src, wrapper: str) -> _Chain:
    """Add the steps from a named day (anchor) to today. anchor_src: (date, raw) or None (the
    anchor is the last of anchor_specs)."""
    specs = list(anchor_specs)
    if wrapper == "today":
        if specs:
            return _Chain(specs)
        return _Chain([], explicit=anchor_src)
    for i, (lead, tail, delta) in enumerate(_REL[wrapper]):
        if i == 0 and anchor_src is not None and not specs:
            src = anchor_src
        else:
            src = len(specs) - 1
        what = _REL_WHAT[lead]
        if isinstance(src, int):  # restating the previous step's day: "yesterday", "tomorrow", ...
            what = what.rsplit(" ", 1)[0]
        piece, val = _source(src, what)
        specs.append(_day_spec([f"{lead} ", piece, f", {tail} ", _RES, "."], val, delta))
    return _Chain(specs)


# ------------------------------------------------------------------------------------------------
# the question's own dates: "Jan 2, 1958", "Sept. 1st, 2021", "8/3/1997", "Mar 12", "Jan 2012"...
# ------------------------------------------------------------------------------------------------

_Q_NAME_DATE_RE = re.compile(
    rf"\b({_MONTH_ALT})\.? (\d{{1,2}})(?:st|nd|rd|th)?(?!\d)(?:,? (\d{{4}})(?!\d))?")
_Q_MONTH_YEAR_RE = re.compile(rf"\b({_MONTH_ALT})\.? (?:of )?(\d{{4}})(?!\d)")
_Q_NUM_DATE_RE = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})(?:/(\d{4}))?(?![\d/])")


@dataclass(frozen=True)
class _QDate:
    raw: str
    year: int | None
    month: int
    day: int | None
    numeric: bool

    def date(self) -> dt.date:
        if self.year is None or self.day is None:
            raise ValueError(f"incomplete date {self.raw!r}")
        d = _valid((self.year, self.month, self.day))
        if d is None:
            raise ValueError(f"no such date {self.raw!r}")
        return d


def _mark_dates(text: str) -> tuple[str, list[_QDate]]:
    """Replace every date expression by <Dk>."""
    found: list[_QDate] = []

    def sub(regex, make):
        nonlocal text

        def repl(m):
            found.append(make(m))
            return f"<D{len(found) - 1}>"

        text = regex.sub(repl, text)

    sub(_Q_NAME_DATE_RE, lambda m: _QDate(m.group(0), int(m.group(3)) if m.group(3) else None,
                                          _MONTH_NUM[m.group(1).lower()], int(m.group(2)), False))
    sub(_Q_MONTH_YEAR_RE, lambda m: _QDate(m.group(0), int(m.group(2)), _MONTH_NUM[m.group(1).lower()],
                                           None, False))
    sub(_Q_NUM_DATE_RE, lambda m: _QDate(m.group(0), int(m.group(3)) if m.group(3) else None,
                                         int(m.group(1)), int(m.group(2)), True))
    return text, found


_NUM_ALT = r"\d+|" + "|".join(sorted(_NUMWORDS, key=len, reverse=True))


def _rx(pattern: str) -> re.Pattern:
    """@x -> a marked date in group x; #x -> a number (digits or word) in group x."""
    pattern = re.sub(r"@(\w)", lambda m: rf"<D(?P<{m.group(1)}>\d+)>", pattern)
    pattern = re.sub(r"#(\w)", lambda m: rf"(?P<{m.group(1)}>{_NUM_ALT})", pattern)
    return re.compile(pattern)


def _n(word: str) -> int:
    w = word.lower()
    return int(w) if w.isdigit() else _NUMWORDS[w]


_TIME_WORDS = re.compile(  # words of a sentence that might move "today"
    r"\b(today|today's|tomorrow|tomorrow's|yesterday|yesterday's|tonight|now|ago|later|earlier|after|"
    r"before|since|until|passed|actually|fact|correct|incorrect|wrong|thought|thinks|think|mistake|"
    r"mistaken|mistakenly|really|instead|however|but|uk|format|formatting|timezone|zone|midnight|hours?|"
    r"delayed|postponed|rescheduled|anniversary|birthday|date|calendar|leap|next|previous)\b",
    re.IGNORECASE)
_TODAY_COULD_NOT_RE = re.compile(r"^Today could not be <D\d+> because \w+ has only \d+ days\.$")
_APPOINTMENT_RE = re.compile(r"^[A-Z]\w+'s appointment will be (?:\d+|[a-z]+) days? later\.$")


def _harmless(sentence: str) -> bool:
    """An extra sentence that cannot change which day today is."""
    s = sentence.strip()
    if not s:
        return True
    if _TODAY_COULD_NOT_RE.match(s) or _APPOINTMENT_RE.match(s):
        return True
    return "<D" not in s and not _TIME_WORDS.search(s)


def _sentences(rest: str) -> list[str]:
    return [x for x in re.split(r"(?<=\.)\s+", rest.strip()) if x]


# ------------------------------------------------------------------------------------------------
# anchors: named days ("Christmas Eve of 1937", "the first Monday of 2019", ...)
# ------------------------------------------------------------------------------------------------

_HOLIDAY_RE = re.compile(
    r"^(?:the )?(" + "|".join(re.escape(h) for h in sorted(HOLIDAYS, key=len, reverse=True))
    + r") (?:of|in) (\d{4})$")
_THANKS_RE = re.compile(r"^(?:the )?US Thanksgiving(?: Day)? (?:of|in) (\d{4})$")
_NTH_WD_RE = re.compile(rf"^the (first|second|third|fourth) ({_WD_ALT}) of (\d{{4}}|<D\d+>)$")
_YEAR_END_RE = re.compile(r"^the (first|last) day of (\d{4})$")
_MONTH_END_RE = re.compile(r"^the (first|last) day of <D(\d+)>$")
_QUARTER_RE = re.compile(r"^the (first|last) day of the (first|second|third|fourth|last) quarter of (\d{4})$")
_NTH_DAY_RE = re.compile(
    r"^the (" + "|".join(_ORDINALS) + r"|\d{1,2}(?:st|nd|rd|th)) day of the ("
    + "|".join(_ORDINALS) + r") month of (\d{4})$")


def _anchor_simple(desc: str, date: dt.date, reason: str, wrapper: str, prelude: list | None = None,
                   **meta) -> list[_Spec]:
    """One step naming a day: 'If today is <desc>, then today's date is R.' / '<Desc> is R.'"""
    pre = list(prelude or [])
    if wrapper == "today":
        parts = pre + [f"If today is {desc}, then today's date is ", _RES, "."]
    else:
        parts = pre + [desc[0].upper() + desc[1:] + " is ", _RES, "."]
    return [_spec(parts, lambda v: date, lambda v, g: reason.replace("{res}", _long(g)), **meta)]


def _month_end_spec(y: int, m: int, desc: str, wrapper: str, prelude: list | None = None) -> list[_Spec]:
    """The last day of month m of year y; February steps state whether y is a leap year."""
    date = dt.date(y, m, _mlen(y, m))
    leap = calendar.isleap(y)
    if m != 2:
        reason = (f"{MONTHS[m - 1]} has {_mlen(y, m)} days, so {desc} is {{res}}, not {{wrong}}")
        return _anchor_simple(desc, date, reason, wrapper, prelude, month_end=(y, m))

    def leap_piece(v, ov):
        claim = leap != bool(ov.get("leap"))
        text = f"{y} is a leap year" if claim else f"{y} is not a leap year"
        why = "divisible by 4" if y % 100 else "divisible by 400"
        if leap:
            r = f"{y} is a leap year ({why})"
        elif y % 4:
            r = f"{y} is not a leap year ({y} is not divisible by 4)"
        else:
            r = f"{y} is not a leap year (a century year is a leap year only if divisible by 400)"
        return (text, r)

    reason = (f"February {y} has {_mlen(y, 2)} days, so {desc} is {{res}}, not {{wrong}}")
    lead = [leap_piece, ", so "]
    if wrapper == "today":
        parts = list(prelude or []) + lead + [f"if today is {desc}, then today's date is ", _RES, "."]
    else:
        parts = list(prelude or []) + lead + [f"{desc} is ", _RES, "."]
    return [_spec(parts, lambda v: date, lambda v, g: reason.replace("{res}", _long(g)),
                  month_end=(y, 2), leap=True)]


def _nth_weekday_specs(y: int, m: int, scope: str, nth: int, wd: int, first_wd: int | None = None,
                       intro: str | None = None, stated: bool = False) -> list[_Spec]:
    """The nth weekday `wd` of month m (scope = how the question names the month or year)."""
    first = dt.date(y, m, 1)
    w1 = first.weekday() if first_wd is None else first_wd
    off = (wd - w1) % 7
    first_match = _add_days(first, off)
    day1 = (_long(first), f"the first day of {scope} is {_long(first)}, not {{wrong}}")
    if stated:
        w1_piece = (WEEKDAYS[w1], f"the question says the first day of {scope} is a {WEEKDAYS[w1]}, "
                                  f"not a {{wrong}}")
    else:
        w1_piece = (WEEKDAYS[w1], f"{_long(first)} is a {WEEKDAYS[w1]}, not a {{wrong}}")
    parts: list = []
    if intro:
        parts.append(intro + " ")
    if stated:
        parts += [f"The first day of {scope}, ", day1, ", is a ", w1_piece, ", so "]
    else:
        parts += [day1, " is a ", w1_piece, ", so "]
    if off:
        parts += [f"the first {WEEKDAYS[wd]} of {scope} is ",
                  (str(off), f"from a {WEEKDAYS[w1]} to the next {WEEKDAYS[wd]} there are {off} days, "
                             f"not {{wrong}}"),
                  " day later, " if off == 1 else " days later, ", _RES, "."]
        reason1 = lambda v, g: _days_reason(first, off, g)  # noqa: E731
    else:
        parts += [f"the first {WEEKDAYS[wd]} of {scope} is ", _RES, "."]
        reason1 = lambda v, g: f"the first {WEEKDAYS[wd]} of {scope} is {_long(g)}, not {{wrong}}"  # noqa: E731
    specs = [_spec(parts, lambda v: first_match, reason1, src=lambda v: first, delta=off)]
    if nth > 1:
        k = 7 * (nth - 1)
        parts2 = [f"The {_ORD_WORD[nth]} {WEEKDAYS[wd]} of {scope} is ",
                  (str(k), f"the {_ORD_WORD[nth]} {WEEKDAYS[wd]} is {nth - 1} weeks ({k} days) after "
                           f"the first one, not {{wrong}} days"),
                  " days after the first one, ", _RES, "."]
        specs.append(_day_spec(parts2, lambda v: v[0], k))
    return specs


def _anchor(text: str, qd: list[_QDate], wrapper: str) -> list[_Chain] | None:
    """Chains for "<wrapper> <anchor>" (wrapper: today / yesterday / tomorrow / dby / dat)."""
    text = text.strip()
    m = re.fullmatch(r"<D(\d+)>", text)
    if m:
        q = qd[int(m.group(1))]
        if q.year is None or q.day is None:
            return None
        d = q.date()
        return [_wrap([], (d, q.raw), wrapper)]
    m = _HOLIDAY_RE.match(text)
    if m:
        name, y = m.group(1), int(m.group(2))
        mo, da = HOLIDAYS[name]
        date = dt.date(y, mo, da)
        desc = f"{name} of {y}"
        reason = f"{name} is on {MONTHS[mo - 1]} {da}, so {desc} is {{res}}, not {{wrong}}"
        return [_wrap(_anchor_simple(desc, date, reason, wrapper), None, wrapper)]
    m = _THANKS_RE.match(text)
    if m:
        y = int(m.group(1))
        specs = _nth_weekday_specs(y, 11, f"November {y}", 4, 3,
                                   intro="US Thanksgiving is the fourth Thursday of November.")
        return [_wrap(specs, None, wrapper)]
    m = _NTH_WD_RE.match(text)
    if m:
        nth, wd = _ORDINALS[m.group(1)], WEEKDAYS.index(m.group(2))
        scope_raw = m.group(3)
        if scope_raw.startswith("<D"):
            q = qd[int(scope_raw[2:-1])]
            if q.day is not None or q.year is None:
                return None
            y, mo, scope = q.year, q.month, f"{MONTHS[q.month - 1]} {q.year}"
        else:
            y, mo, scope = int(scope_raw), 1, scope_raw
        return [_wrap(_nth_weekday_specs(y, mo, scope, nth, wd), None, wrapper)]
    m = _YEAR_END_RE.match(text)
    if m:
        y = int(m.group(2))
        first = m.group(1) == "first"
        date = dt.date(y, 1, 1) if first else dt.date(y, 12, 31)
        desc = f"the {m.group(1)} day of {y}"
        reason = f"{desc} is {{res}}, not {{wrong}}"
        return [_wrap(_anchor_simple(desc, date, reason, wrapper), None, wrapper)]
    m = _MONTH_END_RE.match(text)
    if m:
        q = qd[int(m.group(2))]
        if q.day is not None or q.year is None:
            return None
        y, mo = q.year, q.month
        desc = f"the {m.group(1)} day of {MONTHS[mo - 1]} {y}"
        if m.group(1) == "first":
            reason = f"{desc} is {{res}}, not {{wrong}}"
            specs = _anchor_simple(desc, dt.date(y, mo, 1), reason, wrapper)
        else:
            specs = _month_end_spec(y, mo, desc, wrapper)
        return [_wrap(specs, None, wrapper)]
    m = _QUARTER_RE.match(text)
    if m:
        q = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": 4}[m.group(2)]
        y = int(m.group(3))
        desc = f"the {m.group(1)} day of the {m.group(2)} quarter of {y}"
        if m.group(1) == "first":
            mo = 3 * q - 2
            reason = f"the {m.group(2)} quarter of {y} starts with {MONTHS[mo - 1]}, so {desc} is {{res}}, not {{wrong}}"
            prelude = [f"The {m.group(2)} quarter of {y} starts with {MONTHS[mo - 1]}. "]
            specs = _anchor_simple(desc, dt.date(y, mo, 1), reason, wrapper, prelude)
        else:
            mo = 3 * q
            prelude = [f"The {m.group(2)} quarter of {y} ends with {MONTHS[mo - 1]}. "]
            specs = _month_end_spec(y, mo, desc, wrapper, prelude)
        return [_wrap(specs, None, wrapper)]
    m = _NTH_DAY_RE.match(text)
    if m:
        dword, mword, y = m.group(1), m.group(2), int(m.group(3))
        da = _ORDINALS[dword] if dword in _ORDINALS else int(re.match(r"\d+", dword).group(0))
        mo = _ORDINALS[mword]
        if mo > 12:
            return None
        date = _valid((y, mo, da))
        if date is None:
            return None
        desc = f"the {dword} day of the {mword} month of {y}"
        prelude = [f"The {mword} month is {MONTHS[mo - 1]}. "]
        reason = f"the {mword} month is {MONTHS[mo - 1]}, so {desc} is {{res}}, not {{wrong}}"
        return [_wrap(_anchor_simple(desc, date, reason, wrapper, prelude), None, wrapper)]
    return None


# ------------------------------------------------------------------------------------------------
# premises: every family BIG-Bench uses to state or imply today's date
# ------------------------------------------------------------------------------------------------

_NAME = r"[A-Z][a-z]+"
_WRAP_RE = re.compile(
    r"^(?P<w>Today is|It is|Today's date is|This is|Yesterday was|Tomorrow is|Tomorrow will be|"
    r"The day before yesterday was|The day after tomorrow is|(?P<who>[A-Z][a-z]+) is celebrating) "
    r"(?P<anchor>[^.]+?)(?P<today> today)?\.(?P<rest>(?: [^.]+\.)*)$")
_WRAPPERS = {"Today is": "today", "It is": "today", "Today's date is": "today", "This is": "today",
             "Yesterday was": "yesterday", "Tomorrow is": "tomorrow", "Tomorrow will be": "tomorrow",
             "The day before yesterday was": "dby", "The day after tomorrow is": "dat"}

_APPOS_RE = _rx(r"^(?P<w>Today|Yesterday|Tomorrow), @a, (?P<rest>[^.<]+)\.$")
_FOR_TOMORROW_RE = _rx(rf"^{_NAME} (?:booked|scheduled|planned|reserved) (?P<what>[^.<]*?)for tomorrow"
                       rf"(?:, @a| \((?:(?:{_WD_ANY_ALT})\.?,? )?@b\))\.$")
_MEETING_RE = _rx(r"^Today's meeting is rescheduled to (?:\d{1,2}(?::\d{2})? ?(?:am|pm) )?tomorrow, @a\.$")
_ANNIV_RE = _rx(rf"^(?P<p>{_NAME}) and (?P<q>{_NAME}) (?:married|got married|were married) on @a\. "
                r"(?:It is their #n-year anniversary today|Today is their #m-year (?:wedding )?anniversary|"
                r"(?:Today|It) is their (?P<named>golden|silver|ruby|pearl) (?:wedding )?anniversary(?: today)?)\.$")
_NAMED_ANNIV = {"silver": 25, "pearl": 30, "ruby": 40, "golden": 50}
_BORN_RE = _rx(rf"^(?P<name>{_NAME}) was born on (?:@a|the last day of (?:Feb|February|Feburary) "
               rf"(?:in |of )?(?P<y>\d{{4}})|the last day of @b)\. Today is (?P<pron>her|his) "
               r"(?:#n-year-old birthday|(?P<k>\d+)(?:st|nd|rd|th) birthday)\.$")
_JOB_RE = _rx(rf"^(?P<name>{_NAME}) got (?P<pron>her|his) job in (?P<y>\d{{4}})\. Today is (?:her|his) "
              r"#n-year work anniversary\. (?:She|He) still remembers? that on @a, (?:her|his) second day "
              r"at work, [^.<]*\.$")
_THOUGHT_RE = _rx(rf"^(?P<name>{_NAME}) thought today (?:is|was) @a, but today is (?:in fact|actually) @b, "
                  r"which is #n (?:day|days) (?P<dir>later|earlier)\.$")
_TWO_RE = _rx(rf"^(?P<p>{_NAME}) thinks today is @a, but (?P<q>{_NAME}) thinks today is @b\. "
              rf"(?P<c>{_NAME}) is correct\.$")
_UK_RE = _rx(r"^In the UK, people usually put the day before the month when formatting the date\. "
             r"Therefore, today is @a to them\.$")
_DEADLINE_RE = _rx(r"^The deadline is @a, which is #n (?:day|days) away from (?:now|today)\.$")
_DELAY_RE = _rx(r"^The (?P<ev>[a-z]+(?: [a-z]+)?) was scheduled to be on @a, but was (?:delayed|postponed) "
                r"by #n (?:day|days) to today\.$")
_AGO_RE = _rx(r"^It was @a #n (?P<u>day|days|week|weeks) ago\.$")
_PASSED_RE = _rx(rf"^(?P<name>{_NAME}) (?P<verb>[a-z]+) (?P<obj>[a-z' ]+?) on @a\. #n (?:day|days) "
                 r"(?:have|has) passed since then\.$")
_PAL_RE = re.compile(r"^Today is the palindrome day of (?P<y>\d{4}), because the MMDDYYYY format of the "
                     r"date is the same backwards as forwards\.$")
_COMING_RE = _rx(r"^(?P<y>\d{4}) is coming in #n (?P<u>hour|hours|day|days)\.$")
_EGGS_RE = _rx(rf"^On @a,? (?P<name>{_NAME}) bought #n eggs\. (?:She|He) ate one per day\. "
               r"Today (?:she|he) ran out of eggs\.$")
_LIKEY_RE = _rx(rf"^@a is like yesterday to (?P<name>{_NAME}), but that is actually #n years ago\.$")
_BOOK_RE = _rx(rf"^(?P<name>{_NAME}) visits (?P<place>the [a-z ]+?) on the (?P<d>\d{{1,2}})(?:st|nd|rd|th) "
               r"of each month starting from (?:the )?@a\. It is (?P<pron>her|his) (?P<k>\d+)(?:st|nd|rd|th) "
               r"visit to (?P=place) today\.$")
_NFL_RE = _rx(rf"^Today is @a\. (?P<name>{_NAME}) is watching NFL (?P<y>\d{{4}})\.$")
_MD_YEAR_RE = _rx(r"^Today is @a, and it is (?P<rest>[^.<]*?\bin the year (?P<y>\d{4})\b[^.<]*)\.$")
_LOCAL_RE = _rx(r"^The current local time is \d{1,2}:\d{2} ?(?:am|pm|AM|PM|a\.m\.|p\.m\.)? (?:of|on) @a\.$")
_FIRSTWD_RE = re.compile(rf"^The first day of (?P<y>\d{{4}}) is an? (?P<w1>{_WD_ALT}), and today is the "
                         rf"(?P<ord>first|second|third|fourth) (?P<w>{_WD_ALT}) of (?P<y2>\d{{4}})\.$")


def _years_specs(parts_fn: Callable, src_of: Callable, n: int) -> list[tuple[str, _Spec]]:
    """Variants of a step adding n years to a date (two when the date is February 29)."""
    out = []
    for mode in ("exact", "clamp", "overflow"):
        def compute(v, mode=mode):
            s = src_of(v)
            r = _shift_month(s, 12 * n, mode)
            if r is None:
                raise _NoSuchDay
            return r

        def reason(v, g, mode=mode):
            s = src_of(v)
            note = ""
            if _shift_month(s, 12 * n, "exact") is None:
                note = (" (there is no February 29 that year, so the day is taken as the last day of "
                        "February)" if mode == "clamp" else
                        " (there is no February 29 that year, so the day after February 28 is taken)")
            return f"{_plural(n, 'year')} after {_long(s)} is {_long(g)}{note}, not {{wrong}}"

        out.append((mode, _spec(parts_fn(), compute, reason)))
    return out


class _NoSuchDay(Exception):
    pass


def _chain_variants(prefix: list[_Spec], variants: list) -> list[_Chain]:
    return [_Chain(prefix + [spec]) for _mode, spec in variants]


def _premise_wrapped(m, qd, date_of) -> list[_Chain] | None:
    """ "<Today is|Yesterday was|...> <anchor>[ today]." followed by harmless sentences."""
    wrapper = "today" if m.group("who") else _WRAPPERS[m.group("w")]
    anchor = m.group("anchor")
    usable = not (m.group("today") and wrapper != "today")
    usable = usable and not (m.group("who") and anchor.startswith("<D"))
    if usable and all(_harmless(x) for x in _sentences(m.group("rest") or "")):
        chains = _anchor(anchor, qd, wrapper)
        if chains is not None:
            return chains
    return None


def _premise_apposition(m, qd, date_of) -> list[_Chain] | None:
    if not _harmless(m.group("rest")):
        return None
    wrapper = {"Today": "today", "Yesterday": "yesterday", "Tomorrow": "tomorrow"}[m.group("w")]
    q = date_of(m)
    return [_wrap([], (q.date(), q.raw), wrapper)]


def _premise_for_tomorrow(m, qd, date_of) -> list[_Chain] | None:
    g = "a" if m.groupdict().get("a") else "b"
    q = date_of(m, g)
    return [_wrap([], (q.date(), q.raw), "tomorrow")]


def _premise_local(m, qd, date_of) -> list[_Chain] | None:
    q = date_of(m)
    return [_Chain([], explicit=(q.date(), q.raw))]


def _premise_anniversary(m, qd, date_of) -> list[_Chain] | None:
    q = date_of(m)
    named = m.group("named")
    n = _NAMED_ANNIV[named] if named else _n(m.group("n") or m.group("m"))
    wed = q.date()
    who = f"{m.group('p')} and {m.group('q')}"
    why = (f"a {named} anniversary is the {n}-year anniversary" if named
           else f"the question says it is their {n}-year anniversary")

    def parts(wed=wed, q=q, n=n, who=who, why=why):
        return [f"{who} married on ", _given(wed, f"{who} married on", q.raw), ", so their ",
                _qnum(n, why), "-year anniversary, today, is ", _RES, "."]

    return _chain_variants([], _years_specs(parts, lambda v, d=wed: d, n))


def _premise_birthday(m, qd, date_of) -> list[_Chain] | None:
    name, pron = m.group("name"), m.group("pron")
    n = int(m.group("k")) if m.group("k") else _n(m.group("n"))
    if m.group("a"):
        q = date_of(m)
        born = q.date()
        prefix: list[_Spec] = []
        born_piece = _given(born, f"{name} was born on", q.raw)
        src_of = lambda v, d=born: d  # noqa: E731
        src_piece = lambda v, ov, p=born_piece: p  # noqa: E731
    else:
        if m.group("y"):
            y, mo = int(m.group("y")), 2
        else:
            qb = date_of(m, "b")
            if qb.day is not None or qb.year is None:
                raise ValueError("premise not understood")
            y, mo = qb.year, qb.month
        prefix = _month_end_spec(y, mo, f"the last day of {MONTHS[mo - 1]} {y}", "other")
        src_of = lambda v: v[0]  # noqa: E731
        src_piece = _prev(0, f"{name}'s birthday")

    def parts(name=name, pron=pron, n=n, src_piece=src_piece):
        return [f"{name} was born on ", src_piece, f", so {pron} ",
                _qnum(n, f"the question says today is {pron} {n}-year-old birthday"),
                "-year-old birthday, today, is ", _RES, "."]

    variants = _years_specs(parts, src_of, n)
    chains = _chain_variants(prefix, variants)
    if not m.group("a") and mo == 2 and not calendar.isleap(y):
        # born on February 28 of a common year: in a leap year "the last day of February" could
        # also be read as February 29
        target = y + n
        if calendar.isleap(target):
            def parts_leap(name=name, pron=pron, n=n):
                return [f"{name} was born on the last day of February, so {pron} ",
                        _qnum(n, f"the question says today is {pron} {n}-year-old birthday"),
                        f"-year-old birthday, today, is the last day of February {target}, ", _RES, "."]
            chains.append(_Chain(prefix + [_spec(
                parts_leap(), lambda v, t=target: dt.date(t, 2, 29),
                lambda v, g: f"the last day of February {g.year} is {_long(g)}, not {{wrong}}")]))
    return chains


def _premise_work_anniversary(m, qd, date_of) -> list[_Chain] | None:
    q = date_of(m)
    y, n, pron = int(m.group("y")), _n(m.group("n")), m.group("pron")
    if q.year is not None and q.year != y:
        raise ValueError("premise not understood")
    second = _valid((y, q.month, q.day or 0))
    if second is None:
        raise ValueError(f"no such date {q.raw!r}")
    first = _add_days(second, -1)
    if first.year != y:
        raise ValueError("premise not understood")
    s1 = _day_spec([_given(second, f"{pron} second day at work was", f"{q.raw} of {y}"),
                    f" was {pron} second day at work, so {pron} first day at work was ", _RES, "."],
                   lambda v, d=second: d, -1)

    def parts(pron=pron, n=n):
        return [f"{pron[0].upper() + pron[1:]} ",
                _qnum(n, f"the question says today is {pron} {n}-year work anniversary"),
                "-year work anniversary is ", str(n), " years after ", _prev(0, f"{pron} first day at work"),
                ", so today is ", _RES, "."]

    return _chain_variants([s1], _years_specs(parts, lambda v: v[0], n))


def _premise_thought(m, qd, date_of) -> list[_Chain] | None:
    qa, qb = date_of(m, "a"), date_of(m, "b")
    n = _n(m.group("n")) * (1 if m.group("dir") == "later" else -1)
    thought = qa.date()
    today = _add_days(thought, n)
    if qb.month != today.month or qb.day != today.day or (qb.year not in (None, today.year)):
        raise ValueError("inconsistent premise")
    name = m.group("name")
    word = "later" if n > 0 else "earlier"
    spec = _day_spec([f"{name} thought today is ", _given(thought, f"{name} thought today is", qa.raw),
                      ", but today is in fact ",
                      _qnum(abs(n), f"the question says today is {abs(n)} day(s) {word}"),
                      f" {'day' if abs(n) == 1 else 'days'} {word}, so today is ", _RES, "."],
                     lambda v, d=thought: d, n)
    return [_Chain([spec])]


def _premise_two_people(m, qd, date_of) -> list[_Chain] | None:
    p, qn, c = m.group("p"), m.group("q"), m.group("c")
    if c not in (p, qn) or p == qn:
        raise ValueError("premise not understood")
    q = date_of(m, "a") if c == p else date_of(m, "b")
    d = q.date()
    spec = _spec([f"{c} is correct, and {c} thinks today is ", _given(d, f"{c} thinks today is", q.raw),
                  ", so today is ", _RES, "."], lambda v, d=d: d,
                 lambda v, g, c=c, q=q: f"{c} is correct and thinks today is {q.raw}, so today is "
                                        f"{_long(g)}, not {{wrong}}")
    return [_Chain([spec])]


def _premise_uk_format(m, qd, date_of) -> list[_Chain] | None:
    q = date_of(m)
    parts_raw = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", q.raw)
    if not parts_raw:
        raise ValueError("premise not understood")
    dd, mm, yy = parts_raw.groups()
    d = _valid((int(yy), int(mm), int(dd)))
    if d is None:
        raise ValueError(f"no such date {q.raw!r}")
    spec = _spec(["In the UK format, ", q.raw, " means day ", dd, " of month ", mm, " of ", yy,
                  ", so today is ", _RES, "."], lambda v, d=d: d,
                 lambda v, g, q=q: f"in the UK format {q.raw} is day {dd} of month {mm}, that is "
                                   f"{_long(g)}, not {{wrong}}")
    return [_Chain([spec])]


def _premise_deadline(m, qd, date_of) -> list[_Chain] | None:
    q = date_of(m)
    n = _n(m.group("n"))
    d = q.date()
    spec = _day_spec(["The deadline, ", _given(d, "the deadline is", q.raw), ", is ",
                      _qnum(n, f"the question says the deadline is {n} day(s) away"),
                      f" {'day' if n == 1 else 'days'} away from now, so today is ", _RES, "."],
                     lambda v, d=d: d, -n)
    return [_Chain([spec])]


def _premise_delay(m, qd, date_of) -> list[_Chain] | None:
    q = date_of(m)
    n = _n(m.group("n"))
    d = q.date()
    ev = m.group("ev")
    spec = _day_spec([f"The {ev} was scheduled for ", _given(d, f"the {ev} was scheduled for", q.raw),
                      " and was delayed by ", _qnum(n, f"the question says it was delayed by {n} day(s)"),
                      f" {'day' if n == 1 else 'days'} to today, so today is ", _RES, "."],
                     lambda v, d=d: d, n)
    return [_Chain([spec])]


def _premise_ago(m, qd, date_of) -> list[_Chain] | None:
    q = date_of(m)
    n = _n(m.group("n")) * (7 if m.group("u").startswith("week") else 1)
    d = q.date()
    spec = _day_spec(["It was ", _given(d, "it was", q.raw), " ",
                      _qnum(n, f"the question says that was {m.group('n')} {m.group('u')} ago"),
                      f" {'day' if n == 1 else 'days'} ago, so today is ", _RES, "."],
                     lambda v, d=d: d, n)
    return [_Chain([spec])]


def _premise_passed(m, qd, date_of) -> list[_Chain] | None:
    q = date_of(m)
    n = _n(m.group("n"))
    d = q.date()
    spec = _day_spec([_qnum(n, f"the question says {n} day(s) have passed"),
                      f" {'day has' if n == 1 else 'days have'} passed since ",
                      _given(d, f"{m.group('name')} {m.group('verb')} {m.group('obj')} on", q.raw),
                      ", so today is ", _RES, "."], lambda v, d=d: d, n)
    return [_Chain([spec])]


def _premise_palindrome(m, qd, date_of) -> list[_Chain] | None:
    y = m.group("y")
    rev = y[::-1]
    d = _valid((int(y), int(rev[:2]), int(rev[2:])))
    if d is None:
        raise ValueError(f"{y} has no palindrome day")
    spec = _spec(["Written backwards, ", y, " is ", (rev, f"{y} written backwards is {rev}, not {{wrong}}"),
                  ", so the palindrome day of ", y, " is ", rev + y,
                  " in MMDDYYYY format, and today is ", _RES, "."], lambda v, d=d: d,
                 lambda v, g: f"MMDDYYYY = {rev}{y} is {_long(g)}, not {{wrong}}")
    return [_Chain([spec])]


def _premise_coming_year(m, qd, date_of) -> list[_Chain] | None:
    y, n, unit = int(m.group("y")), _n(m.group("n")), m.group("u")
    new_year = dt.date(y, 1, 1)
    chains = []
    if unit.startswith("day"):
        deltas = [-n]
    else:
        deltas = [-math.ceil(n / 24)]
        if n % 24:
            deltas.append(-(n // 24))  # a coarser reading: whole days only
    for delta in deltas:
        what = f"{n} {unit}"
        spec = _spec([f"{y} begins on ", (_long(new_year), f"{y} begins on {_long(new_year)}, not {{wrong}}"),
                      ", which is ", _qnum(n, f"the question says {y} is coming in {what}"),
                      f" {unit} from now, so today is ", _RES, "."],
                     lambda v, d=new_year, k=delta: _add_days(d, k),
                     lambda v, g, what=what: f"{what} before the start of {_long(new_year)} falls on "
                                             f"{_long(g)}, not {{wrong}}",
                     src=lambda v, d=new_year: d, delta=delta)
        chains.append(_Chain([spec]))
    return chains


def _premise_eggs(m, qd, date_of) -> list[_Chain] | None:
    q = date_of(m)
    n = _n(m.group("n"))
    d = q.date()
    chains = []
    for k in (n, n - 1):
        spec = _day_spec([f"{m.group('name')} bought ", _qnum(n, f"the question says {n} eggs"),
                          " eggs on ", _given(d, "the eggs were bought on", q.raw),
                          " and ate one per day, so the eggs ran out ", str(k),
                          " days later, and today is ", _RES, "."], lambda v, d=d: d, k)
        chains.append(_Chain([spec]))
    return chains


def _premise_like_yesterday(m, qd, date_of) -> list[_Chain] | None:
    q = date_of(m)
    n = _n(m.group("n"))
    d = q.date()

    def parts(q=q, n=n, d=d):
        return [_given(d, "the date that feels like yesterday is", q.raw), " was ",
                _qnum(n, f"the question says that was {n} years ago"), " years ago, so today is ", _RES, "."]

    return _chain_variants([], _years_specs(parts, lambda v, d=d: d, n))


def _premise_visits(m, qd, date_of) -> list[_Chain] | None:
    q = date_of(m)
    if q.day is not None or q.year is None:
        raise ValueError("premise not understood")
    day, k = int(m.group("d")), int(m.group("k"))
    if k < 1:
        raise ValueError("premise not understood")
    first = _valid((q.year, q.month, day))
    if first is None:
        raise ValueError("no such date")
    today = _shift_month(first, k - 1, "exact")
    if today is None:
        raise ValueError("no such date")
    name, pron = m.group("name"), m.group("pron")
    spec = _spec([f"{name}'s first visit was on ", (_long(first), f"the first visit is on the {day}th of "
                                                                 f"{MONTHS[q.month - 1]} {q.year}, that is "
                                                                 f"{_long(first)}, not {{wrong}}"),
                  f", so {pron} ", _qnum(k, f"the question says this is visit number {k}"), "th visit, ",
                  _qnum(k - 1, f"{k - 1} months after the first visit"), " months later, is today, ",
                  _RES, "."], lambda v, d=today: d,
                 lambda v, g: f"{_plural(k - 1, 'month')} after {_long(first)} is {_long(g)}, not {{wrong}}")
    return [_Chain([spec])]


def _premise_season_year(m, qd, date_of) -> list[_Chain] | None:
    q = date_of(m)
    if q.year is not None or q.day is None:
        raise ValueError("premise not understood")
    y = int(m.group("y"))
    years = [y]
    if m.re is _NFL_RE and q.month <= 2:
        years.append(y + 1)  # the NFL season of year y ends in January/February of y + 1
    chains = []
    for yy in years:
        d = _valid((yy, q.month, q.day))
        if d is None:
            continue
        md = f"{MONTHS[q.month - 1]} {q.day}"
        spec = _spec(["Today is ", md, " and the year is ",
                      (str(yy), f"the question places today in {yy}, not {{wrong}}"),
                      ", so today is ", _RES, "."], lambda v, d=d: d,
                     lambda v, g, md=md: f"{md} of {g.year} is {_long(g)}, not {{wrong}}")
        chains.append(_Chain([spec]))
    if not chains:
        raise ValueError("no such date")
    return chains


def _premise_first_weekday(m, qd, date_of) -> list[_Chain] | None:
    y = int(m.group("y"))
    if int(m.group("y2")) != y:
        raise ValueError("premise not understood")
    specs = _nth_weekday_specs(y, 1, str(y), _ORDINALS[m.group("ord")], WEEKDAYS.index(m.group("w")),
                               first_wd=WEEKDAYS.index(m.group("w1")), stated=True)
    return [_Chain(specs)]


# The premise forms, in the order they are tried: (pattern, handler). A handler gets the match, the
# question's marked dates `qd` and `date_of(m, group)` (the date a <Dn> marker of `group` stands for), and
# returns the candidate chains, or None to let the next form try.
_PREMISES = [
    (_WRAP_RE, _premise_wrapped),
    (_APPOS_RE, _premise_apposition),
    (_FOR_TOMORROW_RE, _premise_for_tomorrow),
    (_MEETING_RE, _premise_for_tomorrow),
    (_LOCAL_RE, _premise_local),
    (_ANNIV_RE, _premise_anniversary),
    (_BORN_RE, _premise_birthday),
    (_JOB_RE, _premise_work_anniversary),
    (_THOUGHT_RE, _premise_thought),
    (_TWO_RE, _premise_two_people),
    (_UK_RE, _premise_uk_format),
    (_DEADLINE_RE, _premise_deadline),
    (_DELAY_RE, _premise_delay),
    (_AGO_RE, _premise_ago),
    (_PASSED_RE, _premise_passed),
    (_PAL_RE, _premise_palindrome),
    (_COMING_RE, _premise_coming_year),
    (_EGGS_RE, _premise_eggs),
    (_LIKEY_RE, _premise_like_yesterday),
    (_BOOK_RE, _premise_visits),
    (_NFL_RE, _premise_season_year),
    (_MD_YEAR_RE, _premise_season_year),
    (_FIRSTWD_RE, _premise_first_weekday),
]


def _parse_premise(premise: str) -> list[_Chain]:
    """Candidate chains to today's date: the first entry of `_PREMISES` whose pattern matches the
    premise and whose handler reads it (None: not this form, try the next). ValueError when no
    form reads it."""
    s, qd = _mark_dates(" ".join(premise.split()))

    def date_of(m, g="a") -> _QDate:
        return qd[int(m.group(g))]

    for pattern, handler in _PREMISES:
        m = pattern.match(s)
        if m:
            chains = handler(m, qd, date_of)
            if chains is not None:
                return chains
    raise ValueError(f"premise not understood: {premise!r}")


# ------------------------------------------------------------------------------------------------
# the question: "What is the date <shift> in MM/DD/YYYY?"
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shift:
    unit: str  # "day" | "month" | "year"
    n: int  # signed
    ask: str  # the question's words ("10 days ago")
    phrase: str  # the step's words ("10 days before today"); "" for today
    count: str  # the number as written in the phrase ("10", "one", "24")


_FIXED_SHIFTS = {
    "today": ("day", 0, ""),
    "tomorrow": ("day", 1, "the date tomorrow"),
    "yesterday": ("day", -1, "the date yesterday"),
    "the day after tomorrow": ("day", 2, "the day after tomorrow"),
    "the day before yesterday": ("day", -2, "the day before yesterday"),
}
_SHIFT_RE = re.compile(
    rf"^(?P<n>{_NUM_ALT}) (?P<u>hour|hours|day|days|week|weeks|month|months|year|years) "
    r"(?P<dir>ago from today|ago|later|later from today|from today|after today|before today|from now|"
    r"earlier)$")


def _parse_shift(ask: str) -> _Shift:
    ask = ask.strip()
    if ask in _FIXED_SHIFTS:
        unit, n, phrase = _FIXED_SHIFTS[ask]
        return _Shift(unit, n, ask, phrase, "")
    m = _SHIFT_RE.match(ask)
    if not m:
        raise ValueError(f"question not understood: {ask!r}")
    k = _n(m.group("n"))
    u = m.group("u").rstrip("s")
    sign = -1 if m.group("dir") in ("ago from today", "ago", "before today", "earlier") else 1
    count = m.group("n") if m.group("n").isdigit() else ("one" if k == 1 else m.group("n"))
    word = m.group("u") if k != 1 else u
    phrase = f"{count} {word} {'before' if sign < 0 else 'after'} today"
    if u == "hour":
        if k % 24:
            raise ValueError("shift by a number of hours that is not whole days")
        return _Shift("day", sign * k // 24, ask, phrase, count)
    if u == "week":
        return _Shift("day", sign * 7 * k, ask, phrase, count)
    return _Shift(u, sign * k, ask, phrase, count)


def _shift_variants(shift: _Shift, chain: _Chain) -> list[_Spec]:
    """The last step: from today to the asked date (several variants when the day may not exist)."""
    has_steps = bool(chain.specs)

    def today_of(v):
        return v[-1] if has_steps else chain.explicit[0]

    lead: list = []
    if not has_steps:
        d, raw = chain.explicit
        lead = ["Today is ", _given(d, "today is", raw)]
        if shift.n == 0:
            return [_spec(lead + ["."], lambda v, d=d: d,
                          lambda v, g: f"the question says today is {raw}, which is {_long(g)}, not {{wrong}}")]
        lead.append(", so ")
    phrase_piece: list = []
    if shift.count.isdigit():
        rest = shift.phrase[len(shift.count):]
        phrase_piece = [(shift.count, f"the question asks for the date {shift.ask}, so the number is "
                                      f"{shift.count}, not {{wrong}}"), rest]
    else:
        phrase_piece = [shift.phrase]
    if has_steps:  # capitalise the first word of the step
        first = phrase_piece[0]
        if isinstance(first, str):
            phrase_piece[0] = first[0].upper() + first[1:]
    parts = lead + phrase_piece + [" is ", _RES, "."]
    if shift.unit == "day":
        return [_day_spec(parts, today_of, shift.n)]
    months = shift.n * (12 if shift.unit == "year" else 1)
    unit_word = shift.unit
    out = []
    for mode in ("exact", "clamp", "overflow"):
        def compute(v, mode=mode):
            r = _shift_month(today_of(v), months, mode)
            if r is None:
                raise _NoSuchDay
            return r

        def reason(v, g, mode=mode):
            t = today_of(v)
            note = ""
            if _shift_month(t, months, "exact") is None:
                note = (" (that month is too short, so its last day is taken)" if mode == "clamp"
                        else " (that month is too short, so the count goes on past its end)")
            word = "after" if shift.n > 0 else "before"
            return (f"{_plural(abs(shift.n), unit_word)} {word} {_long(t)} is {_long(g)}{note}, "
                    f"not {{wrong}}")

        out.append(_spec(parts, compute, reason))
    return out


# ------------------------------------------------------------------------------------------------
# plans: a solved question
# ------------------------------------------------------------------------------------------------

_OPTION_RE = re.compile(r"^\(([A-Fa-f])\)\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*$")
_BARE_OPTION_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})\s*$")
_QUESTION_RE = re.compile(r"^(?P<premise>.*?)\s*What is the date (?P<ask>[^?]+?) in MM/DD/YYYY\?\s*$", re.S)
LETTERS = "ABCDEF"


@dataclass
class _Run:
    steps: list  # [(pieces, displayed result, gold result)]
    conv: Tup  # displayed MM/DD/YYYY of the last step


def _run(specs: list[_Spec], at: int | None = None, ov: dict | None = None, conv: Tup | None = None) -> _Run:
    vals: list[dt.date] = []
    out = []
    for i, spec in enumerate(specs):
        pieces, gold, disp = spec.build(vals, (ov or {}) if i == at else {})
        carry = _valid(disp) if disp != _tup(gold) else gold
        vals.append(carry or gold)
        out.append((pieces, disp, gold))
    return _Run(out, tuple(conv) if conv is not None else out[-1][1])


def _render_steps(run: _Run) -> list[list[Piece]]:
    """Pieces of every step; the last one gets ', that is MM/DD/YYYY.'"""
    steps = [list(p) for p, _d, _g in run.steps]
    last_disp = run.steps[-1][1]
    last = steps[-1]
    if last and last[-1] == (".", None):
        last.pop()
    last += [(", that is ", None),
             (_num(run.conv), f"{_long(last_disp)} is {_num(last_disp)} in MM/DD/YYYY format, not {{wrong}}"),
             (".", None)]
    return steps


def _text(pieces: list[Piece]) -> str:
    return "".join(p[0] for p in pieces)


@dataclass
class _GoldStep:
    text: str
    tokens: list  # [(token, reason template or None)]


@dataclass
class _Plan:
    specs: list
    options: list  # option triples in the question's order
    index: int  # the right option
    target: Tup
    lettered: bool = True  # options "(A) 12/14/1937" (answer "A") or bare "12/14/1937" (answer the date)

    @property
    def answer(self) -> str:
        """The gold answer string: the right option's letter, or its date."""
        return LETTERS[self.index] if self.lettered else _num(self.options[self.index])

    def said(self, i: int) -> str:
        """How a final response names option i: "(D)" or "12/14/1937"."""
        return f"({LETTERS[i]})" if self.lettered else _num(self.options[i])

    def gold_steps(self) -> list[_GoldStep]:
        out = []
        for pieces in _render_steps(_run(self.specs)):
            text = _text(pieces)
            bounds, pos = [], 0
            for t, r in pieces:
                bounds.append((pos, pos + len(t), r))
                pos += len(t)
            toks = []
            for tok in _tokens(text):
                reason = next((r for a, b, r in bounds if a <= tok.start < b), None)
                toks.append((tok, reason))
            out.append(_GoldStep(text, toks))
        return out

    def rationale(self) -> str:
        lines = [f"({i + 1}) {g.text}" for i, g in enumerate(self.gold_steps())]
        lines.append(_final(self.said(self.index)))
        return "\n".join(lines)


def _final(said: str) -> str:
    return f"({FINAL_LABEL}) So the answer is {said}."


def _split_question(question: str) -> tuple[str, list[Tup] | None]:
    """(stem, options) - options None when the text has no Options block. Options are all lettered
    ("(A) 12/14/1937") or all bare ("12/14/1937")."""
    q = question.strip()
    if q.startswith("Q:"):
        q = q[2:].strip()
    idx = q.find("\nOptions:")
    if idx < 0:
        if "Options:" in q:
            raise ValueError("malformed options")
        return q, None
    stem, block = q[:idx].strip(), q[idx + len("\nOptions:"):]
    lettered = _is_lettered(block)
    options = []
    for line in block.strip().splitlines():
        line = line.strip()
        if not line:
            continue
        if len(options) >= len(LETTERS):
            raise ValueError(f"more than {len(LETTERS)} options")
        if lettered:
            m = _OPTION_RE.match(line)
            if m is None or m.group(1).upper() != LETTERS[len(options)]:
                raise ValueError(f"option not understood: {line!r}")
            m_, d_, y_ = m.group(2), m.group(3), m.group(4)
        else:
            m = _BARE_OPTION_RE.match(line)
            if m is None:
                raise ValueError(f"option not understood: {line!r}")
            m_, d_, y_ = m.group(1), m.group(2), m.group(3)
        options.append((int(y_), int(m_), int(d_)))
    if len(options) < 2:
        raise ValueError("fewer than two options")
    return stem, options


def _is_lettered(text: str) -> bool:
    """Whether the options of a question (or of its Options block) carry letters."""
    block = text[text.find("Options:") + len("Options:"):] if "Options:" in text else text
    first = next((line.strip() for line in block.splitlines() if line.strip()), "")
    return first.startswith("(")


def _candidates(stem: str) -> list[list[_Spec]]:
    """Every reading of the question, each as a list of step specs (today chain + shift)."""
    m = _QUESTION_RE.match(stem)
    if not m:
        raise ValueError("no 'What is the date ... in MM/DD/YYYY?' question")
    shift = _parse_shift(m.group("ask"))
    chains = _parse_premise(m.group("premise"))
    out = []
    for chain in chains:
        for last in ([] if (shift.n == 0 and chain.specs) else _shift_variants(shift, chain)):
            out.append(chain.specs + [last])
        if shift.n == 0 and chain.specs:
            out.append(list(chain.specs))
    return out


def _targets(cands: list[list[_Spec]]) -> list[tuple[Tup, list[_Spec]]]:
    res = []
    for specs in cands:
        try:
            run = _run(specs)
        except (_NoSuchDay, ValueError):
            continue
        res.append((run.conv, specs))
    return res


def _plan(question: str) -> _Plan:
    try:
        return _plan_inner(question)
    except ValueError:
        raise
    except (_NoSuchDay, KeyError, IndexError, OverflowError, TypeError, AttributeError) as e:
        raise ValueError(f"question not understood ({type(e).__name__})") from e


def _plan_inner(question: str) -> _Plan:
    if not isinstance(question, str):
        raise ValueError("the question must be a string")
    stem, options = _split_question(question)
    if options is None:
        raise ValueError("the question has no options")
    cands = _targets(_candidates(stem))
    if not cands:
        raise ValueError("no reading of the question gives a real date")
    hits = {}
    for target, specs in cands:
        if options.count(target) > 1:
            raise ValueError("duplicate options")
        if target in options and target not in hits:
            hits[target] = specs
    if len(hits) != 1:
        raise ValueError("the computed date is not among the options" if not hits
                         else "ambiguous question: more than one reading gives an option")
    (target, specs), = hits.items()
    return _Plan(specs, options, options.index(target), target, _is_lettered(question))


# ------------------------------------------------------------------------------------------------
# generation
# ------------------------------------------------------------------------------------------------

_NAMES = (("Jane", "her", "She"), ("John", "his", "He"), ("Mary", "her", "She"), ("Tom", "his", "He"),
          ("Alice", "her", "She"), ("Bob", "his", "He"), ("Emma", "her", "She"), ("David", "his", "He"))


def _rand_date(rng: random.Random, lo: int = 1850, hi: int = 2060) -> dt.date:
    y = rng.randint(lo, hi)
    return dt.date(y, 1, 1) + dt.timedelta(days=rng.randrange(366 if calendar.isleap(y) else 365))


def _fmt(d: dt.date, rng: random.Random, styles=("num", "num0", "abbr", "full", "ord")) -> str:
    style = rng.choice(styles)
    if style == "num":
        return f"{d.month}/{d.day}/{d.year}"
    if style == "num0":
        return f"{d.month:02d}/{d.day:02d}/{d.year}"
    if style == "abbr":
        return f"{MONTH_ABBR[d.month - 1]} {d.day}, {d.year}"
    if style == "full":
        return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"
    suffix = "th" if 10 <= d.day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(d.day % 10, "th")
    mon = "Sept." if d.month == 9 else MONTH_ABBR[d.month - 1] + ("" if d.month == 5 else ".")
    return f"{mon} {d.day}{suffix}, {d.year}"


def _ordinal_suffix(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _g_explicit(rng):
    d, name = _rand_date(rng), rng.choice(_NAMES)[0]
    return rng.choice([
        f"Today is {_fmt(d, rng)}.",
        f"It is {_fmt(d, rng)} today.",
        f"Today, {_fmt(d, rng)}, is a day that we will never forget.",
        f"The current local time is {rng.randint(1, 12)}:{rng.randint(0, 59):02d} {rng.choice(['am', 'pm'])} "
        f"of {_fmt(d, rng, ('num', 'num0'))}.",
        f"Today is {_fmt(d, rng)}. {name}'s appointment will be {rng.randint(2, 9)} days later.",
    ])


def _g_tomorrow_yesterday(rng):
    d = _rand_date(rng)
    name = rng.choice(_NAMES)[0]
    wd = WEEKDAYS[d.weekday()][:3]
    return rng.choice([
        f"Tomorrow is {_fmt(d, rng)}.",
        f"Yesterday was {_fmt(d, rng)}.",
        f"Yesterday, {_fmt(d, rng)}, {name} ate {rng.randint(2, 5)} pizzas and {rng.randint(2, 9)} wings.",
        f"{name} booked a flight for tomorrow, {_fmt(d, rng)}.",
        f"Today's meeting is rescheduled to {rng.randint(8, 11)} am tomorrow, {_fmt(d, rng, ('num', 'num0'))}.",
        f"{name} scheduled {rng.randint(2, 5)} appointments with {rng.randint(2, 9)} people for tomorrow "
        f"({wd}, {_fmt(d, rng, ('num',))}).",
    ])


def _g_month_end_yesterday(rng):
    y, m = rng.randint(1850, 2060), rng.randint(1, 12)
    n = _mlen(y, m)
    return (f"Yesterday was {m}/{n}/{y}. Today could not be {m}/{n + 1}/{y} because {MONTHS[m - 1]} has "
            f"only {n} days.")


def _named_one_step(rng) -> str:
    """A named day resolved in one step."""
    y = rng.randint(1850, 2060)
    kind = rng.randrange(6)
    if kind == 0:
        return f"{rng.choice(list(HOLIDAYS))} of {y}"
    if kind == 1:
        return f"the {rng.choice(['first', 'last'])} day of {y}"
    if kind == 2:
        return f"the {rng.choice(['first', 'last'])} day of {rng.choice([MONTHS, MONTH_ABBR])[rng.randrange(12)]} {y}"
    if kind == 3:
        return (f"the {rng.choice(['first', 'last'])} day of the "
                f"{rng.choice(['first', 'second', 'third', 'fourth'])} quarter of {y}")
    if kind == 4:
        return f"the {_ORD_WORD[rng.randint(1, 12)]} day of the {_ORD_WORD[rng.randint(1, 12)]} month of {y}"
    return f"the first {rng.choice(WEEKDAYS)} of {y}"


def _named_two_steps(rng) -> str:
    y = rng.randint(1850, 2060)
    if rng.random() < 0.4:
        return f"US Thanksgiving of {y}"
    scope = rng.choice([str(y), f"{MONTHS[rng.randrange(12)]} {y}"])
    return f"the {rng.choice(['second', 'third', 'fourth'])} {rng.choice(WEEKDAYS)} of {scope}"


def _g_named_today(rng):
    named = _named_one_step(rng)
    return rng.choice([f"Today is {named}.", f"It is {named}.", f"This is {named}."])


def _g_named_rel(rng, named_fn, wrappers):
    named = named_fn(rng)
    w = rng.choice(wrappers)
    return {"yesterday": f"Yesterday was {named}.", "tomorrow": f"Tomorrow is {named}.",
            "dby": f"The day before yesterday was {named}.", "dat": f"The day after tomorrow is {named}.",
            "today": f"Today is {named}."}[w]


def _g_first_weekday_stated(rng, nths=("first",)):
    y = rng.randint(1850, 2060)
    w1 = WEEKDAYS[dt.date(y, 1, 1).weekday()]
    return (f"The first day of {y} is a {w1}, and today is the {rng.choice(nths)} {rng.choice(WEEKDAYS)} "
            f"of {y}.")


def _g_people(rng):
    """Families about people: anniversaries, disagreements, deadlines, ..."""
    (name, pron, subj), (other, _p2, _s2) = rng.sample(_NAMES, 2)
    d = _rand_date(rng)
    n = rng.randint(1, 60)
    kind = rng.randrange(14)
    if kind == 0:
        return (f"{name} and {other} married on {_fmt(d, rng)}. "
                + rng.choice([f"It is their {n}-year anniversary today.", f"Today is their {n}-year anniversary.",
                              f"Today is their {rng.choice(list(_NAMED_ANNIV))} wedding anniversary."]))
    if kind == 1:
        return f"{name} was born on {_fmt(d, rng)}. Today is {pron} {n}-year-old birthday."
    if kind == 2:
        k = rng.randint(1, 3)
        t = _add_days(d, k)
        return (f"{name} thought today is {_fmt(d, rng, ('num',))}, but today is in fact "
                f"{MONTH_ABBR[t.month - 1]} {t.day}, which is {k} {'day' if k == 1 else 'days'} later.")
    if kind == 3:
        a, b = d, _add_days(d, rng.choice([-1, 1]))
        c = rng.choice([name, other])
        return (f"{name} thinks today is {_fmt(a, rng, ('num',))}, but {other} thinks today is "
                f"{_fmt(b, rng, ('num',))}. {c} is correct.")
    if kind == 4:
        return ("In the UK, people usually put the day before the month when formatting the date. "
                f"Therefore, today is {d.day:02d}/{d.month:02d}/{d.year} to them.")
    if kind == 5:
        k = rng.randint(1, 9)
        return f"The deadline is {_fmt(d, rng)}, which is {k} {'day' if k == 1 else 'days'} away from now."
    if kind == 6:
        k = rng.randint(1, 3)
        ev = rng.choice(["concert", "meeting", "game", "flight"])
        kk = rng.choice([str(k), {1: "one", 2: "two", 3: "three"}[k]])
        return (f"The {ev} was scheduled to be on {_fmt(d, rng, ('num0', 'num'))}, but was delayed by {kk} "
                f"{'day' if k == 1 else 'days'} to today.")
    if kind == 7:
        return rng.choice([f"It was {_fmt(d, rng)} a week ago.",
                           f"It was {_fmt(d, rng)} {rng.randint(2, 6)} days ago."])
    if kind == 8:
        k = rng.randint(20, 400)
        return f"{name} quit {pron} job on {_fmt(d, rng)}. {k} days have passed since then."
    if kind == 9:
        while True:
            y = rng.randint(1001, 2999)
            rev = str(y)[::-1]
            if _valid((y, int(rev[:2]), int(rev[2:]))):
                break
        return (f"Today is the palindrome day of {y}, because the MMDDYYYY format of the date is the same "
                "backwards as forwards.")
    if kind == 10:
        return f"{rng.randint(1851, 2060)} is coming in {24 * rng.randint(1, 3)} hours."
    if kind == 11:
        k = rng.randint(2, 30)
        kk = rng.choice([str(k), _num_word(k)])
        return f"{_fmt(d, rng, ('abbr', 'full'))} is like yesterday to {name}, but that is actually {kk} years ago."
    if kind == 12:
        day, k = rng.randint(1, 28), rng.randint(2, 15)
        return (f"{name} visits the bookstore on the {day}{_ordinal_suffix(day)} of each month starting from "
                f"the {MONTHS[d.month - 1]} of {d.year}. It is {pron} {k}{_ordinal_suffix(k)} visit to the "
                "bookstore today.")
    if rng.random() < 0.5:
        m = rng.randint(9, 12)
        return f"Today is {m}/{rng.randint(1, 30)}. {name} is watching NFL {d.year}."
    return (f"Today is {d.month}/{d.day}, and it is {name}'s {rng.choice(['first', 'second', 'third'])} time "
            f"in the year {d.year} to see a meteor shower.")


def _num_word(k: int) -> str:
    inv = {v: w for w, v in _NUMWORDS.items() if w not in ("a", "an")}
    return inv.get(k, str(k))


def _g_two_step_people(rng):
    name, pron, subj = rng.choice(_NAMES)
    if rng.random() < 0.5:
        y = rng.randint(1850, 2040)
        feb = rng.choice(["Feb", "February", "Feburary"])
        return (f"{name} was born on the last day of {feb} in {y}. Today is {pron} "
                f"{rng.randint(1, 60)}-year-old birthday.")
    y = rng.randint(1850, 2050)
    second = _rand_date(rng, y, y)
    if second.month == 1 and second.day == 1:
        second = dt.date(y, 1, 2)
    return (f"{name} got {pron} job in {y}. Today is {pron} {rng.randint(1, 20)}-year work anniversary. "
            f"{subj} still remembers that on {MONTH_ABBR[second.month - 1]} {second.day}, {pron} second day at "
            f"work, {subj.lower()} had to attend a meeting.")


def _g_dby_dat(rng):
    d = _rand_date(rng)
    return rng.choice([f"The day before yesterday was {_fmt(d, rng)}.",
                       f"The day after tomorrow is {_fmt(d, rng)}."])


_GEN_FAMILIES: dict[int, list] = {
    0: [_g_explicit],
    1: [_g_tomorrow_yesterday, _g_month_end_yesterday, _g_named_today, _g_first_weekday_stated, _g_people,
        _g_people, _g_people],
    2: [_g_dby_dat, lambda r: _g_named_rel(r, _named_one_step, ["yesterday", "tomorrow"]),
        lambda r: _g_named_rel(r, _named_two_steps, ["today"]),
        lambda r: _g_first_weekday_stated(r, ("second", "third", "fourth")), _g_two_step_people],
    3: [lambda r: _g_named_rel(r, _named_two_steps, ["yesterday", "tomorrow"]),
        lambda r: _g_named_rel(r, _named_one_step, ["dby", "dat"])],
    4: [lambda r: _g_named_rel(r, _named_two_steps, ["dby", "dat"])],
}


_GEN_SHIFTS = ["tomorrow", "yesterday", "24 hours later", "{n} days ago", "one week ago from today",
               "one week from today", "a month ago", "one year ago from today", "{n} days later",
               "one year from today", "a month from today", "{w} weeks ago", "the day after tomorrow"]


def _g_shift(rng) -> str:
    s = rng.choice(_GEN_SHIFTS)
    return s.format(n=rng.randint(2, 30), w=rng.choice(["two", "3"]))


def _distractors(gold: dt.date, today: dt.date, rng: random.Random) -> list[dt.date]:
    cands: list[dt.date] = []

    def add(t):
        d = _valid(t) if not isinstance(t, dt.date) else t
        if d is not None and d != gold and d not in cands and 1000 <= d.year <= 9999:
            cands.append(d)

    y, m, d = _tup(gold)
    for dy in (1, -1, rng.randint(2, 60), -rng.randint(2, 60)):
        add((y + dy, m, d))
    add((y, d, m))
    for k in (1, -1, 7, -7):
        try:
            add(_add_days(gold, k))
        except ValueError:
            pass
    add((y, m + 1, d) if m < 12 else (y + 1, 1, d))
    add((y, m - 1, d) if m > 1 else (y - 1, 12, d))
    add(today)
    try:
        add(_add_days(today, (today - gold).days))
    except ValueError:
        pass
    add((y, rng.randint(1, 12), d))
    rng.shuffle(cands)
    return cands[:5]


# ------------------------------------------------------------------------------------------------
# the Task
# ------------------------------------------------------------------------------------------------

_ANSWER_RE = re.compile(r"answer is (?:\(([A-Fa-f])\)|(\d{1,2})/(\d{1,2})/(\d{4})(?![\d/]))")


def _named_answer(text: str) -> str | None:
    """The last "answer is (X)" / "answer is MM/DD/YYYY" of a final response: "X" or "MM/DD/YYYY"."""
    found = _ANSWER_RE.findall(text)
    if not found:
        return None
    letter, m, d, y = found[-1]
    return letter.upper() if letter else _num((int(y), int(m), int(d)))


def _chosen(text: str, options: list, lettered: bool) -> int | None:
    """The option a final response names (its index), or None."""
    named = _named_answer(text)
    if named is None:
        return None
    if lettered:
        i = LETTERS.find(named) if len(named) == 1 else -1
        return i if 0 <= i < len(options) else None
    names = [_num(o) for o in options]
    return names.index(named) if named in names else None


_BUCKETS = ("1", "2", "3", "4+")


def _bucket(n_steps: int) -> str:
    return str(n_steps) if n_steps <= 3 else "4+"


class DateUnderstanding(Task):
    """`option_letters`: generated questions letter their options and are answered with the
    letter (the paper), or list bare dates and are answered with the date (the default profile:
    a from-scratch small model computes the date but does not learn the letter lookup,
    docs/small-model.md). Solving, parsing and checking read the format from the question."""

    name: ClassVar[str] = "date_understanding"
    label: ClassVar[str] = "DU"
    info: ClassVar[str] = ""
    default_buckets: ClassVar[dict[str, list[str]]] = {"seen": ["1", "2"], "unseen": ["3", "4+"]}
    # BIG-Bench's task.json lists the right date first; the paper shuffled the options (seed 42).
    shuffle_bigbench_choices: ClassVar[bool] = True

    def __init__(self, option_letters: bool = True):
        if not isinstance(option_letters, bool):
            raise ValueError(f"option_letters must be true or false, got {option_letters!r}")
        self.option_letters = option_letters

    def _options_block(self, dates: list[str]) -> str:
        """"\nOptions:" and one line per MM/DD/YYYY option, lettered "(A) ..." or bare."""
        return "\nOptions:\n" + "\n".join(f"({LETTERS[i]}) {d}" if self.option_letters else d
                                          for i, d in enumerate(dates))

    # -- generation ---------------------------------------------------------------------------
    def check_bucket(self, bucket: str) -> None:
        if bucket not in _BUCKETS:
            raise ValueError(f"unknown bucket {bucket!r}; choose one of {', '.join(_BUCKETS)}")

    def sample(self, bucket: str, rng: random.Random) -> tuple[str, str]:
        self.check_bucket(bucket)
        total = (5 if rng.random() < 0.25 else 4) if bucket == "4+" else int(bucket)
        for _ in range(500):
            # today-steps k and whether the question asks for today itself
            if total == 1:
                k, ask_today = (0, False) if rng.random() < 0.7 else (1, True)
            elif rng.random() < 0.75 or total not in _GEN_FAMILIES:
                k, ask_today = total - 1, False
            else:
                k, ask_today = total, True
            premise = rng.choice(_GEN_FAMILIES[k])(rng)
            ask = "today" if ask_today else _g_shift(rng)
            stem = f"{premise} What is the date {ask} in MM/DD/YYYY?"
            try:
                cands = _targets(_candidates(stem))
            except ValueError:
                continue
            if len({t for t, _ in cands}) != 1:
                continue  # the generator only asks unambiguous questions
            target, specs = cands[0]
            if len(specs) != total:
                continue
            gold = _valid(target)
            run = _run(specs)
            today = run.steps[-2][1] if len(specs) > 1 else None
            today_d = _valid(today) if today else gold
            if gold is None or today_d is None:
                continue
            options = _distractors(gold, today_d, rng)
            if len(options) < 5:
                continue
            options.append(gold)
            rng.shuffle(options)
            question = stem + self._options_block([_num(o) for o in options])
            try:
                plan = _plan(question)
            except ValueError:
                continue
            if plan.index != options.index(gold):
                continue
            return question, plan.answer
        raise RuntimeError(f"could not generate a question for bucket {bucket!r}")  # pragma: no cover

    def bucket_of(self, question: str) -> str:
        return _bucket(len(_plan(question).specs))

    # -- solving and checking ---------------------------------------------------------------
    def solve(self, question: str) -> str:
        return _plan(question).rationale()

    def parse_answer(self, text: str) -> str | None:
        try:
            attempt = formats.last_attempt(text)
            for line in reversed(attempt.splitlines()):
                step = formats.parse_step(line)
                if step is not None and step.label == FINAL_LABEL:
                    return _named_answer(step.text)
            return None
        except Exception:  # noqa: BLE001 - a parser of model output never raises
            return None

    def has_valid_content(self, question: str, attempt: str) -> bool:
        """Valid content (docs/method.md §2.4): the chosen option's date is the date the last step ends
        with. Never raises."""
        try:
            _stem, options = _split_question(question)
            body, final = _attempt_steps(attempt)
            if options is None or final is None or not body:
                return False
            i = _chosen(final.text, options, _is_lettered(question))
            if i is None:
                return False
            dates = [t.value for t in _tokens(body[-1].text) if t.kind == "date"]
            return bool(dates) and dates[-1] == options[i]
        except Exception:  # noqa: BLE001 - a check of model output never raises
            return False

    def feedback(self, question: str, attempt: str) -> Feedback:
        body, final = _attempt_steps(attempt)
        plan = _plan(question)
        gold = plan.gold_steps()
        used = body + ([final] if final is not None else [])

        def error(step: Step, segment: str, reason: str) -> Feedback:
            return self.wrong_step(used, step.label, " ".join(segment.split()) or step.line, reason)

        for i, step in enumerate(body):
            if i >= len(gold):
                return error(step, step.text, f"the date asked for, {_num(plan.target)}, was already found "
                                              f"in step ({body[len(gold) - 1].label}); no further step is needed")
            found = _check_step(step.text, gold[i])
            if found is not None:
                return error(step, *found)
        if len(body) < len(gold):
            nxt = gold[len(body)].text
            if final is not None:
                return error(final, final.text, f"the date asked for has not been found yet; the next step "
                                                f"is: {nxt}")
            if not body:  # pragma: no cover - _attempt_steps guarantees a step
                raise ValueError("no step lines")
            return error(body[-1], body[-1].text, f"the answer stops here; the next step is: {nxt}")
        if final is None:
            return error(body[-1], body[-1].text,
                         f"the attempt ends without a final response; {_right_option(plan)}")
        if _chosen(final.text, plan.options, plan.lettered) != plan.index:
            m = re.search(r"the answer is.*", final.text, re.I)
            segment = m.group(0) if m else final.text
            return error(final, segment, _right_option(plan))
        return self.all_correct(used)

    def improve(self, question: str, attempt: str, feedback: Feedback) -> str:
        if feedback.is_correct:
            return attempt.strip()
        body, final = _attempt_steps(attempt)
        plan = _plan(question)
        k = min(self.rewrite_from(question, attempt, body + ([final] if final else []), feedback), len(body))
        prefix = body[:k]
        gold = plan.gold_steps()
        lines = [s.line for s in prefix]
        for j in range(k, len(gold)):
            lines.append(f"({j + 1}) {gold[j].text}")
        lines.append(_final(plan.said(plan.index)))
        return "\n".join(lines)

    def corrupt(self, question: str, rationale: str, rng: random.Random) -> tuple[str, str]:
        plan = _plan(question)
        specs = plan.specs
        gold_run = _run(specs)
        n = len(specs)
        kinds = ["date", "off_by_one", "letter", "conversion"]
        length_steps = [i for i in range(n) if _length_slips(specs[i], gold_run, i)]
        if length_steps:
            kinds.append("month_length")
        for _ in range(50):
            kind = rng.choice(kinds)
            if kind == "letter":
                wrong = rng.choice([i for i in range(len(plan.options)) if i != plan.index])
                lines = [f"({i + 1}) {_text(p)}" for i, p in enumerate(_render_steps(gold_run))]
                lines.append(_final(plan.said(wrong)))
                return "\n".join(lines), FINAL_LABEL
            if kind == "conversion":
                at, ov = n - 1, None
                g = gold_run.conv
                alts = [(g[0], g[2], g[1]), (g[0], g[1], g[2] + 1), (g[0], g[1], g[2] - 1), (g[0] + 1, g[1], g[2])]
                alts = [a for a in alts if a != g and _valid(a) is not None]
                run = _run(specs, conv=rng.choice(alts))
            elif kind == "month_length":
                at = rng.choice(length_steps)
                ov = rng.choice(_length_slips(specs[at], gold_run, at))
                try:
                    run = _run(specs, at, ov)
                except (_NoSuchDay, ValueError):
                    continue
            else:
                at = rng.randrange(n)
                g = _valid(_run(specs).steps[at][1])
                alts = []
                if kind == "off_by_one":
                    alts = [_add_days(g, 1), _add_days(g, -1)]
                else:
                    alts = [g.replace(year=g.year + dy) for dy in (1, -1, 10) if _valid((g.year + dy, g.month, g.day))]
                    alts += [_valid((g.year, g.month + dm, g.day)) for dm in (1, -1) if 1 <= g.month + dm <= 12]
                    alts += [_add_days(g, rng.choice([2, 3, -2, -3, 7, -7]))]
                alts = [a for a in alts if a is not None and a != g]
                ov = {"result": _tup(rng.choice(alts))}
                try:
                    run = _run(specs, at, ov)
                except (_NoSuchDay, ValueError):
                    continue
            lines = [f"({i + 1}) {_text(p)}" for i, p in enumerate(_render_steps(run))]
            if lines[at] == f"({at + 1}) {_text(_render_steps(gold_run)[at])}":
                continue  # pragma: no cover - the planted error always shows
            if plan.lettered:
                said = plan.said(_closest_option(run.conv, run.steps[-1][2], plan))
            else:  # the model names the date it found, an option or not
                said = _num(run.conv)
            lines.append(_final(said))
            return "\n".join(lines), str(at + 1)
        raise RuntimeError("could not plant an error")  # pragma: no cover

    # -- real BIG-Bench data ----------------------------------------------------------------
    def from_bigbench(self, input: str, target: str, choices: list[str] | None = None) -> Example:
        text = input.strip()
        if text.startswith("Q:"):
            text = text[2:].strip()
        if choices is not None:
            if "Options:" in text:
                raise ValueError("input already has options")
            opts = [c.strip() for c in choices]
            if not 2 <= len(opts) <= 6 or len(set(opts)) != len(opts):
                raise ValueError("need 2 to 6 distinct options")
            tgt = target[0] if isinstance(target, (list, tuple)) and target else target
            tgt = str(tgt).strip()
            if tgt not in opts:
                raise ValueError("target is not one of the choices")
            index = opts.index(tgt)
            question = text + self._options_block(opts)
        else:  # BIG-Bench-Hard: lettered options in the input, the target "(D)"
            m = re.fullmatch(r"\(?([A-Fa-f])\)?", str(target).strip())
            if not m:
                raise ValueError(f"target not understood: {target!r}")
            index = LETTERS.index(m.group(1).upper())
            question = text
        plan = _plan(question)
        if plan.index != index:
            raise ValueError(f"solver answers {plan.said(plan.index)} but the target is {plan.said(index)}")
        bucket = _bucket(len(plan.specs))
        return Example(question, plan.answer, plan.rationale(), bucket, self.split_of(bucket))


# ------------------------------------------------------------------------------------------------
# checking helpers
# ------------------------------------------------------------------------------------------------


def _attempt_steps(attempt: str) -> tuple[list[Step], Step | None]:
    """Non-final steps up to the first final response, and that final response."""
    body: list[Step] = []
    for line in str(attempt).splitlines():
        step = formats.parse_step(line)
        if step is None:
            continue
        if step.label == FINAL_LABEL:
            return body, step
        body.append(step)
    if not body:
        raise ValueError("no step lines in the attempt")
    return body, None


def _check_step(text: str, gold: _GoldStep) -> tuple[str, str] | None:
    """(segment, reason) of the first token of `text` that differs from the gold step, or None."""
    got = _tokens(text)
    default = f"the step should be: {gold.text}"
    for j in range(max(len(got), len(gold.tokens))):
        if j >= len(got):
            return text, f"this step is incomplete; {default}"
        a = got[j]
        if j >= len(gold.tokens):
            return a.text, f"{a.text} does not belong in this step; {default}"
        g, reason = gold.tokens[j]
        if a.kind == g.kind and a.value == g.value:
            continue
        if a.kind != g.kind or reason is None:
            return a.text, f"{a.text} is not right here; {default}"
        why = reason.replace("{wrong}", a.text)
        if a.kind == "date":
            why += _invalid_note(a.value)
        return a.text, why
    return None


def _length_slips(spec: _Spec, run: _Run, i: int) -> list[dict]:
    """Overrides that plant a wrong month length or leap year in step i (empty if none applies)."""
    out: list[dict] = []
    vals = [(_valid(d) or g) for _p, d, g in run.steps[:i]]
    gold = run.steps[i][2]
    if spec.leap and spec.month_end:
        y, _m = spec.month_end
        wrong = (y, 2, 28) if calendar.isleap(y) else (y, 2, 29)
        out.append({"leap": True, "result": wrong})
    if spec.month_end and not spec.leap:
        y, m = spec.month_end
        n = _mlen(y, m)
        out += [{"result": (y, m, n - 1)}, {"result": (y, m, n + 1)}]
    if spec.src is not None and spec.delta:
        src = spec.src(vals)
        for wrong in _wrong_calendar(src, spec.delta):
            if wrong != _tup(gold):
                out.append({"result": wrong})
    return out


def _wrong_calendar(src: dt.date, delta: int) -> list[Tup]:
    """Results of counting `delta` days from `src` with one crossed month one day too long/short."""
    months = []
    y, m = src.year, src.month
    end = _add_days(src, delta)
    while (y, m) != (end.year, end.month):
        months.append((y, m))
        y, m = (y + (m == 12), m % 12 + 1) if delta > 0 else (y - (m == 1), (m - 2) % 12 + 1)
    if delta < 0:  # counting back crosses the ends of the months before src's month
        months = [((yy - (mm == 1)), (mm - 2) % 12 + 1) for yy, mm in months]
    out = []
    for wy, wm in months[:3]:
        for dl in (1, -1):
            def mlen(yy, mm, wy=wy, wm=wm, dl=dl):
                return _mlen(yy, mm) + (dl if (yy, mm) == (wy, wm) else 0)

            yy, mm, dd = src.year, src.month, src.day
            for _ in range(abs(delta)):
                if delta > 0:
                    dd += 1
                    if dd > mlen(yy, mm):
                        yy, mm, dd = yy + (mm == 12), mm % 12 + 1, 1
                else:
                    dd -= 1
                    if dd < 1:
                        yy, mm = yy - (mm == 1), (mm - 2) % 12 + 1
                        dd = mlen(yy, mm)
            t = (yy, mm, dd)
            if t not in out:
                out.append(t)
    return out


def _right_option(plan: _Plan) -> str:
    if plan.lettered:
        return f"the option with {_num(plan.target)} is ({LETTERS[plan.index]})"
    return f"the answer is the date the last step found, {_num(plan.target)}"


def _closest_option(conv: Tup, carried: dt.date, plan: _Plan) -> int:
    """The option a model would pick for its (wrong) date: that date if it is an option, else the
    nearest other option."""
    if conv in plan.options:
        return plan.options.index(conv)
    ref = _valid(conv) or carried

    def dist(o):
        d = _valid(o)
        return abs((d - ref).days) if d else 10**9

    others = [i for i in range(len(plan.options)) if i != plan.index]
    return min(others, key=lambda i: (dist(plan.options[i]), i))
