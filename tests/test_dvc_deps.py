"""dvc.yaml declares every source file a stage really runs: derived from the imports of the stage's
notebook (or `python -m` module), followed transitively through src/tripost, including imports inside
functions. The task modules are loaded by name (`get_task`), so a stage that reaches `tripost.tasks`
must declare its own task's module (`src/tripost/tasks/${item}.py` or `${item.task}`) - and only
that one, so editing one task reruns only that task's stages."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
TASK_MODULE = re.compile(r"^src/tripost/tasks/\$\{item(\.task)?\}\.py$")


def _module_file(module: str) -> Path | None:
    p = SRC.joinpath(*module.split("."))
    if (p / "__init__.py").exists():
        return p / "__init__.py"
    return p.with_suffix(".py") if p.with_suffix(".py").exists() else None


def _imports(code: str) -> set[str]:
    """Every tripost module `code` imports anywhere (parents included: importing a.b runs a)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("tripost")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tripost"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}")}
    return {".".join(m.split(".")[:i]) for m in found for i in range(1, len(m.split(".")) + 1)}


def _notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    lines = [ln for c in cells if c["cell_type"] == "code" for ln in "".join(c["source"]).splitlines()]
    return "\n".join(ln for ln in lines if not ln.lstrip().startswith(("%", "!")))


def required_sources(cmd: str) -> set[str]:
    """The src/ files a stage command runs (task modules as the `${item}` placeholder)."""
    todo: set[str] = set()
    for nb in re.findall(r"(?<![\w/])(notebooks/\S+\.ipynb)", cmd):
        todo |= _imports(_notebook_code(ROOT / nb))
    todo |= set(re.findall(r"python -m (tripost[\w.]*)", cmd))
    seen: set[str] = set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        if m == "tripost.tasks":  # get_task imports the stage's own task module by name
            todo.add("tripost.tasks.TASK")
            continue
        f = _module_file(m) if not m.endswith(".TASK") else SRC / "tripost/tasks/word_sorting.py"
        if f is not None:
            todo |= _imports(f.read_text()) - seen
    files = set()
    for m in seen:
        if m == "tripost.tasks.TASK":
            files.add("src/tripost/tasks/${item}.py")
        elif m.startswith("tripost.tasks.") and m.split(".")[-1] not in ("base", "bigbench"):
            continue  # another task's module, reached only through the placeholder's imports
        elif (f := _module_file(m)) is not None:
            files.add(str(f.relative_to(ROOT)))
    return files


def missing_deps(dvc: dict) -> dict[str, set[str]]:
    """stage -> the source files it runs but does not declare."""
    out = {}
    for name, stage in dvc["stages"].items():
        body = stage.get("do", stage)
        declared = set(body.get("deps", []))
        need = required_sources(body["cmd"])
        # a declared folder covers every file in it (the report spans every task: it declares the tasks folder)
        gaps = {f for f in need if f not in declared
                and not (TASK_MODULE.match(f) and any(TASK_MODULE.match(d) for d in declared))
                and not any((ROOT / d).is_dir() and f.replace("${item}", "x").startswith(d.rstrip("/") + "/")
                            for d in declared)}
        if gaps:
            out[name] = gaps
    return out


def test_every_stage_declares_the_sources_it_runs():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert missing_deps(dvc) == {}


@pytest.mark.parametrize("stage, dep", [("evaluate", "src/tripost/tasks/${item.task}.py"),
                                        ("process", "src/tripost/interaction.py"),
                                        ("train", "src/tripost/training.py")])
def test_the_check_fails_when_a_real_dependency_is_removed(stage, dep):
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    body = dvc["stages"][stage].get("do", dvc["stages"][stage])
    body["deps"].remove(dep)
    assert stage in missing_deps(dvc)


def test_a_stage_declares_only_its_own_task_module():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    for name, stage in dvc["stages"].items():
        deps = stage.get("do", stage).get("deps", [])
        assert not [d for d in deps if d.startswith("src/tripost/tasks/") and "${" not in d
                    and not d.endswith(("base.py", "bigbench.py", "__init__.py"))], name


def test_editing_one_task_module_reaches_exactly_that_tasks_stages():
    """As DVC itself resolves dvc.yaml: the stages that depend on `tasks/<task>.py` (so that editing its
    `parse_answer` reruns them) are that task's stages, every one of its evaluations among them, and the
    report (which spans every task); no stage of another task."""
    import os

    from dvc.repo import Repo

    repo = Repo(str(ROOT))
    stages = list(repo.index.stages)
    for task in yaml.safe_load((ROOT / "params.yaml").read_text())["tasks"]:
        module = str(SRC / "tripost" / "tasks" / f"{task}.py")
        reached = {st.addressing for st in stages
                   if any(d.fs_path == module or (os.path.isdir(d.fs_path) and module.startswith(d.fs_path.rstrip("/") + "/"))
                          for d in st.deps)}
        own = {st.addressing for st in stages if "@" in st.addressing
               and st.addressing.split("@", 1)[1].split("-")[0] == task}
        assert reached == own | {"report"}, task
        assert {a for a in reached if a.startswith("evaluate@")} == {a for a in own if a.startswith("evaluate@")} != set()


def test_a_run_seed_reruns_the_chain_after_m0_and_never_m0():
    """As DVC resolves dvc.yaml: `dvc exp run -S seed=N` (the seeds of a multi-seed result) reaches every
    stage that samples or trains after M0 — interaction, processing, iterations, both baselines — and
    never the data or M0 itself, so every seed starts from the same M0."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    def declares_seed(stage) -> bool:
        return any(isinstance(d, ParamsDependency) and "seed" in d.params for d in stage.deps)

    stages = list(Repo(str(ROOT)).index.stages)
    kinds = {st.addressing.split("@")[0] for st in stages if declares_seed(st)}
    assert {"interact", "process", "train", "si_demo_data", "lmsi_data", "train_baseline"} <= kinds
    assert not kinds & {"prepare", "sft", "sft_summary"}, kinds
