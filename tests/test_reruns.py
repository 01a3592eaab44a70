"""Partial reruns: `--forcerun <rule>` and a change of one config key reschedule exactly the rules that
depend on them, nothing else (dry runs on the session's finished `workflow_run`).

Expected sets come from the job graph (`snakemake --dag`), not from a hand-written list, so new
rules are covered. A config key only triggers reruns through `params:` (Snakemake's `params` rerun
trigger); a script reading `snakemake.config[...]` that its rule does not declare in `params:` gives
stale results after a config change, which `test_config_keys_read_by_scripts_are_params` catches.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from helpers import E2E_CONFIG, ROOT, e2e_config, run_snakemake
from shared import once, shared_dir


def _planned(out: str) -> dict[str, int]:
    """rule -> job count from the first 'Job stats' table of a dry run."""
    if "Nothing to be done" in out:
        return {}
    m = re.search(r"Job stats:\njob\s+count\n[- ]+\n(.*?)\ntotal\s+\d+", out, re.S)
    assert m, out[-3000:]
    return {name: int(n) for name, n in re.findall(r"^(\w+)\s+(\d+)\s*$", m.group(1), re.M)}


def _dry(wd: Path, *args: str) -> dict[str, int]:
    proc = run_snakemake(wd, "-n", *E2E_CONFIG, *args, timeout=300)
    return _planned(proc.stdout + proc.stderr)


@pytest.fixture(scope="module")
def job_graph(request, workflow_run):
    """(jobs per rule, rule -> rule edges) of the finished run's DAG: `snakemake --dag` lists every job of the
    workflow (done or not), once per session whatever the worker."""

    def build():
        out = run_snakemake(workflow_run, "--dag", *E2E_CONFIG).stdout
        jobs = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)', out, re.M))
        edges = sorted({(jobs[a], jobs[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", out, re.M)})
        return dict(Counter(jobs.values())), edges

    counts, edges = once(shared_dir(request.config), "job_graph", build)
    assert len(counts) >= 5 and edges
    return counts, [tuple(e) for e in edges]


@pytest.fixture(scope="module")
def rulegraph(job_graph):
    counts, edges = job_graph
    return set(counts), edges


def _downstream(rulegraph, start: set[str]) -> set[str]:
    _, edges = rulegraph
    found, todo = set(start), list(start)
    while todo:
        node = todo.pop()
        for a, b in edges:
            if a == node and b not in found:
                found.add(b)
                todo.append(b)
    return found


@pytest.fixture(scope="module")
def full_plan(job_graph):
    """rule -> number of jobs of a run from scratch (every job of the DAG)."""
    return job_graph[0]


@pytest.mark.parametrize("rule", ["validate_cohort", "stay_features", "cohort_summary"])
def test_forcerun_schedules_exactly_the_downstream(workflow_run, rulegraph, full_plan, rule):
    rules, _ = rulegraph
    if rule not in rules:
        pytest.skip(f"rule {rule} is not in this workflow")
    plan = _dry(workflow_run, "--forcerun", rule)
    expected = _downstream(rulegraph, {rule})
    assert set(plan) == expected, f"unexpected: {set(plan) - expected}, missing: {expected - set(plan)}"
    # every job of the rule and of each downstream rule, as many as in a full run
    assert all(plan[r] == full_plan[r] for r in plan)


def test_config_change_of_one_key_schedules_its_dependants_only(workflow_run, rulegraph, rules_with_params, tmp_path):
    """stay_features.statistics changes the per-stay features: the rules that declare the key
    (stay_features, and transfer_temporal which builds its own windows with these statistics) and
    everything downstream of them rerun; ingest/validation/cohort summary do not."""
    stats = list(e2e_config()["stay_features"]["statistics"])
    assert "slope" in stats
    changed = tmp_path / "changed_stats.yaml"  # one more overlay: only this key differs from the finished run
    changed.write_text(yaml.safe_dump({"stay_features": {"statistics": [s for s in stats if s != "slope"]}}))
    proc = run_snakemake(workflow_run, "-n", *E2E_CONFIG, str(changed), timeout=300)
    plan = _planned(proc.stdout + proc.stderr)
    declaring = {r["name"] for r in rules_with_params if "stay_features" in r["params"]}
    assert "stay_features" in declaring
    expected = _downstream(rulegraph, declaring)
    assert "validate_cohort" not in expected and "cohort_summary" not in expected
    assert set(plan) == expected, (
        f"after changing stay_features.statistics: unexpected {set(plan) - expected}, missing {expected - set(plan)} "
        "(a rule reruns on a config change only if it declares the key in params:)"
    )


# ------------------------------------------------------------------ static: config keys -> params
def _config_keys(script: Path) -> set[str]:
    """Top-level config keys a script reads; '*' when it hands the whole config to a function."""
    tree = ast.parse(script.read_text())

    def is_config(node, aliases):
        return (isinstance(node, ast.Attribute) and node.attr == "config") or (isinstance(node, ast.Name) and node.id in aliases)

    aliases: set[str] = set()
    for node in ast.walk(tree):  # cfg = smk.config
        if isinstance(node, ast.Assign) and is_config(node.value, set()):
            aliases |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple):  # cfg, k = smk.config, ...
            for t, v in zip(getattr(node.targets[0], "elts", []), node.value.elts):
                if isinstance(t, ast.Name) and is_config(v, set()):
                    aliases.add(t.id)
    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and is_config(node.value, aliases) and isinstance(node.slice, ast.Constant):
            keys.add(node.slice.value)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            if is_config(node.func.value, aliases) and node.args and isinstance(node.args[0], ast.Constant):
                keys.add(node.args[0].value)
        elif isinstance(node, ast.Call):
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if is_config(arg, aliases):
                    keys.add("*")
    return keys


@pytest.fixture(scope="module")
def rules_with_params(rule_dump):
    return [r for r in rule_dump["rules"] if r["script"]]


def test_config_keys_read_by_scripts_are_params(rules_with_params):
    """Each top-level config key a rule's script reads must be a param of the same name (e.g.
    `params: stay_features=config["stay_features"]`), or the rule has `params: config=config` when
    the script hands the whole config on. Otherwise changing that key does not rerun the rule."""
    problems = []
    for r in rules_with_params:
        script = (Path(r["basedir"]) / r["script"]).resolve()
        script = script if script.is_file() else ROOT / "scripts" / script.name
        keys = _config_keys(script)
        params = set(r["params"])
        if "config" in params:
            continue
        if "*" in keys:
            problems.append(f"{r['name']}: {script.name} passes the whole config on; declare params: config=config")
            keys.discard("*")
        missing = sorted(k for k in keys if k not in params)
        if missing:
            problems.append(f"{r['name']}: {script.name} reads config {missing} not declared in params")
    assert not problems, "\n".join(problems)
