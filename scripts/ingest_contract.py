"""Take a database supplied in contract format, through its config mapping (rule ingest_contract)."""

import logging
import time

from sepsis_cs.contract import ContractSettings, check
from sepsis_cs.dictionary import dictionary_yaml, load_dictionary
from sepsis_cs.io import say, run_script, write_csv, write_json, write_parquet, write_text
from sepsis_cs.mapping import Mapping
from sepsis_cs.onboard import database_dictionary, ingest
from sepsis_cs.problems import ContractProblems, Problems, summary_lines

log = logging.getLogger("sepsis_cs")


def main(smk):
    t0 = time.perf_counter()
    db = smk.wildcards.database
    mapping = Mapping.from_config(smk.params.mapping, where=f"databases.{db}.mapping")
    dictionary = database_dictionary(load_dictionary(smk.input.dictionary), mapping)
    settings = ContractSettings.from_config({k: smk.params[k] for k in ("contract", "time_window", "cs_window", "outcome", "resolution")})
    P = Problems()
    try:
        cohort, ts = ingest(smk.input.cohort, smk.input.timeseries, mapping, dictionary, settings, P, database=db)
        if P.errors and cohort is not None and ts is not None:
            # a mapping entry did not fit: report the validator's findings in the same pass
            check(cohort, ts, dictionary, settings, str(smk.input.cohort), str(smk.input.timeseries), problems=P)
        P.raise_if_errors()
    except ContractProblems as exc:
        exc.table = smk.log.problems
        exc.hint = (f"check and get a suggested mapping without the workflow: scripts/check_contract.py --config <your config> "
                    f"--database {db} --suggest suggested.yaml (docs/bring-your-database.md)")
        raise
    finally:
        write_csv(P.frame(), smk.log.problems)
    for line in summary_lines(P.items):
        log.info(line)
        say(f"  ingest_contract [{db}]: {line}")
    write_parquet(cohort, smk.output.cohort)
    write_parquet(ts, smk.output.timeseries)
    write_parquet(P.frame(), smk.output.mapping)
    write_text(dictionary_yaml(dictionary), smk.output.dictionary)
    write_json({"ingest_seconds": time.perf_counter() - t0, "n_icu_stays_raw": cohort.height}, smk.output.stats)


run_script(main, snakemake)  # noqa: F821
