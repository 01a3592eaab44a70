"""One transfer strategy over target training sizes x seeds (rule transfer_strategy)."""

import logging

from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import read_parquet, run_script, write_parquet
from sepsis_cs.transfer import learning_curve, prepare_pair, settings_from_config

log = logging.getLogger("sepsis_cs")


def main(smk):
    cfg = smk.config
    tcfg = cfg["transfer"]
    dictionary = load_dictionary(smk.input.dictionary)
    src, tgt, cols, levels = prepare_pair(
        read_parquet(smk.input.source_features), read_parquet(smk.input.source_cohort),
        read_parquet(smk.input.target_features), read_parquet(smk.input.target_cohort),
        dictionary, cfg["outcome"], tcfg["features"], tcfg["statistics"], smk.input.get("selected"),
    )
    st = settings_from_config(tcfg, cols, dictionary)
    log.info("strategy %s: %d source stays, %d target stays, %d features", smk.wildcards.strategy, len(src), len(tgt), len(cols))
    curve = learning_curve(
        smk.wildcards.strategy, src, tgt, tcfg["train_sizes"], int(tcfg["n_seeds"]), int(cfg["seed"]),
        float(tcfg["test_share"]), st, levels, n_jobs=smk.threads,
    )
    write_parquet(curve, smk.output.curve)


run_script(main, snakemake)  # noqa: F821
