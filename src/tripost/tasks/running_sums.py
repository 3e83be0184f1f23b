"""Running sums: the smallest complete task, and the worked example of docs/adding-a-task.md.

Not one of the paper's four tasks. Question `3 + 4 + -5 =`; gold rationale

    (1) Let's calculate 3 + 4 = 7.
    (2) Let's calculate 7 + -5 = 2.
    (Final response) So the answer is 2.

A task is one module `tripost/tasks/<name>.py` with one `Task` subclass whose `name` is `<name>`: the
registry (`tripost.tasks.get_task`) finds it there. It writes its world (questions in buckets, the gold
rationale) and its scripted FBK and IMP in the step format of `tripost.formats`; everything else (data
files, SFT, interaction, processing, training, evaluation, the report) is shared.
"""

from __future__ import annotations

import random
import re

from tripost import formats
from tripost.formats import Feedback
from tripost.tasks.base import Task

_STEP = re.compile(r"^Let's calculate (-?\d+) \+ (-?\d+) = (-?\d+)\.$")
_FINAL = re.compile(r"the answer is (-?\d+)\.")


def numbers(question: str) -> list[int]:
    return [int(x) for x in re.findall(r"-?\d+", question)]


class RunningSums(Task):
    name = "running_sums"
    label = "RS"
    info = ""  # no task description after "Let's think step by step."
    # a bucket is the count of numbers; the unseen split is longer than the seen one, as in the paper
    default_buckets = {"seen": ["n3", "n4"], "unseen": ["n5"]}

    # -- the world ------------------------------------------------------------------------------
    def check_bucket(self, bucket: str) -> None:
        if bucket not in ("n3", "n4", "n5"):
            raise ValueError(f"running_sums: unknown bucket {bucket!r} (n3, n4, n5)")

    def sample(self, bucket: str, rng: random.Random) -> tuple[str, str]:
        nums = [rng.randint(-9, 9) for _ in range(int(bucket[1:]))]
        return " + ".join(str(n) for n in nums) + " =", str(sum(nums))

    def bucket_of(self, question: str) -> str:
        return f"n{len(numbers(question))}"

    def solve(self, question: str) -> str:
        nums = numbers(question)
        return formats.join_steps(self._continue(nums, nums[0], 1))

    def parse_answer(self, text: str) -> str | None:
        attempt = formats.last_attempt(text) if ("Feedback:" in text or "Q:" in text) else text
        lines = [ln for ln in attempt.strip().splitlines() if ln.strip()]
        if not lines or not lines[-1].startswith(f"({formats.FINAL_LABEL})"):
            return None
        found = _FINAL.findall(lines[-1])
        return found[0] if len(found) == 1 else None

    # -- scripted FBK: the first wrong step -----------------------------------------------------
    def feedback(self, question: str, attempt: str) -> Feedback:
        steps = self.attempt_steps(attempt)  # ValueError when there are no step lines
        nums = numbers(question)
        total = nums[0]
        body = [s for s in steps if s.label != formats.FINAL_LABEL]
        for i, s in enumerate(body):
            m = _STEP.match(s.text)
            if not m or i + 1 >= len(nums):
                return self.wrong_step(steps, s.label, s.text, "this step is not needed")
            a, b, c = (int(x) for x in m.groups())
            if a != total or b != nums[i + 1]:
                return self.wrong_step(steps, s.label, f"{a} + {b}",
                                       f"the running total is {total} and the next number is {nums[i + 1]}")
            if c != a + b:
                return self.wrong_step(steps, s.label, f"{a} + {b} = {c}",
                                       f"there is a calculation error, since {a} + {b} is not equal to {c}")
            total = c
        final = steps[-1]
        if final.label != formats.FINAL_LABEL:
            return self.wrong_step(steps, final.label, final.text, "the final response is missing")
        if len(body) != len(nums) - 1:
            return self.wrong_step(steps, final.label, final.text, "not all the numbers were added")
        found = _FINAL.findall(final.text)
        if len(found) != 1 or int(found[0]) != total:
            segment = f"the answer is {found[0]}." if found else final.text
            return self.wrong_step(steps, final.label, segment,
                                   f"this answer is inconsistent with the result in step ({body[-1].label})")
        return self.all_correct(steps)

    # -- scripted IMP: keep the steps before the first wrong one (the IMP rule), rewrite the rest --
    def improve(self, question: str, attempt: str, feedback: Feedback) -> str:
        steps = self.attempt_steps(attempt)
        if feedback.is_correct:
            return formats.join_steps(steps)
        keep = steps[: self.rewrite_from(question, attempt, steps, feedback)]
        nums = numbers(question)
        total = int(_STEP.match(keep[-1].text).group(3)) if keep else nums[0]
        return formats.join_steps(keep + self._continue(nums, total, len(keep) + 1))

    def corrupt(self, question: str, rationale: str, rng: random.Random) -> tuple[str, str]:
        """One addition off by 1-3, carried forward (used by the "+ft SI. demo" baseline and tests)."""
        nums = numbers(question)
        wrong = rng.randint(1, len(nums) - 1)
        total, steps = nums[0], []
        for i in range(1, len(nums)):
            new = total + nums[i] + (rng.choice([-3, -2, -1, 1, 2, 3]) if i == wrong else 0)
            steps.append(formats.Step(str(i), f"Let's calculate {total} + {nums[i]} = {new}."))
            total = new
        steps.append(formats.Step(formats.FINAL_LABEL, f"So the answer is {total}."))
        return formats.join_steps(steps), str(wrong)

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _continue(nums: list[int], total: int, start: int) -> list[formats.Step]:
        """Steps (start), (start + 1), ... adding nums[start:] to `total`, then the final response."""
        steps = []
        for i in range(start, len(nums)):
            steps.append(formats.Step(str(i), f"Let's calculate {total} + {nums[i]} = {total + nums[i]}."))
            total += nums[i]
        return steps + [formats.Step(formats.FINAL_LABEL, f"So the answer is {total}.")]
