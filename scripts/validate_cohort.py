"""Validate the contract files of one database (rule validate_cohort)."""

import logging

from sepsis_cs.contract import ContractSettings, validate
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import read_parquet, run_script, write_csv, write_parquet

log = logging.getLogger("sepsis_cs")


def main(smk):
    dictionary = load_dictionary(smk.input.dictionary)
    keys = ("contract", "time_window", "cs_window", "outcome")
    settings = ContractSettings.from_config({k: smk.params[k] for k in keys})
    cohort, ts, changes = validate(
        read_parquet(smk.input.cohort),
        read_parquet(smk.input.timeseries),
        dictionary,
        settings,
        cohort_file=smk.params.cohort_name,
        ts_file=smk.params.timeseries_name,
    )
    log.info("validated %d stays, %d hourly values, %d repairs", cohort.height, ts.height, changes.height)
    write_parquet(cohort, smk.output.cohort)
    write_parquet(ts, smk.output.timeseries)
    write_csv(changes, smk.output.changes)


run_script(main, snakemake)  # noqa: F821
