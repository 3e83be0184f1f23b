"""Small I/O helpers: nothing is lost — outputs are written atomically, streams are fsynced."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_path(path) as tmp, tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file. A torn last line (a killed writer) is ignored; any other bad line raises."""
    rows = []
    lines = Path(path).read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}:{i + 1}: not JSON: {e}") from e
    return rows


class JsonlAppender:
    """Append rows to a JSONL file, flushed and fsynced per row, so a kill loses at most one row.

    On open, a torn trailing line left by a killed writer is cut off.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._truncate_torn_tail()
        self._f = self.path.open("a")

    def _truncate_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with self.path.open("r+b") as f:
                f.truncate(cut)

    def append(self, row: dict) -> None:
        self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def fingerprint(obj=None, paths: Iterable[str | Path] = ()) -> str:
    """A short hash of a JSON-able object and the bytes of files (directories recursively).

    Resumable stages store it beside their partial outputs: a rerun resumes only when the inputs
    are the same, and starts fresh otherwise (DVC keeps `persist` outputs across changed inputs).
    """
    import hashlib

    h = hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode())
    for p in paths:
        p = Path(p)
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:16]


def reset_if_stale(out_dir: str | Path, key: str, files: Iterable[str]) -> bool:
    """Delete `files` in out_dir unless out_dir/.fingerprint equals `key`; then record `key`.
    Returns True when earlier partial outputs were kept (a resume)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / ".fingerprint"
    resumed = marker.exists() and marker.read_text().strip() == key
    if not resumed:
        for name in files:
            (out_dir / name).unlink(missing_ok=True)
        with atomic_path(marker) as tmp:
            tmp.write_text(key + "\n")
    return resumed


class LockedError(RuntimeError):
    """Another live process is writing the same stage output."""


@contextlib.contextmanager
def exclusive(target: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on a stage's output `target` (a file or directory) for the whole block.

    The lock is `flock` on `<parent>/.<name>.lock` (beside the output, never inside a DVC output), so
    the OS drops it when the holder dies, however it dies. A second writer - e.g. a rerun while an
    orphaned kernel of a killed `dvc repro` still runs - fails at once with one line naming the output
    and the holder's pid, instead of interleaving its rows with the other's."""
    import fcntl

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.parent / f".{target.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise LockedError(f"{target} is being written by another process (pid {holder}); "
                              f"wait for it or kill it, then rerun") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield lock
    finally:
        os.close(fd)  # closing the descriptor releases the lock
