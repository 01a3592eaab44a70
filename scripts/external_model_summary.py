"""One fitted external model across every database it was applied to (rule external_model_summary)."""

import polars as pl

from sepsis_cs.external import across_databases, across_databases_summary, plot_across_databases
from sepsis_cs.io import read_json, read_table, run_script, savefig, write_csv, write_json


def main(smk):
    name = smk.wildcards.external
    rows = [(db, read_json(a), read_table(m)) for db, a, m in zip(smk.params.databases, smk.input.applied, smk.input.metrics)]
    table = across_databases(name, rows, smk.params.fitted_on, smk.params.min_cell_count)
    write_csv(table.with_columns(pl.selectors.float().round(4)), smk.output.table)
    savefig(plot_across_databases(table, name), smk.output.figure)
    write_json(across_databases_summary(table), smk.output.summary)


run_script(main, snakemake)  # noqa: F821
