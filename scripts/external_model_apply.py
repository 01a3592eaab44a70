"""A fitted external model applied to one database (rule external_model_apply).

Writes the prediction file the supervised phase evaluates (``stay_id, score, name``: only stays where
the model could be applied), the per-input coverage table and the application counts.
"""

import logging

from threadpoolctl import threadpool_limits

from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.external import apply_model, application_summary, load_model, model_data, parse_inputs
from sepsis_cs.io import format_count, read_parquet, run_script, write_csv, write_json, write_parquet

log = logging.getLogger("sepsis_cs")


def main(smk):
    entry = smk.params.entry
    name, db, mcc = smk.wildcards.external, smk.wildcards.database, smk.params.min_cell_count
    where = f"external_models[{smk.params.index}]"
    mapping = parse_inputs(entry.get("inputs"), smk.input.mapping[0] if smk.input.mapping else None, where)
    model = load_model(
        smk.input.model, entry.get("format"), entry.get("trusted_types") or [], entry.get("positive_class", 1),
        smk.threads, entry.get("output"), log,
    )
    data = model_data(read_parquet(smk.input.features), read_parquet(smk.input.cohort))
    known = set(load_dictionary(smk.input.dictionary).variables)
    with threadpool_limits(limits=smk.threads):
        pred, coverage, counts, notes = apply_model(model, data, mapping, name, entry.get("missing", "exclude"), mcc, known)
    for note in notes:
        log.warning("%s on %s: %s", name, db, note)
    apparent = entry.get("fitted_on") == db
    if apparent:
        log.warning("%s was fitted on %s: its metrics there are apparent (optimistic) performance, not a validation", name, db)
    log.info(
        "%s (%s) on %s: applied to %s of %s stays; %s not applicable (a mapped input missing, no default: excluded from its metrics)",
        name, model.format, db, format_count(counts["n_applied"], mcc), counts["n_stays"], format_count(counts["n_not_applicable"], mcc),
    )
    write_parquet(pred.sort("stay_id"), smk.output.predictions)
    write_csv(coverage, smk.output.coverage)
    write_json(application_summary(name, db, model, smk.input.model, counts, apparent, entry, mcc), smk.output.summary)


run_script(main, snakemake)  # noqa: F821
