# ICU sepsis x corticosteroids: one workflow from raw ICU data to who benefits from CS.
# Phases are included below; each adds its final outputs to TARGETS (workflow/rules/common.smk).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


# front page of `snakemake --report`: written by rule report_summary from the headline numbers
report: "results/report/summary.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/ingest_databases.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/understand.smk"
include: "workflow/rules/analyse.smk"
include: "workflow/rules/cluster.smk"
include: "workflow/rules/external.smk"
include: "workflow/rules/supervised.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/target_trial.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        TARGETS,
