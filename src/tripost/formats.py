"""The text format shared by every task, the small model, FBK/IMP and processing (docs/method.md §1.3).

A model output is a sequence of *attempts*; an attempt is a list of step lines
`(1) ...`, `(3.2) ...`, ending with `(Final response) ... So the answer is ...`.
Attempts are separated by `Feedback: ...` lines and `Updated Answer: Let's think step by step.`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANSWER_HEADER = "Answer: Let's think step by step."
UPDATED_HEADER = "Updated Answer: Let's think step by step."
FEEDBACK_TAG = "Feedback:"
FINAL_LABEL = "Final response"
CORRECT_PHRASE = "The final response is also correct."
# record kinds of the split layout whose prompt holds the judged attempt (wrong ones included): they are
# trained with a masked prompt only (tripost.processing.split_layout, tripost.training.encode_records)
JUDGED_ATTEMPT_KINDS = ("verify_wrong", "verify_right", "revision")

_STEP_RE = re.compile(r"^\((\d+(?:\.\d+)*|Final response)\) ?(.*)$")


@dataclass(frozen=True)
class Step:
    label: str  # "1", "3.2" or "Final response"
    text: str

    @property
    def line(self) -> str:
        return f"({self.label}) {self.text}"


@dataclass(frozen=True)
class Feedback:
    """A step-level feedback: the first wrong step, the wrong segment and why (docs/method.md §2.3)."""

    is_correct: bool
    step: str | None  # label of the first wrong step, "Final response", or None when correct
    segment: str | None
    reason: str | None
    text: str


def parse_step(line: str) -> Step | None:
    """`(2) Let's ...` -> Step("2", "Let's ..."); anything else -> None."""
    m = _STEP_RE.match(line.strip())
    return Step(m.group(1), m.group(2)) if m else None


def parse_steps(attempt: str) -> list[Step]:
    """Split an attempt into steps. Raises ValueError on any line that is not a step."""
    steps = []
    for line in attempt.strip().splitlines():
        step = parse_step(line)
        if step is None:
            raise ValueError(f"not a step line: {line!r}")
        steps.append(step)
    if not steps:
        raise ValueError("empty attempt")
    return steps


def join_steps(steps: list[Step]) -> str:
    return "\n".join(s.line for s in steps)


def answer_header(info: str = "", updated: bool = False) -> str:
    header = UPDATED_HEADER if updated else ANSWER_HEADER
    return f"{header} {info}" if info else header


def prompt(question: str, info: str = "") -> str:
    """The small model's input for a first attempt (no trailing newline)."""
    return f"Q: {question}\n{answer_header(info)}"


def correct_feedback_text(steps: list[Step]) -> str:
    """`Step (1) to (N) are correct. The final response is also correct.` (N = last non-final step)."""
    labels = [s.label for s in steps if s.label != FINAL_LABEL]
    if not labels:
        return CORRECT_PHRASE
    return f"{_prefix_correct(labels)} {CORRECT_PHRASE}"


def error_feedback_text(steps: list[Step], step: str, segment: str, reason: str) -> str:
    """The paper's error sentence: earlier steps declared correct, then the wrong part and why."""
    labels = [s.label for s in steps]
    if step not in labels:
        raise ValueError(f"step {step!r} is not in the attempt")
    before = [lab for lab in labels[: labels.index(step)] if lab != FINAL_LABEL]
    reason = reason.rstrip(".")
    body = f'In step ({step}) the part " {segment} " is incorrect. This is because {reason}.'
    return f"{_prefix_correct(before)} {body}" if before else body


def _prefix_correct(labels: list[str]) -> str:
    if len(labels) == 1:
        return f"Step ({labels[0]}) is correct."
    return f"Step ({labels[0]}) to ({labels[-1]}) are correct."


_ERROR_HEAD_RE = re.compile(r'In step \((\d+(?:\.\d+)*|Final response)\) the part "')
_ERROR_MID = '" is incorrect. This is because '


def _match_error(text: str) -> tuple[str, str, str] | None:
    """(step, segment, reason) of `In step (k) the part "<segment>" is incorrect. This is because
    <reason>` anywhere in one line: the leftmost head, the segment up to the *last* `" is incorrect.
    This is because ` (a segment may quote), the reason to the end. Linear time (a backtracking regex
    took seconds on one long hostile line)."""
    mid = text.rfind(_ERROR_MID)
    if mid < 0:
        return None
    head = _ERROR_HEAD_RE.search(text, 0, mid)
    if head is None:
        return None
    return head.group(1), text[head.end():mid], text[mid + len(_ERROR_MID):]


def parse_feedback(text: str) -> Feedback | None:
    """Parse a feedback sentence (ours, the paper's, or a model's). None if it is neither form."""
    text = text.strip()
    if text.startswith(FEEDBACK_TAG):
        text = text[len(FEEDBACK_TAG) :].strip()
    if "\n" in text or not text:
        return None
    if text.endswith(CORRECT_PHRASE) and "incorrect" not in text:
        return Feedback(True, None, None, None, text)
    m = _match_error(text)
    if not m:
        return None
    step, segment, reason = m
    reason = reason.strip().rstrip(".")
    if not reason:
        return None
    return Feedback(False, step, segment.strip(), reason, text)


def same_error(a: Feedback, b: Feedback) -> bool:
    """The same error (docs/method.md §2.4): same error step and one segment contains the other."""
    if a.is_correct or b.is_correct or a.step != b.step:
        return False
    sa, sb = a.segment or "", b.segment or ""
    return sa in sb or sb in sa


def split_attempts(text: str) -> tuple[list[str], list[str]]:
    """Split a model output (after the prompt) into attempts and the feedback after each.

    Returns (attempts, feedbacks); feedbacks[i] follows attempts[i] and may be missing for the last
    attempt. Header lines (`Q:`, `Answer:`, `Updated Answer:`, options) are skipped.
    """
    attempts: list[str] = []
    feedbacks: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith(FEEDBACK_TAG):
            attempts.append("\n".join(current))
            feedbacks.append(s[len(FEEDBACK_TAG) :].strip())
            current = []
        elif s.startswith("Updated Answer:"):
            if current:  # an update without feedback in between: close the attempt
                attempts.append("\n".join(current))
            current = []
        elif parse_step(s) is not None:
            current.append(s)
    if current:
        attempts.append("\n".join(current))
    return attempts, feedbacks


def last_attempt(text: str) -> str:
    """The last attempt's step lines in a model output ('' if there is none)."""
    attempts, _ = split_attempts(text)
    return attempts[-1] if attempts else ""
