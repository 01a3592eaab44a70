"""Data dictionary with per-variable coverage (rule data_dictionary)."""

from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import read_parquet, run_script, write_csv
from sepsis_cs.understand import dictionary_coverage


def main(smk):
    table = dictionary_coverage(
        read_parquet(smk.input.cohort),
        read_parquet(smk.input.timeseries),
        load_dictionary(smk.input.dictionary),
        smk.params.min_cell_count,
    )
    write_csv(table, smk.output.table)


run_script(main, snakemake)  # noqa: F821
