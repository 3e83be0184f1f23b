"""A scratch copy of the repository's pipeline (notebooks, src, dvc.yaml, params.yaml) with a profile applied."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tripost.profiles import apply_profile

ROOT = Path(__file__).resolve().parent.parent


def pipeline_workspace(repo: Path, profile: str) -> Path:
    """Copy what `dvc repro` needs into `repo`, apply `profile` to its params.yaml, `git init` it."""
    repo = Path(repo)
    for name in ("notebooks", "profiles", "src"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    (repo / ".dvc").mkdir()
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    apply_profile(profile, repo / "params.yaml")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    return repo
