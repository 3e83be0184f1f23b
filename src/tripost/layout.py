"""Where the pipeline keeps each artefact: the paths `dvc.yaml` names, in one place.

Every notebook's empty path parameters default to these, so a notebook opened in Jupyter after
`make repro` and run top to bottom reads and writes exactly what its DVC stage does.

    data/<task>/{train,val,test}.jsonl                 prepare
    models/<task>/<model>                              sft (model "ft"), train (tripost_t<t>, ...), train_baseline
    interactions/<task>/<model>/trajectories.jsonl     interact: the trajectories of <model>'s interaction
    iterations/<task>/<name>/train.jsonl               process (an iteration's data), si_demo_data, lmsi_data
    reports/eval/<task>/<method>/metrics.json          evaluate
"""

from __future__ import annotations

M0 = "ft"  # the SFT model, the paper's "+ft"


def data_dir(task: str) -> str:
    return f"data/{task}"


def model_dir(task: str, model: str) -> str:
    return f"models/{task}/{model}"


def interaction_dir(task: str, model: str) -> str:
    return f"interactions/{task}/{model}"


def iteration_dir(task: str, name: str) -> str:
    return f"iterations/{task}/{name}"


def eval_dir(task: str, method: str) -> str:
    return f"reports/eval/{task}/{method}"


def iteration_name(t: int, rebalance: bool = True) -> str:
    """The model TriPosT iteration t trains: tripost_t<t>, or tripost_auto_t<t> without rebalancing."""
    return f"tripost_t{t}" if rebalance else f"tripost_auto_t{t}"


def previous_model(t: int, rebalance: bool = True) -> str:
    """The model iteration t continues from and whose interaction it processes: M0 at t = 1."""
    return M0 if int(t) == 1 else iteration_name(int(t) - 1, rebalance)


def continues_from(name: str) -> str:
    """The model a trained model starts from: the previous iteration for tripost[_auto]_t<t>, else M0
    (both baselines train once from M0)."""
    import re

    m = re.fullmatch(r"tripost(_auto)?_t(\d+)", name)
    return previous_model(int(m.group(2)), rebalance=not m.group(1)) if m else M0
