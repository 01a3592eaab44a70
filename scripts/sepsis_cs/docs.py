"""Configuration reference generated from the JSON schema (docs/usage.md).

``python scripts/sepsis_cs/docs.py`` rewrites the block between the markers
``<!-- config-reference:start -->`` and ``<!-- config-reference:end -->`` of docs/usage.md;
a test checks that the block is current and lists every schema key.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def schema_keys(schema: dict, prefix: str = "") -> list[tuple[str, dict]]:
    """Dotted key paths with their schema node, depth first; ``<name>`` stands for free names."""
    out = []
    for key, node in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        out.append((path, node))
        out += schema_keys(node, path + ".")
        if isinstance(node.get("additionalProperties"), dict):
            out += schema_keys(node["additionalProperties"], path + ".<name>.")
        if isinstance(node.get("items"), dict) and node["items"].get("properties"):
            out += schema_keys(node["items"], path + "[].")
    return out


def _type(node: dict) -> str:
    if "enum" in node:
        return " \\| ".join(str(v) for v in node["enum"])
    if "oneOf" in node or "anyOf" in node:
        return " or ".join(_type(n) for n in node.get("oneOf", node.get("anyOf")))
    t = node.get("type", "")
    if t == "array" and isinstance(node.get("items"), dict):
        return f"list of {_type(node['items'])}"
    return t if isinstance(t, str) else " \\| ".join(t)


def reference_markdown(schema: dict) -> str:
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for path, node in schema_keys(schema):
        default = node.get("default", "")
        default = "" if default == "" else f"`{json.dumps(default)}`"
        desc = str(node.get("description", "")).replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{path}` | {_type(node)} | {default} | {desc} |")
    return "\n".join(rows) + "\n"


def update_usage(usage: Path, schema_path: Path) -> bool:
    """Rewrite the reference block; returns True when the file changed."""
    schema = yaml.safe_load(schema_path.read_text())
    text = usage.read_text() if usage.exists() else ""
    block = f"{START}\n{reference_markdown(schema)}{END}"
    if START in text and END in text:
        new = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        new = text.rstrip() + "\n\n## Configuration reference\n\nGenerated from `config/schema/config.schema.yaml` by `python scripts/sepsis_cs/docs.py`.\n\n" + block + "\n"
    if new != text:
        usage.write_text(new)
        return True
    return False




# ----------------------------------------------------------------------------- docs/output.md
def workflow_rules(workdir: Path) -> list[dict]:
    """Rules of the workflow in ``workdir``: name, docstring, output patterns, report flags."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

    with SnakemakeApi(OutputSettings()) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(), config_settings=ConfigSettings(), storage_settings=StorageSettings(),
            snakefile=workdir / "Snakefile", workdir=workdir,
        )
        return rule_records(wf._workflow)


def rule_records(workflow) -> list[dict]:
    """Name, docstring, output patterns and report flags of every rule with an action of a loaded workflow."""
    from snakemake.io import get_flag_value, is_flagged

    out = []
    for r in workflow.rules:
        if r.norun:
            continue
        outs = [(re.sub(r"\{(\w+),[^}]*\}", r"{\1}", str(o)), bool(is_flagged(o, "report"))) for o in r.output]
        captions = {
            re.sub(r"\{(\w+),[^}]*\}", r"{\1}", str(o)): (str(get_flag_value(o, "report").caption), get_flag_value(o, "report").category)
            for o in r.output
            if is_flagged(o, "report")
        }
        out.append(
            {
                "name": r.name,
                "doc": (r.docstring or "").strip().splitlines()[0] if r.docstring else "",
                "outputs": outs,
                "captions": captions,
            }
        )
    return out


def _columns(pattern: str, run_dir: Path | None) -> str:
    if run_dir is None:
        return ""
    import glob

    import polars as pl

    g = re.sub(r"\{[^}]+\}", "*", pattern)
    hits = sorted(glob.glob(str(run_dir / g)))
    if not hits:
        return ""
    p = Path(hits[0])
    try:
        if p.suffix == ".parquet":
            cols = pl.read_parquet_schema(p).keys()
        elif p.suffix == ".csv":
            cols = pl.read_csv(p, n_rows=1).columns
        elif p.suffix == ".json":
            data = json.loads(p.read_text())
            cols = list(data)[:25] + (["…"] if len(data) > 25 else []) if isinstance(data, dict) else []
        else:
            return ""
    except Exception:  # noqa: BLE001 - documentation only
        return ""
    return ", ".join(f"`{c}`" if c != "…" else c for c in cols)


def output_markdown(rules: list[dict], run_dir: Path | None) -> str:
    lines = [
        "# Outputs",
        "",
        "Every file the workflow writes, the rule that writes it and what it holds. `{database}` is a database",
        "name of the config, `{population}` one of `cs`, `no_cs`, `pooled`. Columns are those of the default run",
        "(for JSON: the keys). Files marked *report* are in `snakemake --report` with a caption",
        "(`workflow/report/`). Logs are under `results/logs/`, benchmark files under `results/benchmarks/`. Two",
        "logs are tables, kept when their rule fails: `results/{database}/data/validation_problems.csv` (rule",
        "`validate_cohort`) and `results/{database}/ingest/ingest_problems.csv` (rule `ingest_contract`), with every",
        "problem found in one pass: `severity` (error, mapped, repair, warning), `file`, `column`, `expected`, `n`",
        "(rows), `example` (one offending value, never an identifier), `fix`, `action`.",
        "Generated by `python scripts/sepsis_cs/docs.py <finished run folder>`; `tests/test_docs.py` checks",
        "that every output of every rule is listed.",
        "",
        "| output | rule | report | what | columns / keys |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(rules, key=lambda r: r["name"]):
        for pattern, in_report in r["outputs"]:
            doc = r["doc"].replace("|", "\\|")
            lines.append(
                f"| `{pattern}` | `{r['name']}` | {'report' if in_report else ''} | {doc} | {_columns(pattern, run_dir)} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - CLI
    root = Path(__file__).resolve().parents[2]
    changed = update_usage(root / "docs" / "usage.md", root / "config" / "schema" / "config.schema.yaml")
    print("docs/usage.md updated" if changed else "docs/usage.md already current", file=sys.stderr)
    run = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else None
    (root / "docs" / "output.md").write_text(output_markdown(workflow_rules(root), run))
    print("docs/output.md written", file=sys.stderr)
