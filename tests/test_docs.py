"""Documentation stays in step with the code: config reference and output list."""

import yaml

from helpers import ROOT
from sepsis_cs.docs import END, START, reference_markdown, schema_keys


def test_usage_lists_every_schema_key_and_is_current():
    schema = yaml.safe_load((ROOT / "config/schema/config.schema.yaml").read_text())
    usage = (ROOT / "docs/usage.md").read_text()
    block = usage[usage.index(START) + len(START): usage.index(END)].strip()
    assert block == reference_markdown(schema).strip(), "run: python scripts/sepsis_cs/docs.py"
    for key, node in schema_keys(schema):
        assert f"| `{key}` |" in usage, key
        assert node.get("description") or node.get("type") == "object", f"schema key {key} has no description"


def test_output_doc_lists_every_rule_output(rule_dump):
    rules = [r for r in rule_dump["rules"] if r["action"]]
    assert len(rules) >= 20
    doc = (ROOT / "docs/output.md").read_text()
    missing = [f"{r['name']}: {o}" for r in rules for o, _ in r["outputs"] if f"| `{o}` | `{r['name']}` |" not in doc]
    assert not missing, "run: python scripts/sepsis_cs/docs.py <finished run folder>\n" + "\n".join(missing[:20])
