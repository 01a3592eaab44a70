"""Work done once per test session and shared by every test (and every pytest-xdist worker).

* :func:`shared_dir` — a folder common to all workers of one session (the session's base temp folder;
  under xdist its parent, which the workers share).
* :func:`once` — build a JSON-able value once per session under a file lock; other workers read it.
* :class:`BackgroundRun` — a Snakemake run started as soon as collection ends (in the background, so unit
  tests run meanwhile), awaited by the fixtures that need its results.
* :func:`cached_frames` — polars frames built once per session and shared through Parquet files.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import SNAKEMAKE, make_workdir

_SHARED_ENV = "SEPSIS_CS_TEST_SHARED"  # set by conftest: the shared folder of this session


def shared_dir(config: pytest.Config) -> Path:
    """The folder shared by every worker of this session (created on first use)."""
    base = config._tmp_path_factory.getbasetemp()  # noqa: SLF001 - pytest's own factory, as tmp_path_factory
    folder = (base.parent if hasattr(config, "workerinput") else base) / "shared"
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[_SHARED_ENV] = str(folder)
    return folder


@contextmanager
def locked(path: Path):
    """An exclusive lock on ``path`` (a lock file), held across processes for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def once(folder: Path, name: str, build):
    """``build()`` (a JSON-able value) computed by the first caller of the session; the others read it."""
    target = folder / f"{name}.json"
    with locked(folder / f"{name}.lock"):
        if target.exists():
            return json.loads(target.read_text())
        value = build()
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(value))
        tmp.replace(target)
        return value


def cached_frames(name: str, n: int, build):
    """A tuple of ``n`` polars frames, built once per session and shared through Parquet files.

    Outside a pytest session (no shared folder known) the frames are simply built.
    """
    import polars as pl

    folder = os.environ.get(_SHARED_ENV)
    if not folder:
        return build()
    folder = Path(folder) / "frames"
    files = [folder / f"{name}.{i}.parquet" for i in range(n)]
    with locked(folder / f"{name}.lock"):
        if all(f.exists() for f in files):
            return tuple(pl.read_parquet(f) for f in files)
        frames = build()
        for frame, f in zip(frames, files, strict=True):
            frame.write_parquet(f.with_suffix(".tmp"))
            f.with_suffix(".tmp").replace(f)
        return frames


class BackgroundRun:
    """One Snakemake run per session in a disposable copy of the workflow, started in the background.

    ``start`` is called when collection ends (by whichever process gets there first) if a selected test
    needs the run; ``wait`` blocks until it has finished and fails the calling test if it failed. Further
    commands (``then``) run in the same folder after a successful run, each with its own status file
    (e.g. the report). The run is stopped at the end of the session if it is still going.
    """

    def __init__(self, name: str, args: tuple[str, ...], then: dict[str, tuple[str, ...]] | None = None):
        self.name, self.args, self.then = name, args, then or {}

    def folder(self, config) -> Path:
        return shared_dir(config) / self.name

    def start(self, config) -> None:
        root = shared_dir(config)
        try:
            os.close(os.open(root / f"{self.name}.started", os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return  # another worker started it
        wd = make_workdir(self.folder(config))
        steps = [(self.name, self.args), *self.then.items()]
        script = " && ".join(
            f'{{ "$0" {" ".join(_quote(a) for a in args)} > {step}.log 2>&1; rc=$?; echo $rc > {step}.rc; [ $rc = 0 ]; }}'
            for step, args in steps
        )
        proc = subprocess.Popen(
            ["/bin/sh", "-c", script, SNAKEMAKE],
            cwd=wd,
            env={**os.environ, "PYTHONHASHSEED": "0"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # stopped by process group at the end of the session (stop)
        )
        (root / f"{self.name}.pid").write_text(str(proc.pid))

    def wait(self, config, step: str | None = None, timeout: float = 1800) -> Path:
        """Block until ``step`` (default: the run itself) has finished; return the run's folder."""
        step = step or self.name
        self.start(config)  # no-op if started at collection
        wd = self.folder(config)
        rc_file = wd / f"{step}.rc"
        deadline = time.monotonic() + timeout
        while not rc_file.exists():
            earlier = [s for s in (self.name, *self.then) if s != step and (wd / f"{s}.rc").exists()]
            if any((wd / f"{s}.rc").read_text().strip() != "0" for s in earlier):
                break  # an earlier step failed: this one never runs
            if time.monotonic() > deadline:
                pytest.fail(f"background run {self.name}: {step} did not finish within {timeout:.0f} s")
            time.sleep(0.5)
        rc = rc_file.read_text().strip() if rc_file.exists() else "not run"
        if rc != "0":
            logs = sorted(wd.glob("*.log"))
            tail = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-6000:]}" for p in logs)
            pytest.fail(f"background run {self.name}: {step} failed ({rc}); snakemake {' '.join(self.args)}\n{tail}")
        return wd

    def stop(self, config) -> None:
        """Stop the run's process group if it is still running (end of session)."""
        pid_file = shared_dir(config) / f"{self.name}.pid"
        last = [*self.then][-1] if self.then else self.name
        if pid_file.exists() and not (self.folder(config) / f"{last}.rc").exists():
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGTERM)
            except (ProcessLookupError, PermissionError, ValueError):
                pass


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'"
