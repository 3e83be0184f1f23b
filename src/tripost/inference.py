"""Self-improving inference (docs/method.md §5.1; the intended behaviour of the original loop).

The model answers; it then writes `Feedback: ...`; if that feedback is not "... The final response is
also correct." it is re-prompted with `Updated Answer: Let's think step by step.` to revise. At most
`max_generation_calls` generation calls per question (default 3, the original's
`num_continue_generation`); the answer is the *last* attempt's, whatever the model's last feedback says.
Questions are batched: every round sends all still-active questions to one `generate_fn` call.

Fixes of the original's quirks (docs/method.md §7): re-prompts keep the task's `info` text after
"Let's think step by step." (training texts have it), and a call that ends with an error feedback is
re-prompted for an `Updated Answer` (the original's parser bug turned that feedback into an attempt).

Per call, after the text is cleaned (see `clean_completion`):
- the last line is a "correct" feedback                        -> done ("correct")
- the call added nothing                                          -> done ("no_progress")
- the last attempt repeats one of its own lines                   -> done ("repeating")
- the call ended (EOS / stop string / junk line cut) with
    a feedback line          -> re-prompt `{prompt}\\n{last attempt}\\nFeedback: {fb}\\nUpdated Answer: ...`
    a `(Final response)` line -> re-prompt `{prompt}\\n{last attempt}\\nFeedback:`
    anything else            -> done ("incomplete")
- the call hit max_new_tokens                                     -> continue from the text so far
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

from tripost import formats
from tripost.formats import CORRECT_PHRASE, FEEDBACK_TAG, FINAL_LABEL, parse_step

# Generation stops at a hallucinated next question or a blank line (neither is part of the format).
STOP_STRINGS = ("\nQ:", "\n\n")

_CORRECT_RE = re.compile(re.escape(CORRECT_PHRASE.rstrip(".")), re.IGNORECASE)


def _default_generate(*args, **kwargs):
    from tripost.generation import generate  # imported lazily: generation pulls in torch

    return generate(*args, **kwargs)


@dataclass
class SelfImproveResult:
    """One question's self-improving inference."""

    prompt: str  # the first call's prompt: "Q: ...\nAnswer: Let's think step by step.[ info]"
    completion: str  # everything the model wrote after `prompt` (cleaned), re-prompt headers included
    attempts: list[str]  # every attempt (step lines only), in order
    feedbacks: list[str]  # the model's own feedback after each attempt (may lack the last one)
    num_revisions: int  # len(attempts) - 1
    calls: int  # generation calls used
    stop: str  # correct | no_progress | repeating | incomplete | max_calls
    answer: str | None = None  # the task's parse of the last attempt (None if unparsable)
    tokens: int = 0  # generated tokens over all calls

    @property
    def text(self) -> str:
        return f"{self.prompt}{self.completion}"

    @property
    def last_attempt(self) -> str:
        return self.attempts[-1] if self.attempts else ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["text"] = self.text
        return d


# --------------------------------------------------------------------------------------------------
# cleaning


def _line_type(line: str) -> str | None:
    s = line.strip()
    if s.startswith(FEEDBACK_TAG):
        return "feedback"
    if s.startswith("Updated Answer:"):
        return "updated"
    step = parse_step(s)
    if step is not None:
        return "final" if step.label == FINAL_LABEL else f"step:{step.label}"
    return None


def clean_completion(completion: str) -> tuple[str, bool]:
    """Keep the legit prefix of a model completion; returns (cleaned, cut_something).

    Legit lines: steps `(n)`/`(n.m)`, `(Final response)`, `Feedback:`, `Updated Answer:`. Cleaning stops
    at the first other line (blank lines included, except leading ones), at two consecutive lines of the
    same type (a repeated step label, two feedbacks, two headers), and at a step right after a final
    response or a feedback (a new attempt must be introduced by `Updated Answer:`).
    """
    body = completion.lstrip("\n")
    lead = completion[: len(completion) - len(body)]
    kept: list[str] = []
    prev: str | None = None
    lines = body.split("\n")
    for i, line in enumerate(lines):
        kind = _line_type(line)
        if kind is None:
            if i == len(lines) - 1 and line.strip() and _could_be_partial(line):
                # an unfinished header at the very end of a length-truncated call: keep it raw
                kept.append(line)
                return lead + "\n".join(kept), False
            return lead + "\n".join(kept), True
        if kind == prev:
            return lead + "\n".join(kept), True
        if kind.startswith("step:") or kind == "final":
            if prev in ("final", "feedback"):
                return lead + "\n".join(kept), True
        if kind == "updated" and prev not in ("feedback", "final"):
            return lead + "\n".join(kept), True
        kept.append(line)
        prev = kind
    return lead + "\n".join(kept), False


def _could_be_partial(line: str) -> bool:
    """A prefix of a legit header (e.g. '(Fin', 'Feedb', '(1'): kept so a continuation can finish it."""
    s = line.strip()
    for header in ("(Final response)", FEEDBACK_TAG, "Updated Answer:"):
        if header.startswith(s):
            return True
    return bool(re.fullmatch(r"\(\d+(\.\d*)*", s))


def _is_correct_feedback(line: str) -> bool:
    s = line.strip()
    return s.startswith(FEEDBACK_TAG) and bool(_CORRECT_RE.search(s)) and "incorrect" not in s


def _repeats(attempt_lines: list[str]) -> bool:
    steps = [ln.strip() for ln in attempt_lines if ln.strip()]
    return len(steps) != len(set(steps))


# --------------------------------------------------------------------------------------------------
# the loop


@dataclass
class _State:
    index: int
    prompt: str
    completion: str = ""
    call_prompt: str = ""
    calls: int = 0
    tokens: int = 0
    stop: str | None = None


def self_improve(
    task,
    questions: Sequence[str],
    model=None,
    tokenizer=None,
    *,
    max_generation_calls: int,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    do_sample: bool = False,  # greedy unless asked (sampling settings come from params.yaml)
    temperature: float = 1.0,
    top_p: float = 1.0,
    progress: bool = False,
    generate_fn: Callable | None = None,
) -> list[SelfImproveResult]:
    """Run the self-improving inference on every question (batched); one result per question.

    `generate_fn(model, tokenizer, prompts, *, max_new_tokens, do_sample, temperature, top_p, stop,
    batch_size, seed, progress) -> list[Generation]` defaults to `tripost.generation.generate`.
    Round r (0-based) uses seed `seed + r`.
    """
    if max_generation_calls < 1:
        raise ValueError("max_generation_calls must be >= 1")
    generate_fn = generate_fn or _default_generate
    info = task.info
    states = [_State(i, task.prompt(q)) for i, q in enumerate(questions)]
    for s in states:
        s.call_prompt = s.prompt
    for rnd in range(max_generation_calls):
        active = [s for s in states if s.stop is None]
        if not active:
            break
        gens = generate_fn(
            model,
            tokenizer,
            [s.call_prompt for s in active],
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_p=top_p,
            stop=list(STOP_STRINGS),
            batch_size=batch_size,
            seed=seed + rnd,
            progress=progress,
        )
        if len(gens) != len(active):
            raise RuntimeError(f"generate_fn returned {len(gens)} generations for {len(active)} prompts")
        for s, g in zip(active, gens):
            _step(s, g, info, last_call=rnd == max_generation_calls - 1)
    results = []
    for s, q in zip(states, questions):
        cleaned, _ = clean_completion(s.completion)
        cleaned = _drop_partial_tail(cleaned)
        attempts, feedbacks = formats.split_attempts(cleaned)
        attempts = [a for a in attempts if a]
        res = SelfImproveResult(
            prompt=s.prompt,
            completion=cleaned,
            attempts=attempts,
            feedbacks=feedbacks[: len(attempts)],
            num_revisions=max(len(attempts) - 1, 0),
            calls=s.calls,
            stop=s.stop or "max_calls",
            tokens=s.tokens,
        )
        res.answer = task.parse_answer(res.last_attempt) if res.attempts else None
        results.append(res)
    return results


def _drop_partial_tail(text: str) -> str:
    """Remove an unfinished header and an empty trailing `Feedback:` / `Updated Answer:` re-prompt."""
    lines = text.split("\n")
    while lines and lines[-1].strip() and (
        _line_type(lines[-1]) in (None, "updated") or lines[-1].strip() == FEEDBACK_TAG
    ):
        lines.pop()
    return "\n".join(lines)


def _step(s: _State, g, info: str, last_call: bool) -> None:
    s.calls += 1
    s.tokens += int(getattr(g, "num_tokens", 0) or 0)
    new_text = g.text
    before = s.completion
    s.completion += new_text
    cleaned, cut = clean_completion(s.completion)
    s.completion = cleaned
    ended = cut or g.stop_reason in ("eos", "stop")
    lines = [ln for ln in cleaned.split("\n") if ln.strip()]
    last = lines[-1].strip() if lines else ""
    if last and _is_correct_feedback(last):
        s.stop = "correct"
        return
    if len(cleaned.rstrip()) <= len(before.rstrip()):
        s.stop = "no_progress"
        return
    attempts, _ = formats.split_attempts(cleaned)
    if attempts and _repeats(attempts[-1].split("\n")):
        s.stop = "repeating"
        return
    if last_call:
        s.stop = "max_calls"
        return
    if not ended:  # hit max_new_tokens: continue from the text so far
        s.call_prompt = s.call_prompt + new_text
        return
    kind = _line_type(last) if last else None
    last_att = attempts[-1] if attempts else ""
    if kind == "feedback" and last_att:
        header = formats.answer_header(info, updated=True)
        fb = last[len(FEEDBACK_TAG) :].strip()
        s.call_prompt = f"{s.prompt}\n{last_att}\n{FEEDBACK_TAG} {fb}\n{header}"
        s.completion = cleaned.rstrip("\n") + f"\n{header}"
    elif kind == "final" and last_att:
        s.call_prompt = f"{s.prompt}\n{last_att}\n{FEEDBACK_TAG}"
        s.completion = cleaned.rstrip("\n") + f"\n{FEEDBACK_TAG}"
    else:
        s.stop = "incomplete"
