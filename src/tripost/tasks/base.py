"""The Task protocol every world (question generator, solver, parser, scripted FBK and IMP) follows."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import ClassVar

from tripost import formats
from tripost.formats import Feedback

SPLITS = ("seen", "unseen")


@dataclass(frozen=True)
class Example:
    question: str  # without the leading "Q: "; multiple-choice tasks include "\nOptions:\n(A) ..."
    answer: str  # canonical gold answer string
    rationale: str  # gold rationale in the paper's step format
    bucket: str  # subtask label
    split: str  # "seen" or "unseen"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Example":
        return cls(**{k: d[k] for k in ("question", "answer", "rationale", "bucket", "split")})


class Task:
    """Base class. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]  # the registry key: the module is tripost/tasks/<name>.py
    label: ClassVar[str] = ""  # short name in tables and figures (e.g. "MSA"); "" = the name
    info: ClassVar[str] = ""  # text after "Let's think step by step." in every prompt
    default_buckets: ClassVar[dict[str, list[str]]]  # {"seen": [...], "unseen": [...]}
    shuffle_bigbench_choices: ClassVar[bool] = False  # shuffle task.json options (seeded) on load

    # -- generation -------------------------------------------------------------------------
    def generate(self, n: int, split: str, seed: int, buckets: list[str] | None = None) -> list[Example]:
        """n examples of `split`, balanced over its buckets, deterministic for `seed`."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        buckets = list(buckets if buckets is not None else self.default_buckets[split])
        if not buckets:
            raise ValueError(f"no buckets for split {split!r}")
        for b in buckets:
            self.check_bucket(b)
        rng = random.Random(f"{self.name}/{split}/{seed}")
        out = []
        for i in range(n):
            bucket = buckets[i % len(buckets)]
            question, answer = self.sample(bucket, rng)
            out.append(Example(question, answer, self.solve(question), bucket, split))
        return out

    def check_bucket(self, bucket: str) -> None:
        """Raise ValueError if `bucket` is not a label this task can generate."""
        raise NotImplementedError

    def sample(self, bucket: str, rng: random.Random) -> tuple[str, str]:
        """One random (question, gold answer) of `bucket`."""
        raise NotImplementedError

    def bucket_of(self, question: str) -> str:
        """The bucket of any question (used by loaders of real BIG-Bench files)."""
        raise NotImplementedError

    def split_of(self, bucket: str) -> str:
        return "seen" if bucket in self.default_buckets["seen"] else "unseen"

    # -- solving and checking ---------------------------------------------------------------
    def solve(self, question: str) -> str:
        """Gold rationale for any question in BIG-Bench's format; ValueError if it cannot."""
        raise NotImplementedError

    def parse_answer(self, text: str) -> str | None:
        """The last attempt's answer in a model output, or None. Never raises."""
        raise NotImplementedError

    def is_correct(self, pred: str | None, gold: str) -> bool:
        return pred is not None and pred == gold

    def feedback(self, question: str, attempt: str) -> Feedback:
        """Scripted FBK: the first wrong step of `attempt` (step lines only), or 'all correct'."""
        raise NotImplementedError

    def has_valid_content(self, question: str, attempt: str) -> bool:
        """Filter 8 of the interaction (docs/method.md §2.4): whether the attempt's final answer is backed
        by its steps. The default accepts every attempt: the scripted FBK already checks the final
        response against the steps. Date understanding overrides it."""
        return True

    @staticmethod
    def attempt_steps(attempt: str) -> list:
        """The step lines of a model's attempt in order, any other line skipped; ValueError when there is
        none (the interaction then drops the attempt, the original's "[ERROR]")."""
        steps = [s for s in map(formats.parse_step, str(attempt).splitlines()) if s is not None]
        if not steps:
            raise ValueError("the attempt has no step lines '(1) ...'")
        return steps

    @staticmethod
    def wrong_step(shown: list, label: str, segment: str, reason: str) -> Feedback:
        """FBK's verdict "step `label` is wrong": `shown` are the steps the sentence lists as correct before
        it (and the wrong step). The one place the reason is normalised (no trailing period)."""
        text = formats.error_feedback_text(shown, label, segment, reason)
        return Feedback(False, label, segment, reason.rstrip("."), text)

    @staticmethod
    def all_correct(steps: list) -> Feedback:
        """FBK's verdict "every step is correct"."""
        return Feedback(True, None, None, None, formats.correct_feedback_text(steps))

    def improve(self, question: str, attempt: str, feedback: Feedback) -> str:
        """Scripted IMP: keep the steps before the first wrong one verbatim (`rewrite_from`), rewrite the
        rest correctly. A "correct" verdict returns the attempt's steps."""
        raise NotImplementedError

    def rewrite_from(self, question: str, attempt: str, steps: list, feedback: Feedback) -> int:
        """The IMP rule, one for every task: the index in `steps` (the attempt's step lines) where the
        scripted IMP starts rewriting. That is the step FBK names (of equal labels, the one whose line
        holds FBK's segment) or, when the task's own checker finds an earlier error (an LLM's feedback
        can point late), that earlier step: the scripted IMP's rewrite is always a correct trajectory.
        A step the attempt does not have (a missing step or final response) is its end."""
        labels = [s.label for s in steps]
        if feedback.is_correct:
            cut = len(steps)
        else:
            # a step the attempt lacks (a missing final response, a missing step) comes after its steps
            found = [j for j, s in enumerate(steps) if s.label == feedback.step] or [len(steps)]
            cut = next((j for j in found if j < len(steps) and feedback.segment
                        and feedback.segment in steps[j].line), found[0])
        try:
            own = self.feedback(question, attempt)
        except ValueError:
            return cut
        if not own.is_correct and own.step in labels:
            cut = min(cut, labels.index(own.step))
        return cut

    def corrupt(self, question: str, rationale: str, rng: random.Random) -> tuple[str, str]:
        """Plant one realistic mistake in a correct rationale (a wrong number, letter, date, order,
        option...) and carry it forward as a model would. Returns (attempt, label of the wrong step).
        Used by tests and by the "+ft SI. demo" baseline."""
        raise NotImplementedError

    # -- real BIG-Bench data ----------------------------------------------------------------
    def from_bigbench(self, input: str, target: str, choices: list[str] | None = None) -> Example:
        """One BIG-Bench / BIG-Bench-Hard item as an Example. `choices` (option texts, in order) is
        given for multiple-choice items of BIG-Bench task.json files; `target` is then the right
        option's text. Raises ValueError if the item cannot be read or solved."""
        raise NotImplementedError

    # -- text helpers shared by all tasks ---------------------------------------------------
    def prompt(self, question: str) -> str:
        return formats.prompt(question, self.info)

    def gold_text(self, example: Example) -> str:
        """SFT text: prompt + gold rationale (docs/method.md §1.3)."""
        return f"{self.prompt(example.question)}\n{example.rationale}"
