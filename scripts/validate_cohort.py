"""Validate the contract files of one database (rule validate_cohort)."""

import logging

from sepsis_cs.contract import ContractSettings, validate
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import say, read_parquet, run_script, write_csv, write_parquet
from sepsis_cs.problems import ContractProblems, Problems, frame_problems, summary_lines

log = logging.getLogger("sepsis_cs")


def main(smk):
    dictionary = load_dictionary(smk.input.dictionary)
    keys = ("contract", "time_window", "cs_window", "outcome", "resolution")
    settings = ContractSettings.from_config({k: smk.params[k] for k in keys})
    P = Problems()
    mapped = smk.input.get("mapping")  # what the database's mapping did (contract databases only)
    if mapped:
        P.extend(frame_problems(read_parquet(mapped if isinstance(mapped, str) else mapped[0])))
    try:
        cohort, ts, changes = validate(
            read_parquet(smk.input.cohort),
            read_parquet(smk.input.timeseries),
            dictionary,
            settings,
            cohort_file=smk.params.cohort_name,
            ts_file=smk.params.timeseries_name,
            problems=P,
        )
    except ContractProblems as exc:
        exc.table = smk.log.problems
        if smk.input.get("mapping"):
            exc.hint = (f"check and get a suggested mapping without the workflow: scripts/check_contract.py --config <your config> "
                        f"--database {smk.wildcards.database} --suggest suggested.yaml (docs/bring-your-database.md)")
        raise
    finally:
        write_csv(P.frame(), smk.log.problems)
    for line in summary_lines([p for p in P.items if p.severity != "mapped"]):  # ingest_contract printed the mapping's
        log.info(line)
        say(f"  validate_cohort [{smk.wildcards.database}]: {line}")
    log.info("validated %d stays, %d hourly values, %d changes", cohort.height, ts.height, changes.height)
    write_parquet(cohort, smk.output.cohort)
    write_parquet(ts, smk.output.timeseries)
    write_csv(changes, smk.output.changes)


run_script(main, snakemake)  # noqa: F821
