"""Interrupted runs and determinism.

A run is killed at different points (SIGTERM and SIGKILL of the whole process group), resumed
with ``--rerun-incomplete``, and its final tables must be byte-identical to an uninterrupted
run (the session's ``workflow_run``).  As the two runs are independent processes with the same
seed, the same comparison proves determinism; a different seed must change stochastic outputs.

To bound the time, an interrupted run starts from a copy of the finished run's upstream outputs (with
their Snakemake metadata, as if those rules had run in the copy): the first trial recomputes the data,
understand, feature and analysis phases, the second clustering and supervised models, so that together
they interrupt and compare every phase but ingest and transfer.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import E2E_CONFIG, SNAKEMAKE, make_workdir, run_snakemake

pytestmark = pytest.mark.slow

CONFIG = E2E_CONFIG
# interrupted runs build part of the workflow; their outputs are compared with the same files of the
# uninterrupted full run: the first trial the data and analysis phases, the second clustering and
# supervised models (transfer is left out to bound the test's time)
EARLY = ("results/simulated/summary/analysis.json", "results/simulated/summary/cohort.json")
LATE = (*EARLY, "results/simulated/summary/clustering.json", "results/simulated/summary/supervised.json")
# outputs copied from the finished run before each trial (folders of results/simulated, or files)
SEED_EARLY = ("ingest", "truth")
SEED_LATE = (*SEED_EARLY, "data", "understand", "features", "analyse", "summary/cohort.json", "summary/analysis.json")


def table_digests(results: Path) -> dict[str, str]:
    """SHA-256 of every Parquet/CSV/JSON output (JSON without timing keys); logs and benchmarks excluded."""
    out = {}
    for p in sorted(results.rglob("*")):
        rel = p.relative_to(results).as_posix()
        if not p.is_file() or rel.startswith(("logs/", "benchmarks/")) or p.name.startswith("."):
            continue
        if p.suffix in (".parquet", ".csv"):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.suffix == ".json":
            data = json.loads(p.read_text())
            if isinstance(data, dict):
                data = {k: v for k, v in data.items() if not k.endswith("_seconds")}
            out[rel] = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return out


def seeded_workdir(dest: Path, run: Path, seed: tuple[str, ...], database: str = "simulated") -> Path:
    """A copy of the workflow holding the finished ``run``'s outputs ``seed`` (under results/{database}) and
    its Snakemake metadata, so that Snakemake takes those rules as done and runs only what follows."""
    wd = make_workdir(dest)
    shutil.copytree(run / ".snakemake" / "metadata", wd / ".snakemake" / "metadata")
    for rel in seed:
        src, dst = run / "results" / database / rel, wd / "results" / database / rel
        if src.is_dir():
            shutil.copytree(src, dst)  # copy2: modification times kept, outputs stay newer than inputs
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return wd


def _start(wd: Path, targets) -> subprocess.Popen:
    return subprocess.Popen(
        [SNAKEMAKE, *targets, "--cores", "2", *CONFIG],
        cwd=wd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


def _kill_when(proc: subprocess.Popen, wd: Path, marker: str, sig: int, timeout: float = 300) -> bool:
    """Send ``sig`` to the run's process group as soon as a file matches ``marker`` (a glob); False if it finished first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if next(wd.glob(marker), None) is not None:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=120)
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"{marker} did not appear within {timeout} s")


@pytest.fixture(scope="module")
def reference(workflow_run):
    return table_digests(workflow_run / "results")


@pytest.mark.parametrize(
    "sig, seed, marker, targets, recomputed",
    [
        (signal.SIGTERM, SEED_EARLY, "results/simulated/data/cohort.parquet", EARLY, "simulated/analyse/propensity.parquet"),
        (signal.SIGKILL, SEED_LATE, "results/simulated/cluster/*/*", LATE, "simulated/supervised/oof_logistic.parquet"),
    ],
    ids=["sigterm-after-validation", "sigkill-during-clustering"],
)
def test_kill_and_resume_gives_identical_outputs(tmp_path, workflow_run, reference, sig, seed, marker, targets, recomputed):
    wd = seeded_workdir(tmp_path / "wd", workflow_run, seed)
    seeded = set(table_digests(wd / "results"))
    proc = _start(wd, targets)
    killed = _kill_when(proc, wd, marker, sig)
    assert killed, "the run finished before it could be interrupted"
    if sig == signal.SIGKILL:
        run_snakemake(wd, "--unlock", *CONFIG)
    run_snakemake(wd, *targets, "--cores", "2", "--rerun-incomplete", *CONFIG)
    resumed = table_digests(wd / "results")
    assert "simulated/summary/analysis.json" in resumed and recomputed in resumed
    assert recomputed not in seeded and len(set(resumed) - seeded) >= 5  # this trial did compute a phase
    assert set(resumed) <= set(reference)
    differing = sorted(k for k in resumed if resumed[k] != reference[k])
    assert not differing, differing
    # nothing is left half-written
    assert not list((wd / "results").rglob(".*.tmp")) and not list((wd / "results").rglob(".*.parquet"))


def test_other_seed_changes_stochastic_outputs(tmp_path, reference):
    wd = make_workdir(tmp_path / "wd")
    (wd / "seed.yaml").write_text("seed: 8\n")
    run_snakemake(
        wd, "results/simulated/data/cohort.parquet", "results/simulated/summary/cohort.json", "--cores", "2", *CONFIG, "seed.yaml",
    )
    other = table_digests(wd / "results")
    assert other["simulated/data/cohort.parquet"] != reference["simulated/data/cohort.parquet"]
    assert other["simulated/summary/cohort.json"] != reference["simulated/summary/cohort.json"]
