"""Agreement of our cohort definitions with MIT-LCP mimic-code (rule concordance_mimic_code)."""

from sepsis_cs.adapters import mimic_iv
from sepsis_cs.adapters.common import load_concepts
from sepsis_cs.concordance import compare, figure, public_table
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import run_script, write_csv, write_json
from sepsis_cs.reference import DERIVED_COLUMNS, read_derived


def main(smk):
    definition = {k: smk.params[k] for k in ("cohort_definition", "time_window", "cs_window")}
    ours = mimic_iv.concordance_frames(smk.params.path, definition, load_concepts(smk.input.concepts), load_dictionary(smk.input.dictionary))
    ref = read_derived({"duckdb": smk.input.reference}, tuple(DERIVED_COLUMNS))
    table, headline, detail = compare(ours, ref)
    k = smk.params.min_cell_count
    preset = (smk.params.cohort_definition or {}).get("preset", "mimic_code")
    figure(table, detail, headline, smk.output.figure, k, f"{smk.wildcards.database}: our definitions (preset {preset}) vs MIT-LCP mimic-code")
    write_csv(public_table(table, k), smk.output.table)
    write_json({**headline, "mimic_code_preset": preset}, smk.output.summary)


run_script(main, snakemake)  # noqa: F821 - injected by Snakemake
