"""Test helpers: a disposable copy of the workflow, a Snakemake runner, the test configurations and the
rule dump."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_PARTS = ("Snakefile", "workflow", "scripts", "config", "envs", "profiles")
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# every end-to-end run of the tests: the frozen test settings, then the small cohorts and light resampling
E2E_CONFIG = ("--configfile", "tests/configs/unit.yaml", "tests/configs/small.yaml")


def make_workdir(dest: Path) -> Path:
    """Copy what a run needs (not results/) into ``dest`` and return it."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = ROOT / part
        if not src.exists():
            continue
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest / part)
    (dest / "tests" / "configs").mkdir(parents=True, exist_ok=True)
    for cfg in (ROOT / "tests" / "configs").glob("*.yaml"):
        shutil.copy2(cfg, dest / "tests" / "configs" / cfg.name)
    return dest


def run_snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir`` (no profile is loaded; outputs and logs stay in the copy)."""
    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", "0")
    proc = subprocess.run(
        [SNAKEMAKE, *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base``, dictionaries key by key (as Snakemake merges --configfile)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@cache
def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def unit_config() -> dict:
    """The settings unit tests use: tests/configs/unit.yaml over config/config.yaml (new keys keep their defaults)."""
    return deep_merge(_yaml(ROOT / "config" / "config.yaml"), _yaml(ROOT / "tests" / "configs" / "unit.yaml"))


def e2e_config() -> dict:
    """The configuration of the end-to-end runs (E2E_CONFIG over config/config.yaml)."""
    return deep_merge(unit_config(), _yaml(ROOT / "tests" / "configs" / "small.yaml"))


# Loads the workflow once through the Snakemake API and prints every rule: what tests/test_envs.py,
# test_reruns.py, test_docs.py and test_report.py check (sepsis_cs.docs.rule_records gives the documented part).
DUMP_RULES = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, "scripts")
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings
from sepsis_cs.docs import rule_records

with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(resource_settings=ResourceSettings(), config_settings=ConfigSettings(),
                      storage_settings=StorageSettings(), snakefile=Path("Snakefile"), workdir=Path.cwd())
    documented = {r["name"]: r for r in rule_records(wf._workflow)}
    rules = []
    for r in wf._workflow.rules:
        rules.append({
            "name": r.name,
            "action": not r.norun,
            "basedir": str(r.basedir),
            "script": r.script,
            "conda": str(r.conda_env) if r.conda_env else None,
            "resources": sorted(k for k in r.resources if not k.startswith("_") and k != "tmpdir"),
            "benchmark": str(r.benchmark) if r.benchmark else None,
            "log": [str(x) for x in r.log],
            "params": list(r.params._names),
            **{k: documented[r.name][k] for k in ("doc", "outputs", "captions") if r.name in documented},
        })
    print("RULES_JSON=" + json.dumps(rules))
"""


def dump_rules(workdir: Path) -> dict:
    """``{"workdir": ..., "rules": [...]}``: every rule of the workflow copy in ``workdir`` (default config)."""
    proc = subprocess.run([sys.executable, "-c", DUMP_RULES], cwd=workdir, capture_output=True, text=True, timeout=300)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RULES_JSON=")), None)
    assert line, f"could not load the workflow:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return {"workdir": str(workdir), "rules": json.loads(line.removeprefix("RULES_JSON="))}
