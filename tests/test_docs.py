"""Documentation stays in step with the code: config reference and output list."""

import json
import subprocess
import sys

import yaml

from helpers import ROOT, make_workdir
from sepsis_cs.docs import END, START, reference_markdown, schema_keys


def test_usage_lists_every_schema_key_and_is_current():
    schema = yaml.safe_load((ROOT / "config/schema/config.schema.yaml").read_text())
    usage = (ROOT / "docs/usage.md").read_text()
    block = usage[usage.index(START) + len(START): usage.index(END)].strip()
    assert block == reference_markdown(schema).strip(), "run: python scripts/sepsis_cs/docs.py"
    for key, node in schema_keys(schema):
        assert f"| `{key}` |" in usage, key
        assert node.get("description") or node.get("type") == "object", f"schema key {key} has no description"


def test_output_doc_lists_every_rule_output(tmp_path):
    wd = make_workdir(tmp_path / "wd")
    code = (
        "import json, sys; from pathlib import Path; sys.path.insert(0, 'scripts');"
        "from sepsis_cs.docs import workflow_rules; print('RULES=' + json.dumps(workflow_rules(Path.cwd())))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=wd, capture_output=True, text=True, timeout=300)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RULES="))
    rules = json.loads(line.removeprefix("RULES="))
    doc = (ROOT / "docs/output.md").read_text()
    missing = [f"{r['name']}: {o}" for r in rules for o, _ in r["outputs"] if f"| `{o}` | `{r['name']}` |" not in doc]
    assert not missing, "run: python scripts/sepsis_cs/docs.py <finished run folder>\n" + "\n".join(missing[:20])
