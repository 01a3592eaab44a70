"""The SLURM profile on a real (one-node) SLURM cluster.

`.ci/run` starts the cluster with `tests/slurm/cluster-up.sh` (root); elsewhere these tests are skipped.
The run goes through `profiles/slurm` exactly as a user would use it after setting the partition:
the test copies the profile and changes only what docs/usage.md tells users to change (partition;
`slurm-status-command: squeue` when the cluster has no accounting database) plus a shorter first
status check and latency wait so the test is quick.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from helpers import E2E_CONFIG, ROOT, SNAKEMAKE, make_workdir, run_snakemake

pytestmark = pytest.mark.slurm

CONFIG = E2E_CONFIG
DB = "simulated"
# ingest + understand + analyse outputs of one database: a real, quick slice of the workflow
TARGETS = [
    f"results/{DB}/understand/data_dictionary.csv",
    f"results/{DB}/understand/cohort_summary.csv",
    f"results/{DB}/summary/cohort.json",
    f"results/{DB}/features/stay_features.parquet",
]
RULES = {"simulate_cohort", "validate_cohort", "data_dictionary", "cohort_summary", "stay_features"}
FINISHED = re.compile(r"Finished jobid: \d+ \(Rule: (\w+)\)")
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")
TIMING_KEYS = re.compile(r".*_seconds$")


def _run(cmd, timeout=10):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _skip(reason):
    # .ci/run started a cluster: a missing one is then a failure, not a reason to skip
    if os.environ.get("SEPSIS_CS_REQUIRE_SLURM") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _cluster():
    """(default partition, has accounting) of a reachable SLURM controller, else skip."""
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        _skip("SLURM client tools not installed (run tests/slurm/cluster-up.sh as root)")
    ping = _run(["scontrol", "ping"], timeout=5)
    if ping is None or ping.returncode != 0 or "UP" not in ping.stdout:
        _skip("no SLURM controller reachable (run tests/slurm/cluster-up.sh as root)")
    parts = _run(["sinfo", "-h", "-o", "%P %a"])
    names = [line.split()[0] for line in (parts.stdout if parts else "").splitlines() if line.endswith(" up")]
    if not names:
        _skip("SLURM controller has no partition that is up")
    default = next((n for n in names if n.endswith("*")), names[0]).rstrip("*")
    sacct = _run(["sacct", "-n", "-X", "-S", "now-1minutes"])
    has_accounting = sacct is not None and sacct.returncode == 0 and "disabled" not in (sacct.stdout + sacct.stderr)
    return default, has_accounting


@pytest.fixture(scope="module")
def cluster():
    return _cluster()


@pytest.fixture(scope="module")
def profile(cluster, tmp_path_factory):
    """profiles/slurm with the changes docs/usage.md asks users to make, for this cluster."""
    partition, has_accounting = cluster
    settings = yaml.safe_load((ROOT / "profiles/slurm/config.v8+.yaml").read_text())
    assert settings["executor"] == "slurm"
    assert settings["default-resources"]["slurm_partition"] == "CHANGE_ME", "the shipped profile must ask users to set it"
    settings["default-resources"]["slurm_partition"] = partition
    if not has_accounting:
        settings["slurm-status-command"] = "squeue"
    # test speed only: first status check after 8 s instead of 40 s, outputs are on a local disk
    settings["slurm-init-seconds-before-status-checks"] = 8
    settings["latency-wait"] = 5
    dest = tmp_path_factory.mktemp("slurm_profile")
    (dest / "config.v8+.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return dest


def _slurm(workdir, profile, *args, check=True, timeout=600):
    t0 = time.monotonic()
    proc = run_snakemake(workdir, *args, "--profile", str(profile), *CONFIG, check=check, timeout=timeout)
    out = proc.stdout + proc.stderr
    return proc, out, time.monotonic() - t0


@pytest.fixture(scope="module")
def slurm_run(profile, failing_run, tmp_path_factory):
    """The targets through SLURM and, side by side (the SLURM run mostly waits), with --cores."""
    wd = make_workdir(tmp_path_factory.mktemp("slurm_wd"))
    ref = make_workdir(tmp_path_factory.mktemp("cores_wd"))
    local = subprocess.Popen(
        [SNAKEMAKE, *TARGETS, "--cores", "1", *CONFIG],
        cwd=ref,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    proc, out, seconds = _slurm(wd, profile, *TARGETS)
    print(f"SLURM run of {len(RULES)} jobs: {seconds:.1f} s")
    local_out, _ = local.communicate(timeout=600)
    assert local.returncode == 0, local_out[-4000:]
    return wd, out, ref


def _outputs(wd: Path):
    base = wd / "results" / DB
    return sorted(p.relative_to(wd) for p in base.rglob("*") if p.is_file())


def _same(a: Path, b: Path) -> bool:
    if a.suffix == ".json":
        strip = lambda d: {k: v for k, v in d.items() if not TIMING_KEYS.match(k)}  # noqa: E731
        return strip(json.loads(a.read_text())) == strip(json.loads(b.read_text()))
    return a.read_bytes() == b.read_bytes()


def test_slurm_run_equals_cores_run(slurm_run):
    wd, out, ref = slurm_run
    ran = set(FINISHED.findall(out))
    assert ran == RULES, out[-3000:]
    # every job went through sbatch, none ran locally
    assert len(SUBMITTED.findall(out)) == len(RULES), out[-3000:]
    files = _outputs(wd)
    assert {Path(t) for t in TARGETS} <= set(files)
    compared = [f for f in files if f.suffix in (".parquet", ".csv", ".json")]
    assert len(compared) >= 9
    differ = [str(f) for f in compared if not _same(wd / f, ref / f)]
    assert not differ, f"SLURM outputs differ from the --cores run: {differ}"


def test_forcerun_through_slurm_reruns_only_downstream(slurm_run, profile):
    wd, _, ref = slurm_run
    before = {f: (wd / f).stat().st_mtime_ns for f in _outputs(wd)}
    proc, out, seconds = _slurm(wd, profile, *TARGETS, "--forcerun", "validate_cohort")
    print(f"SLURM --forcerun validate_cohort: {seconds:.1f} s")
    ran = FINISHED.findall(out)
    assert sorted(ran) == sorted(["validate_cohort", "data_dictionary", "cohort_summary", "stay_features"]), out[-3000:]
    after = {f: (wd / f).stat().st_mtime_ns for f in _outputs(wd)}
    upstream = [f for f in before if "/ingest/" in str(f) or "/truth/" in str(f)]
    assert upstream and all(before[f] == after[f] for f in upstream), "simulate_cohort outputs were rewritten"
    downstream = [f for f in before if f.parent.name in ("data", "understand", "features")]
    assert downstream and all(after[f] > before[f] for f in downstream)
    assert all(_same(wd / f, ref / f) for f in downstream)


@pytest.fixture(scope="module")
def failing_run(profile, tmp_path_factory):
    """A database whose input files are broken, started through SLURM in the background (it overlaps
    the main run, whose first jobs leave CPUs of the test node idle)."""
    wd = make_workdir(tmp_path_factory.mktemp("slurm_fail"))
    broken = wd / "broken"
    broken.mkdir()
    (broken / "cohort.parquet").write_text("this is not a parquet file\n")
    (broken / "timeseries.parquet").write_text("neither is this\n")
    cfg = wd / "tests/configs/broken.yaml"
    db = {"type": "contract", "cohort": str(broken / "cohort.parquet"), "timeseries": str(broken / "timeseries.parquet")}
    cfg.write_text(yaml.safe_dump({"seed": 1, "databases": {"broken": db}}))
    proc = subprocess.Popen(
        [SNAKEMAKE, "results/broken/data/cohort.parquet", "--profile", str(profile), "--configfile", str(cfg)],
        cwd=wd,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    t0 = time.monotonic()
    result = {}

    def wait():
        result["out"] = proc.communicate()[0]
        result["seconds"] = time.monotonic() - t0

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    yield wd, proc, waiter, result
    if proc.poll() is None:
        proc.kill()
        subprocess.run(["scancel", "--user", "root"], check=False, capture_output=True)


def test_failing_job_is_reported_not_hung(failing_run, slurm_run):
    wd, proc, waiter, result = failing_run
    limit = 300
    waiter.join(timeout=limit)
    if waiter.is_alive():
        pytest.fail(f"snakemake did not return within {limit} s after its SLURM job failed (hung)")
    out = result["out"]
    print(f"failing SLURM job: snakemake exited {proc.returncode} after {result['seconds']:.1f} s")
    assert proc.returncode != 0
    assert "Error in rule ingest_contract" in out, out[-3000:]
    # the profile retries once: two SLURM jobs, both reported failed, then snakemake gives up
    assert len(re.findall(r"SLURM-job '\d+' failed", out)) == 2, out[-3000:]
    assert "Exiting because a job execution failed" in out
    assert not (wd / "results/broken/data/cohort.parquet").exists()
