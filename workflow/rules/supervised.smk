# Phase 4: supervised risk models (nested patient-level CV), external models, CS benefit (CATE),
# confrontation with the clusters. Settings: config `supervised:` and `external_models:`.


include: "supervised_common.smk"


SUP = config.get("supervised", {})
SUP_MODELS = list(
    SUP.get("models", {"logistic": {}, "random_forest": {}, "hist_gb": {}})
)
CATE_LEARNERS = list(
    SUP.get("cate", {}).get("learners", ["t_learner", "x_learner", "dr_learner"])
)


SELECTED_FEATURES = "results/{database}/analyse/selected_features.json"
FOLD_SELECTION = "results/{database}/supervised/fold_selection.json"
PROPENSITY = "results/{database}/analyse/propensity.parquet"


CLUSTER_LABELS = _cluster_labels_pattern()


SUPERVISED_PARTS = ["evaluate", "cate"] + (["confront"] if CLUSTER_LABELS else [])

add_targets("results/{database}/summary/supervised.json")


rule supervised_risk_cohort:
    """The risk models' cohort: stays alive and in the ICU at the prediction horizon (landmark), with counts."""
    input:
        cohort="results/{database}/data/cohort.parquet",
        timeseries="results/{database}/data/timeseries.parquet",
    output:
        cohort="results/{database}/supervised/risk_cohort.parquet",
        info="results/{database}/supervised/risk_cohort.json",
    log:
        log_path("supervised_risk_cohort"),
    benchmark:
        bench_path("supervised_risk_cohort")
    conda:
        "../../envs/supervised.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        **config_params("min_cell_count", "prediction_horizon_h", "supervised"),
    script:
        "../../scripts/supervised_risk_cohort.py"


rule supervised_selection:
    """Variable selection re-run inside each outer training fold (config `features: selected`); selection frequency."""
    input:
        features="results/{database}/features/stay_features.parquet",
        cohort="results/{database}/data/cohort.parquet",
        risk_cohort="results/{database}/supervised/risk_cohort.parquet",
        associations="results/{database}/analyse/associations.parquet",
        dictionary=db_dictionary,
    output:
        folds="results/{database}/supervised/fold_selection.json",
        frequency=report(
            "results/{database}/supervised/selection_frequency.csv",
            caption=caption("supervised_selection_frequency"),
            category="Supervised",
            subcategory="{database}",
            labels={"table": "selection frequency across outer folds"},
        ),
    log:
        log_path("supervised_selection"),
    benchmark:
        bench_path("supervised_selection")
    conda:
        "../../envs/supervised.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        **config_params("analyse", "outcome", "seed", "supervised"),
    script:
        "../../scripts/supervised_selection.py"


rule supervised_model:
    """Out-of-fold risk predictions of one internal model by nested patient-level cross-validation."""
    input:
        unpack(fold_selection_input),
        features="results/{database}/features/stay_features.parquet",
        cohort="results/{database}/data/cohort.parquet",
        risk_cohort="results/{database}/supervised/risk_cohort.parquet",
        dictionary=db_dictionary,
    output:
        oof="results/{database}/supervised/oof_{model}.parquet",
        tuning="results/{database}/supervised/tuning_{model}.csv",
        importance="results/{database}/supervised/importance_{model}.parquet",
    log:
        "results/logs/{database}/supervised_model_{model}.log",
    benchmark:
        "results/benchmarks/{database}/supervised_model_{model}.tsv"
    wildcard_constraints:
        model=regex_of(SUP_MODELS),
    conda:
        "../../envs/supervised.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        **config_params("features", "outcome", "seed", "supervised"),
    script:
        "../../scripts/supervised_model.py"


rule supervised_cate:
    """Held-out CS benefit of one CATE learner on baseline features, AIPW evaluation scores, per-stay bootstrap interval."""
    input:
        features="results/{database}/features/stay_features.parquet",
        cohort="results/{database}/data/cohort.parquet",
        timeseries="results/{database}/data/timeseries.parquet",
        dictionary=db_dictionary,
        selected=cate_selected_input,
        propensity=propensity_input,
    output:
        cate="results/{database}/supervised/cate_{learner}.parquet",
    log:
        "results/logs/{database}/supervised_cate_{learner}.log",
    benchmark:
        "results/benchmarks/{database}/supervised_cate_{learner}.tsv"
    wildcard_constraints:
        learner=regex_of(CATE_LEARNERS),
    conda:
        "../../envs/supervised.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        **config_params(
            "cs_window", "features", "min_cell_count", "outcome", "seed", "supervised"
        ),
    script:
        "../../scripts/supervised_cate.py"


rule supervised_evaluate:
    """Metrics with patient-level bootstrap CIs of internal and external models; calibration, decision curve."""
    input:
        oof=expand(
            "results/{{database}}/supervised/oof_{model}.parquet", model=SUP_MODELS
        ),
        cohort="results/{database}/data/cohort.parquet",
        risk_cohort="results/{database}/supervised/risk_cohort.parquet",
        risk_info="results/{database}/supervised/risk_cohort.json",
        external=external_inputs,
        applied=external_applied_inputs,
    output:
        metrics=report(
            "results/{database}/supervised/metrics.csv",
            caption=caption("supervised_metrics"),
            category="Supervised",
            subcategory="{database}",
            labels={"table": "model performance"},
        ),
        by_group=report(
            "results/{database}/supervised/metrics_by_group.csv",
            caption=caption("supervised_metrics_by_group"),
            category="Supervised",
            subcategory="{database}",
            labels={"table": "performance per CS group"},
        ),
        comparison=report(
            "results/{database}/supervised/external_comparison.csv",
            caption=caption("supervised_external_comparison"),
            category="Supervised",
            subcategory="{database}",
            labels={"table": "external models vs ours"},
        ),
        calibration=report(
            "results/{database}/supervised/calibration.png",
            caption=caption("supervised_calibration"),
            category="Supervised",
            subcategory="{database}",
            labels={"figure": "calibration"},
        ),
        decision=report(
            "results/{database}/supervised/decision_curve.png",
            caption=caption("supervised_decision_curve"),
            category="Supervised",
            subcategory="{database}",
            labels={"figure": "decision curve"},
        ),
        summary="results/{database}/supervised/evaluate.json",
    log:
        log_path("supervised_evaluate"),
    benchmark:
        bench_path("supervised_evaluate")
    conda:
        "../../envs/supervised.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        **config_params("min_cell_count", "outcome", "seed", "supervised"),
        models=SUP_MODELS,
        external_names=external_names,
    script:
        "../../scripts/supervised_evaluate.py"


rule supervised_cate_evaluate:
    """Held-out RATE, BLP, GATES, c-for-benefit and decision curve of every learner; heterogeneity verdict; classes."""
    input:
        cate=expand(
            "results/{{database}}/supervised/cate_{learner}.parquet",
            learner=CATE_LEARNERS,
        ),
        cohort="results/{database}/data/cohort.parquet",
    output:
        table=report(
            "results/{database}/supervised/cate_evaluation.csv",
            caption=caption("supervised_cate_evaluation"),
            category="Supervised",
            subcategory="{database}",
            labels={"table": "CS benefit: heterogeneity tests"},
        ),
        gates=report(
            "results/{database}/supervised/cate_gates.csv",
            caption=caption("supervised_cate_gates"),
            category="Supervised",
            subcategory="{database}",
            labels={"table": "CS benefit: sorted group effects (GATES)"},
        ),
        figure=report(
            "results/{database}/supervised/cate_benefit.png",
            caption=caption("supervised_cate_benefit"),
            category="Supervised",
            subcategory="{database}",
            labels={"figure": "CS benefit: TOC and GATES"},
        ),
        decision=report(
            "results/{database}/supervised/cate_decision_curve.png",
            caption=caption("supervised_cate_decision_curve"),
            category="Supervised",
            subcategory="{database}",
            labels={"figure": "CS benefit: decision curve"},
        ),
        policy=report(
            "results/{database}/supervised/cate_decision_curve.csv",
            caption=caption("supervised_cate_decision_curve_table"),
            category="Supervised",
            subcategory="{database}",
            labels={"table": "CS benefit: decision curve"},
        ),
        classes="results/{database}/supervised/benefit_classes.parquet",
        summary="results/{database}/supervised/cate.json",
    log:
        log_path("supervised_cate_evaluate"),
    benchmark:
        bench_path("supervised_cate_evaluate")
    conda:
        "../../envs/supervised.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        **config_params("min_cell_count", "seed", "supervised"),
        learners=CATE_LEARNERS,
    script:
        "../../scripts/supervised_cate_evaluate.py"


rule supervised_confront:
    """Models and CS benefit per cluster; clusters vs benefit classes; importance vs cluster-defining variables."""
    input:
        labels=labels_input,
        oof=expand(
            "results/{{database}}/supervised/oof_{model}.parquet", model=SUP_MODELS
        ),
        importance=expand(
            "results/{{database}}/supervised/importance_{model}.parquet",
            model=SUP_MODELS,
        ),
        cate=expand(
            "results/{{database}}/supervised/cate_{learner}.parquet",
            learner=CATE_LEARNERS,
        ),
        classes="results/{database}/supervised/benefit_classes.parquet",
        cohort="results/{database}/data/cohort.parquet",
        risk_cohort="results/{database}/supervised/risk_cohort.parquet",
        features="results/{database}/features/stay_features.parquet",
        external=external_inputs,
    output:
        per_cluster=report(
            "results/{database}/supervised/per_cluster.csv",
            caption=caption("supervised_per_cluster"),
            category="Supervised",
            subcategory="{database}",
            labels={"table": "models per cluster"},
        ),
        distribution=report(
            "results/{database}/supervised/cluster_distributions.csv",
            caption=caption("supervised_cluster_distributions"),
            category="Supervised",
            subcategory="{database}",
            labels={"table": "risk and benefit per cluster"},
        ),
        figure=report(
            "results/{database}/supervised/cluster_benefit.png",
            caption=caption("supervised_cluster_benefit"),
            category="Supervised",
            subcategory="{database}",
            labels={"figure": "benefit per cluster"},
        ),
        summary="results/{database}/supervised/confront.json",
    log:
        log_path("supervised_confront"),
    benchmark:
        bench_path("supervised_confront")
    conda:
        "../../envs/supervised.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        **config_params("min_cell_count", "outcome", "seed", "supervised"),
        models=SUP_MODELS,
        learners=CATE_LEARNERS,
        external_names=external_names,
    script:
        "../../scripts/supervised_confront.py"


rule supervised_summary:
    """Headline numbers of the supervised phase (and, on simulated data, CATE vs the true effect)."""
    input:
        parts=expand(
            "results/{{database}}/supervised/{part}.json", part=SUPERVISED_PARTS
        ),
        cate=expand(
            "results/{{database}}/supervised/cate_{learner}.parquet",
            learner=CATE_LEARNERS,
        ),
        classes="results/{database}/supervised/benefit_classes.parquet",
        gates="results/{database}/supervised/cate_gates.csv",
        truth=truth_input,
    output:
        summary="results/{database}/summary/supervised.json",
    log:
        log_path("supervised_summary"),
    benchmark:
        bench_path("supervised_summary")
    conda:
        "../../envs/supervised.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        learners=CATE_LEARNERS,
    script:
        "../../scripts/supervised_summary.py"
