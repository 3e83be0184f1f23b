"""Self-improving inference (docs/method.md §5.1): the re-prompting loop on a scripted model, then a real tiny model."""

from __future__ import annotations

import pytest

from _fake_task import AddTask, Gen
from _tiny import repo_params
from tripost.inference import clean_completion
from tripost.inference import self_improve as _self_improve

EVAL = repo_params()["evaluation"]  # params.yaml's test-time settings, as the evaluate stage passes them


def self_improve(task, questions, *args, **kw):
    settings = {k: EVAL[k] for k in ("max_generation_calls", "max_new_tokens", "batch_size", "seed")}
    return _self_improve(task, questions, *args, **{**settings, **kw})

Q1, Q2, Q3, Q4 = "1 + 2 + 3 =", "2 + 2 + 2 =", "5 + -1 + 1 =", "4 + 4 + 1 ="
A_WRONG = "(1) Let's calculate 1 + 2 = 4.\n(2) Let's calculate 4 + 3 = 7.\n(Final response) So the answer is 7."
A_RIGHT = "(1) Let's calculate 1 + 2 = 3.\n(2) Let's calculate 3 + 3 = 6.\n(Final response) So the answer is 6."
FB_ERR = 'In step (1) the part " 1 + 2 = 4 " is incorrect. This is because 1 + 2 is not equal to 4.'
FB_OK = "Step (1) to (2) are correct. The final response is also correct."
UPD = "Updated Answer: Let's think step by step."


class Scripted:
    """generate_fn that replays, per question, a list of (text, stop_reason) and records the prompts."""

    def __init__(self, scripts: dict[str, list[tuple[str, str]]]):
        self.scripts = {q: list(v) for q, v in scripts.items()}
        self.prompts: dict[str, list[str]] = {q: [] for q in scripts}
        self.batches: list[int] = []

    def __call__(self, model, tokenizer, prompts, *, max_new_tokens, do_sample=False, temperature=1.0, top_p=1.0,
                 stop=None, batch_size=32, seed=0, progress=False):
        self.batches.append(len(prompts))
        out = []
        for p in prompts:
            q = p.split("\n")[0][3:]
            self.prompts[q].append(p)
            text, reason = self.scripts[q].pop(0)
            out.append(Gen(text, reason, len(text)))
        return out


@pytest.fixture
def task():
    return AddTask()


def test_correct_feedback_in_the_first_call_stops(task):
    gen = Scripted({Q1: [(f"\n{A_RIGHT}\nFeedback: {FB_OK}", "eos")]})
    [r] = self_improve(task, [Q1], generate_fn=gen)
    assert r.stop == "correct" and r.calls == 1 and r.num_revisions == 0
    assert r.attempts == [A_RIGHT] and r.feedbacks == [FB_OK] and r.answer == "6"
    assert r.text == f"Q: {Q1}\nAnswer: Let's think step by step.\n{A_RIGHT}\nFeedback: {FB_OK}"


def test_revision_then_reprompt_for_feedback(task):
    """Call 1 = attempt, error feedback, revision, EOS (improvement examples end there); call 2 is
    re-prompted with the last attempt and 'Feedback:'; the model says correct."""
    gen = Scripted({Q1: [(f"\n{A_WRONG}\nFeedback: {FB_ERR}\n{UPD}\n{A_RIGHT}", "eos"), (f" {FB_OK}", "eos")]})
    [r] = self_improve(task, [Q1], generate_fn=gen)
    assert gen.prompts[Q1][1] == f"Q: {Q1}\nAnswer: Let's think step by step.\n{A_RIGHT}\nFeedback:"
    assert r.stop == "correct" and r.calls == 2 and r.num_revisions == 1
    assert r.attempts == [A_WRONG, A_RIGHT] and r.feedbacks == [FB_ERR, FB_OK] and r.answer == "6"


def test_error_feedback_reprompts_updated_answer_and_at_most_three_calls(task):
    """A call ending with an error feedback is re-prompted with 'Updated Answer: ...' (the intended
    branch, not the original's bug); after 3 calls the answer is the last attempt's."""
    gen = Scripted({Q1: [
        (f"\n{A_WRONG}\nFeedback: {FB_ERR}", "eos"),
        (f"\n{A_WRONG.replace('= 7', '= 8').replace('is 7', 'is 8')}", "eos"),
        (" Step (1) to (2) are wrong.", "eos"),
        ("never asked", "eos"),
    ]})
    [r] = self_improve(task, [Q1], generate_fn=gen, max_generation_calls=3)
    assert gen.prompts[Q1][1] == f"Q: {Q1}\nAnswer: Let's think step by step.\n{A_WRONG}\nFeedback: {FB_ERR}\n{UPD}"
    assert gen.prompts[Q1][2].endswith("is 8.\nFeedback:")
    assert r.calls == 3 and r.stop == "max_calls" and len(gen.prompts[Q1]) == 3
    assert r.num_revisions == 1 and r.answer == "8"  # the last attempt's answer, whatever its feedback says
    assert r.feedbacks == [FB_ERR, "Step (1) to (2) are wrong."]


def test_info_is_kept_in_reprompts(task):
    task.info = "Add left to right."
    gen = Scripted({Q1: [(f"\n{A_WRONG}\nFeedback: {FB_ERR}", "eos"), (f"\n{A_RIGHT}", "eos"), (f" {FB_OK}", "eos")]})
    [r] = self_improve(task, [Q1], generate_fn=gen)
    assert gen.prompts[Q1][1].endswith(f"{UPD} Add left to right.")
    assert gen.prompts[Q1][2].startswith(f"Q: {Q1}\nAnswer: Let's think step by step. Add left to right.\n")
    assert r.stop == "correct" and r.answer == "6"


def test_length_truncation_continues_from_the_text(task):
    gen = Scripted({Q1: [("\n(1) Let's calculate 1 + 2 = 3.\n(2) Let's calc", "length"),
                         (f"ulate 3 + 3 = 6.\n(Final response) So the answer is 6.\nFeedback: {FB_OK}", "eos")]})
    [r] = self_improve(task, [Q1], generate_fn=gen)
    assert gen.prompts[Q1][1] == f"Q: {Q1}\nAnswer: Let's think step by step.\n(1) Let's calculate 1 + 2 = 3.\n(2) Let's calc"
    assert r.stop == "correct" and r.attempts == [A_RIGHT]


def test_junk_is_cut_and_no_progress_stops(task):
    gen = Scripted({Q1: [(f"\n{A_RIGHT}\nthe model rambles on", "length"), ("", "eos")]})
    [r] = self_improve(task, [Q1], generate_fn=gen)
    assert r.attempts == [A_RIGHT] and r.stop == "no_progress" and r.calls == 2
    assert gen.prompts[Q1][1].endswith(f"{A_RIGHT}\nFeedback:")


def test_batched_rounds_shrink(task):
    gen = Scripted({
        Q1: [(f"\n{A_RIGHT}\nFeedback: {FB_OK}", "eos")],
        Q2: [("\n(1) Let's calculate 2 + 2 = 4.\n(2) Let's calculate 4 + 2 = 6.\n(Final response) So the answer is 6.",
              "eos"), (" Step (1) to (2) are correct. The final response is also correct.", "eos")],
        Q3: [("\n(1) Let's calculate 5 + -1 = 3.\n(Final response) So the answer is 3.\nFeedback: "
              'In step (1) the part " 5 + -1 = 3 " is incorrect. This is because it is 4.', "eos"),
             ("\n(1) Let's calculate 5 + -1 = 4.\n(2) Let's calculate 4 + 1 = 5.\n(Final response) So the answer is 5.",
              "eos"), (" Step (1) to (2) are correct. The final response is also correct.", "eos")],
        Q4: [("\n(1) Let's calculate 4 + 4 = 8.\nQ: what", "eos")],
    })
    rs = self_improve(task, [Q1, Q2, Q3, Q4], generate_fn=gen, batch_size=2)
    assert gen.batches == [4, 2, 1]
    assert [r.calls for r in rs] == [1, 2, 3]+[1]
    assert [r.answer for r in rs] == ["6", "6", "5", None]
    assert [r.num_revisions for r in rs] == [0, 0, 1, 0]
    assert rs[3].stop == "incomplete" and rs[3].attempts == ["(1) Let's calculate 4 + 4 = 8."]
    assert rs[2].stop == "correct" and rs[2].feedbacks[-1].endswith("also correct.")


def test_clean_completion_rules():
    assert clean_completion("\n(1) a\n(1) a again\n(2) b") == ("\n(1) a", True)
    assert clean_completion("\n(1) a\n(Final response) x\n(1) restart") == ("\n(1) a\n(Final response) x", True)
    assert clean_completion("\n(1) a\n(Fin") == ("\n(1) a\n(Fin", False)  # unfinished header kept for continuation
    assert clean_completion("\n(1) a\nFeedback: x\nFeedback: y") == ("\n(1) a\nFeedback: x", True)


def test_real_tiny_model_runs_the_loop(tmp_path):
    """Real generation path: an untrained tiny LLaMA; results are well-formed and within the call cap."""
    pytest.importorskip("torch")
    from _tiny import TINY
    from tripost.modeling import build_tiny_llama, build_tokenizer

    task = AddTask()
    texts = [task.prompt(q) + "\n" + task.solve(q) + f"\nFeedback: {FB_OK}\n{UPD}" for q in (Q1, Q2, Q3, Q4)]
    tok = build_tokenizer(texts * 5, vocab_size=512)
    model = build_tiny_llama(TINY, tok).eval()
    rs = self_improve(task, [Q1, Q2, Q3], model, tok, max_generation_calls=3, max_new_tokens=12, batch_size=4)
    assert len(rs) == 3
    for r in rs:
        assert 1 <= r.calls <= 3 and r.text.startswith(r.prompt) and r.num_revisions == max(len(r.attempts) - 1, 0)


def test_unanswered_reprompts_are_not_left_in_the_text(task):
    gen = Scripted({Q1: [(f"\n{A_RIGHT}", "eos"), ("", "eos")],
                    Q2: [(f"\n{A_WRONG}\nFeedback: {FB_ERR}", "eos"), ("", "eos")]})
    r1, r2 = self_improve(task, [Q1, Q2], generate_fn=gen)
    assert r1.completion == f"\n{A_RIGHT}" and r1.feedbacks == [] and r1.stop == "no_progress"
    assert r2.completion == f"\n{A_WRONG}\nFeedback: {FB_ERR}" and r2.attempts == [A_WRONG]
