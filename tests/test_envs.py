"""Every rule runs where users run it: a pinned conda env that provides what its script imports,
threads/resources/benchmark/log declared, `snakemake --lint` clean, profiles that load.

Rules are read through the Snakemake API (the session's rule dump, conftest.rule_dump: a subprocess on a
temporary copy of the workflow), so rules added by any phase are checked without listing them here. Imports are read statically (AST)
from each rule's script and, transitively, from every `sepsis_cs` module it uses.
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, make_workdir, run_snakemake

SCRIPTS = ROOT / "scripts"
PACKAGE = "sepsis_cs"
# import name -> accepted conda-forge package names
IMPORT_TO_CONDA = {
    "sklearn": ("scikit-learn",),
    "yaml": ("pyyaml",),
    "matplotlib": ("matplotlib-base", "matplotlib"),
    "mpl_toolkits": ("matplotlib-base", "matplotlib"),
    "PIL": ("pillow",),
    "dateutil": ("python-dateutil",),
    "jsonschema": ("jsonschema",),
    "duckdb": ("python-duckdb",),
}
# conda-forge name -> pip name in requirements.txt
CONDA_TO_PIP = {"matplotlib-base": "matplotlib", "python-duckdb": "duckdb"}
STDLIB = set(sys.stdlib_module_names) | {"__future__"}

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A copy of the workflow for the lint and profile runs."""
    return make_workdir(tmp_path_factory.mktemp("envs_wd"))


@pytest.fixture(scope="module")
def rules(rule_dump):
    return [r for r in rule_dump["rules"] if r["action"]]


@pytest.fixture(scope="module")
def rules_workdir(rule_dump):
    """The workflow copy the rules were loaded from (their paths point into it)."""
    return Path(rule_dump["workdir"])


def _threads_declared() -> dict[str, bool]:
    """rule name -> whether its block in workflow/rules/*.smk has a `threads:` directive."""
    declared = {}
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        name = None
        for line in smk.read_text().splitlines():
            m = re.match(r"^(?:checkpoint|rule)\s+(\w+)\s*:", line)
            if m:
                name = m.group(1)
                declared[name] = False
            elif name and re.match(r"^\S", line) and not line.startswith("#"):
                name = None  # left the rule block
            elif name and re.match(r"^\s+threads\s*:", line):
                declared[name] = True
    return declared


# ---------------------------------------------------------------- env files
def _env(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _deps(env: dict) -> dict[str, str]:
    """conda name -> pinned version ('' when unpinned)."""
    out = {}
    for dep in env.get("dependencies", []):
        assert isinstance(dep, str), f"pip sections are not allowed in env files: {dep}"
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(?:=+\s*([^=\s]+))?$", dep.strip())
        assert m, f"cannot parse dependency {dep!r}"
        out[m.group(1).lower()] = m.group(2) or ""
    return out


def _requirements() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;]+)$", line)
        assert m, f"requirements.txt line is not an exact pin: {line!r}"
        pins[m.group(1).lower()] = m.group(2)
    return pins


ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))


@pytest.mark.parametrize("env_file", ENV_FILES, ids=[p.stem for p in ENV_FILES])
def test_env_file_pinned_and_agrees_with_requirements(env_file):
    env = _env(env_file)
    assert env.get("channels") == ["conda-forge", "nodefaults"], f"{env_file.name}: channels must be [conda-forge, nodefaults]"
    deps = _deps(env)
    reqs = _requirements()
    python = re.search(r">=\s*(\d+\.\d+)", (ROOT / "pyproject.toml").read_text()).group(1)
    assert deps.get("python") == python, f"{env_file.name}: python={deps.get('python')} but pyproject requires {python}"
    problems = []
    for name, version in deps.items():
        if name == "python":
            continue
        if not re.fullmatch(r"\d+(\.\d+)+", version):
            problems.append(f"{name}: not pinned to an exact version ({version!r})")
            continue
        pip = CONDA_TO_PIP.get(name, name)
        if pip not in reqs:
            problems.append(f"{name}={version}: not in requirements.txt")
        elif reqs[pip] != version:
            problems.append(f"{name}={version}: requirements.txt pins {pip}=={reqs[pip]}")
    assert not problems, f"{env_file.name}: " + "; ".join(problems)


def test_every_rule_has_an_existing_conda_env(rules, rules_workdir):
    assert len(rules) >= 5
    problems = []
    for r in rules:
        if not r["conda"]:
            problems.append(f"{r['name']}: no conda: directive")
            continue
        path = (Path(r["basedir"]) / r["conda"]).resolve()
        if path.parent != (rules_workdir / "envs").resolve() or not path.is_file():
            problems.append(f"{r['name']}: conda env {r['conda']} is not a file in envs/")
    assert not problems, "\n".join(problems)


def test_every_env_file_is_used(rules):
    used = {(Path(r["basedir"]) / r["conda"]).resolve().name for r in rules if r["conda"]}
    unused = [p.name for p in ENV_FILES if p.name not in used]
    assert not unused, f"env files no rule uses: {unused}"


# ---------------------------------------------------------------- imports
def _module_file(module: str) -> Path | None:
    base = SCRIPTS.joinpath(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _type_checking_nodes(tree) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


@cache
def _parse(path: Path, module: str | None):
    """Imports of one file: (eager third-party, eager sepsis_cs modules, lazy, referenced names).

    Lazy = imports inside a function or method, as {function name: (third-party, modules)}: they
    count only when some reached file refers to that function (e.g. `io.savefig` imports matplotlib,
    which an ingest script that never saves a figure does not need)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_nodes(tree)
    eager_third, eager_internal, lazy = set(), set(), {}

    def internal_chain(mod):
        parts = mod.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts) + 1) if _module_file(".".join(parts[:i]))}

    def imports_of(node):
        third, internal = set(), set()
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                internal |= internal_chain(alias.name) if top == PACKAGE else set()
                third |= set() if top == PACKAGE else {top}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert module, f"relative import outside the package in {path}"
                package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                full = f"{package}.{node.module}" if node.module else package
            else:
                full = node.module
            if full.split(".")[0] == PACKAGE:
                internal |= internal_chain(full)
                for alias in node.names:  # `from sepsis_cs import io` imports a module
                    internal |= internal_chain(f"{full}.{alias.name}") if _module_file(f"{full}.{alias.name}") else set()
            else:
                third.add(full.split(".")[0])
        return third - STDLIB, internal

    def visit(node, owners):
        for child in ast.iter_child_nodes(node):
            if id(child) in skip:
                continue
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, owners + (child.name,))
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                third, internal = imports_of(child)
                if owners:
                    for owner in owners:
                        t, i = lazy.setdefault(owner, (set(), set()))
                        t |= third
                        i |= internal
                else:
                    eager_third.update(third)
                    eager_internal.update(internal)
            visit(child, owners)

            ref = child.id if isinstance(child, ast.Name) else child.attr if isinstance(child, ast.Attribute) else None
            if ref and ref not in owners:  # a function mentioning itself (fig.savefig in savefig) is no use
                names.add(ref)
            if isinstance(child, ast.ImportFrom):
                names.update(a.name for a in child.names)

    names = set()
    visit(tree, ())
    return frozenset(eager_third), frozenset(eager_internal), lazy, frozenset(names)


def script_imports(script: Path) -> tuple[set[str], set[str]]:
    """Third-party imports a script needs, following every sepsis_cs module it reaches (to a fixpoint)."""
    files = {None: script}
    third, names = set(), set()
    while True:
        before = (len(files), len(third), len(names))
        for mod, path in list(files.items()):
            eager_t, eager_i, lazy, refs = _parse(path, mod)
            third |= eager_t
            names |= refs
            reach = set(eager_i)
            for owner, (t, i) in lazy.items():
                if owner in names:
                    third |= t
                    reach |= i
            for m in reach:
                files.setdefault(m, _module_file(m))
        if (len(files), len(third), len(names)) == before:
            return third, {m for m in files if m}


def test_import_resolution_follows_the_package():
    # a script using sepsis_cs.io reaches polars through io.py; the test itself must see that
    third, modules = script_imports(SCRIPTS / "stay_features.py")
    assert "sepsis_cs.features" in modules and "sepsis_cs" in modules
    assert "polars" in third


def _provided(name: str, deps: dict) -> bool:
    return any(c in deps for c in IMPORT_TO_CONDA.get(name, (name.lower(),)))


def test_script_imports_are_provided_by_the_rule_env(rules):
    problems, checked = [], 0
    for r in rules:
        if not r["script"] or not r["conda"]:
            continue
        script = (Path(r["basedir"]) / r["script"]).resolve()
        script = SCRIPTS / script.name if not script.is_file() else script
        assert script.is_file(), f"{r['name']}: script {r['script']} not found"
        env_path = Path(r["basedir"]) / r["conda"]
        deps = _deps(_env(env_path))
        third, _ = script_imports(script)
        missing = sorted(n for n in third if n != "snakemake" and not _provided(n, deps))
        if "snakemake" in third:
            problems.append(f"{r['name']}: {script.name} imports snakemake (use the injected `snakemake` object)")
        if missing:
            problems.append(f"{r['name']} ({script.name}) needs {missing}, not in {env_path.name}")
        checked += 1
    assert checked >= 5
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- resources, benchmark, log
def test_every_rule_declares_threads_resources_benchmark_log(rules):
    threads = _threads_declared()
    problems = []
    for r in rules:
        missing = [k for k in ("mem_mb", "runtime") if k not in r["resources"]]
        if not threads.get(r["name"], False):
            missing.append("threads")
        if not r["benchmark"]:
            missing.append("benchmark")
        if not r["log"]:
            missing.append("log")
        if missing:
            problems.append(f"{r['name']}: missing {missing}")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- lint, profiles
@pytest.mark.slow
def test_snakemake_lint_is_clean(workdir):
    proc = run_snakemake(workdir, "--lint", check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out[-6000:]


def test_slurm_profile_set_resources_name_existing_rules(rules):
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.v8+.yaml").read_text())
    assert profile["executor"] == "slurm"
    for key in ("jobs", "retries", "latency-wait", "rerun-incomplete", "default-resources"):
        assert key in profile, key
    assert {"slurm_partition", "runtime", "mem_mb", "cpus_per_task"} <= set(profile["default-resources"])
    names = {r["name"] for r in rules}
    # snakemake silently ignores set-resources of a rule that does not exist
    for key in ("set-resources", "set-threads"):
        unknown = sorted(set(profile.get(key) or {}) - names)
        assert not unknown, f"profiles/slurm {key} for rules that do not exist: {unknown}"
    assert profile.get("set-resources"), "heavy rules need set-resources"


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["workstation", "slurm"])
def test_profile_loads_and_plans_the_workflow(workdir, profile):
    proc = run_snakemake(workdir, "--profile", f"profiles/{profile}", "-n", "--quiet", "rules", timeout=300)
    assert "stay_features" in proc.stdout + proc.stderr
