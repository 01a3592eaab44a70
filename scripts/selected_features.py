"""The consensus selections for the outcome and CS assignment in one file (rule selected_features)."""

import json

from sepsis_cs.io import run_script, write_json


def main(smk):
    out = {task: json.loads(open(path).read())["selected"] for task, path in (("outcome", smk.input.outcome), ("treatment", smk.input.treatment))}
    write_json(out, smk.output.selected)


run_script(main, snakemake)  # noqa: F821
