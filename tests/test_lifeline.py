"""A stage's kernel dies with the dvc process that started it (tripost.lifeline, loaded by the `tripost`
kernel): real dvc, real papermill, real SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tripost.lifeline import ancestors

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")

NOTEBOOK_CELL = """\
import os, time
open("pids.txt.tmp", "w").write(f"{os.getpid()} {os.getppid()}")
os.replace("pids.txt.tmp", "pids.txt")
time.sleep(45)
open("done.txt", "w").write("written after the kill")
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _wait(cond, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


def test_ancestors_without_dvc_is_the_parent_only():
    chain = ancestors()
    assert [pid for pid, _ in chain] == [os.getppid()]


def test_killing_dvc_kills_papermill_and_the_kernel(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(NOTEBOOK_CELL)]
    nbformat.write(nb, tmp_path / "slow.ipynb")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  slow:\n    cmd: papermill slow.ipynb out.ipynb -k tripost --no-progress-bar\n"
        "    deps: [slow.ipynb]\n    outs: [done.txt]\n")
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True, env=env)
    dvc = subprocess.Popen(["dvc", "repro"], cwd=tmp_path, env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids = tmp_path / "pids.txt"
    try:
        assert _wait(pids.exists, 120), "the stage's kernel never started"
        kernel, papermill = map(int, pids.read_text().split())
        assert not _gone(kernel) and not _gone(papermill)
        os.kill(dvc.pid, signal.SIGKILL)
        dvc.wait()
        assert _wait(lambda: _gone(kernel) and _gone(papermill), 15), "the kernel outlived dvc"
        time.sleep(1)
        assert not (tmp_path / "done.txt").exists()
    finally:
        try:
            os.killpg(dvc.pid, signal.SIGKILL)  # whatever is left of the stage (papermill keeps dvc's group)
        except OSError:
            pass
