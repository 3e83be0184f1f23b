"""A stage's notebook kernel dies with the process that started the stage.

`dvc repro` runs a stage as `sh -c "papermill ..."`; papermill starts the notebook's kernel in a session of
its own. Kill dvc with SIGKILL (or lose the terminal) and nothing tells papermill or the kernel: they run
on, writing the stage's outputs, while a rerun starts writing the same files. The `tripost` Jupyter kernel
(installed by `make setup` through `python -m tripost.lifeline install-kernel`) loads this module as an
IPython extension; it watches the kernel's ancestors up to the `dvc` process that started the stage (or
only its direct parent when no dvc is among them: papermill run by hand, a Jupyter server) and, as soon
as one of them is gone, kills the surviving ones below it (papermill, the shell) and then the kernel
itself, with SIGKILL: no cleanup handler runs, so nothing more is written. What was written stays as it
was, and the stage's outputs are already crash-safe (atomic writes, resumable interaction, complete
checkpoints only).

Linux only (it reads /proc); elsewhere `watch` does nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

POLL_S = 0.5


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    if fields[0] in ("Z", "X"):  # a zombie is gone already
        return None
    return int(fields[1]), int(fields[19])


def _is_dvc(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    names = [os.path.basename(a.decode(errors="replace")) for a in argv[:3]]
    return "dvc" in names or any(names[i] == "-m" and names[i + 1] == "dvc" for i in range(len(names) - 1))


def ancestors(pid: int | None = None) -> list[tuple[int, int]]:
    """The processes to watch, nearest first, as (pid, start time): from the parent of `pid` up to the
    nearest dvc process, or only the parent when no dvc is among the ancestors."""
    pid = os.getpid() if pid is None else pid
    me = _stat(pid)
    if me is None:
        return []
    chain, ppid = [], me[0]
    while ppid > 1:
        st = _stat(ppid)
        if st is None:
            break
        chain.append((ppid, st[1]))
        if _is_dvc(ppid):
            return chain
        ppid = st[0]
    return chain[:1]


def _alive(pid: int, start: int) -> bool:
    st = _stat(pid)
    return st is not None and st[1] == start  # a reused pid has another start time


def watch(poll_s: float = POLL_S) -> threading.Thread | None:
    """Start the watcher thread (a daemon); None where /proc is missing or there is nothing to watch."""
    if not Path("/proc/self/stat").exists():
        return None
    chain = ancestors()
    if not chain:
        return None

    def run() -> None:
        while True:
            for i, (pid, start) in enumerate(chain):
                if not _alive(pid, start):
                    for below, below_start in chain[:i]:
                        if _alive(below, below_start):
                            try:
                                os.kill(below, signal.SIGKILL)
                            except OSError:
                                pass
                    os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(poll_s)

    t = threading.Thread(target=run, name="tripost-lifeline", daemon=True)
    t.start()
    return t


def load_ipython_extension(ipython) -> None:  # noqa: ARG001 - the IPython extension hook
    watch()


def install_kernel(prefix: str, name: str, display_name: str) -> Path:
    """Install the Jupyter kernel `name` for this Python under `prefix`, loading this module at start."""
    from ipykernel.kernelspec import install

    path = Path(install(kernel_name=name, display_name=display_name, prefix=prefix))
    spec_file = path / "kernel.json"
    spec = json.loads(spec_file.read_text())
    spec["argv"].append("--IPKernelApp.extensions=tripost.lifeline")
    spec_file.write_text(json.dumps(spec, indent=1))
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tripost.lifeline", description="Install the tripost Jupyter kernel.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("install-kernel")
    k.add_argument("--prefix", required=True)
    k.add_argument("--name", default="tripost")
    k.add_argument("--display-name", default="TriPosT (.venv)")
    args = ap.parse_args(argv)
    print(install_kernel(args.prefix, args.name, args.display_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
