# Phase 2: general analysis (per-stay features; variable selection, correlation and temporal study join here).


add_targets(
    "results/{database}/features/stay_features.parquet",
    "results/{database}/analyse/propensity.parquet",
    "results/{database}/analyse/selected_features.json",
    "results/{database}/analyse/landmarks.csv",
    "results/{database}/summary/analysis.json",
)


rule stay_features:
    """Static covariates plus summaries of each hourly variable before time zero and up to the horizon."""
    input:
        cohort="results/{database}/data/cohort.parquet",
        timeseries="results/{database}/data/timeseries.parquet",
        dictionary=db_dictionary,
    output:
        features="results/{database}/features/stay_features.parquet",
    log:
        log_path("stay_features"),
    benchmark:
        bench_path("stay_features")
    conda:
        "../../envs/analyse.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        # config read by the script: declared so that changing them reruns this rule
        stay_features=config["stay_features"],
        prediction_horizon_h=config["prediction_horizon_h"],
    script:
        "../../scripts/stay_features.py"


rule propensity_model:
    """Cross-fitted penalised logistic propensity score for CS on baseline confounders; overlap diagnostics."""
    input:
        # the treatment selection, only when the confounders are "selected"
        unpack(
            lambda wc: (
                {"selected": f"results/{wc.database}/analyse/selected_features.json"}
                if config["analyse"]["propensity"]["confounders"] == "selected"
                else {}
            )
        ),
        cohort="results/{database}/data/cohort.parquet",
        features="results/{database}/features/stay_features.parquet",
        dictionary=db_dictionary,
    output:
        ps="results/{database}/analyse/propensity.parquet",
        info="results/{database}/analyse/propensity_info.json",
        diagnostics=report(
            "results/{database}/analyse/positivity.csv",
            caption=caption("positivity"),
            category="Analysis",
            subcategory="{database}",
            labels={"table": "positivity diagnostics"},
        ),
        figure=report(
            "results/{database}/analyse/propensity_overlap.png",
            caption=caption("propensity_overlap"),
            category="Analysis",
            subcategory="{database}",
            labels={"figure": "propensity overlap"},
        ),
    log:
        log_path("propensity_model"),
    benchmark:
        bench_path("propensity_model")
    conda:
        "../../envs/analyse.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
    params:
        # config read by the script: declared so that changing it reruns this rule
        analyse=config["analyse"]["propensity"],
        seed=config["seed"],
        min_cell_count=config["min_cell_count"],
    script:
        "../../scripts/propensity_model.py"


rule correlation_study:
    """Spearman / Cramer's V / correlation ratio between features, redundancy groups, CS-group contrast."""
    input:
        cohort="results/{database}/data/cohort.parquet",
        features="results/{database}/features/stay_features.parquet",
        dictionary=db_dictionary,
    output:
        matrix="results/{database}/analyse/associations.parquet",
        groups=report(
            "results/{database}/analyse/redundant_groups.csv",
            caption=caption("redundant_groups"),
            category="Analysis",
            subcategory="{database}",
            labels={"table": "redundant variable groups"},
        ),
        heatmap=report(
            "results/{database}/analyse/correlation_heatmap.png",
            caption=caption("correlation_heatmap"),
            category="Analysis",
            subcategory="{database}",
            labels={"figure": "correlation heatmap"},
        ),
        by_cs=report(
            "results/{database}/analyse/correlation_by_cs.png",
            caption=caption("correlation_by_cs"),
            category="Analysis",
            subcategory="{database}",
            labels={"figure": "correlations by CS group"},
        ),
        by_cs_table=report(
            "results/{database}/analyse/correlation_by_cs.csv",
            caption=caption("correlation_by_cs_table"),
            category="Analysis",
            subcategory="{database}",
            labels={"table": "largest CS vs no-CS correlation differences"},
        ),
        outcome_table=report(
            "results/{database}/analyse/outcome_association.csv",
            caption=caption("outcome_association"),
            category="Analysis",
            subcategory="{database}",
            labels={"table": "association with outcome by CS group"},
        ),
        outcome_figure=report(
            "results/{database}/analyse/outcome_association.png",
            caption=caption("outcome_association_figure"),
            category="Analysis",
            subcategory="{database}",
            labels={"figure": "association with outcome by CS group"},
        ),
    log:
        log_path("correlation_study"),
    benchmark:
        bench_path("correlation_study")
    conda:
        "../../envs/analyse.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
    params:
        **config_params("analyse", "prediction_horizon_h"),
        # config read by the script: declared so that changing it reruns this rule
        correlation=config["analyse"]["correlation"],
        outcome=config["outcome"],
    script:
        "../../scripts/correlation_study.py"


rule variable_selection:
    """Univariate FDR filter, stability selection, out-of-fold permutation importance; consensus and redundancy."""
    input:
        cohort="results/{database}/data/cohort.parquet",
        features="results/{database}/features/stay_features.parquet",
        associations="results/{database}/analyse/associations.parquet",
        dictionary=db_dictionary,
    output:
        table=report(
            "results/{database}/analyse/selection_{task}.csv",
            caption=caption("selection_table"),
            category="Analysis",
            subcategory="{database}",
            labels={"table": "variable ranking", "task": "{task}"},
        ),
        figure=report(
            "results/{database}/analyse/selection_{task}.png",
            caption=caption("selection_figure"),
            category="Analysis",
            subcategory="{database}",
            labels={"figure": "variable ranking", "task": "{task}"},
        ),
        info="results/{database}/analyse/selection_{task}.json",
    log:
        "results/logs/{database}/variable_selection_{task}.log",
    benchmark:
        "results/benchmarks/{database}/variable_selection_{task}.tsv"
    wildcard_constraints:
        task="outcome|treatment",
    conda:
        "../../envs/analyse.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        **config_params("analyse"),
        # config read by the script: declared so that changing it reruns this rule
        selection=config["analyse"]["selection"],
        redundancy=config["analyse"]["correlation"]["redundancy_threshold"],
        outcome=config["outcome"],
        seed=config["seed"],
    script:
        "../../scripts/variable_selection.py"


rule selected_features:
    """Selected features for the outcome and for CS assignment (read by later phases)."""
    input:
        outcome="results/{database}/analyse/selection_outcome.json",
        treatment="results/{database}/analyse/selection_treatment.json",
    output:
        selected="results/{database}/analyse/selected_features.json",
    log:
        log_path("selected_features"),
    benchmark:
        bench_path("selected_features")
    conda:
        "../../envs/analyse.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../../scripts/selected_features.py"


rule temporal_study:
    """Trajectories by CS group and outcome, aligned at time zero and CS start; landmark GEE slopes."""
    input:
        cohort="results/{database}/data/cohort.parquet",
        timeseries="results/{database}/data/timeseries.parquet",
        dictionary=db_dictionary,
    output:
        trajectories="results/{database}/analyse/trajectories.csv",
        by_cs=report(
            "results/{database}/analyse/trajectories_cs.png",
            caption=caption("trajectories_cs"),
            category="Analysis",
            subcategory="{database}",
            labels={"figure": "trajectories by CS group"},
        ),
        by_outcome=report(
            "results/{database}/analyse/trajectories_outcome.png",
            caption=caption("trajectories_outcome"),
            category="Analysis",
            subcategory="{database}",
            labels={"figure": "trajectories by outcome"},
        ),
        cs_start=report(
            "results/{database}/analyse/trajectories_cs_start.png",
            caption=caption("trajectories_cs_start"),
            category="Analysis",
            subcategory="{database}",
            labels={"figure": "trajectories at CS start"},
        ),
        landmarks=report(
            "results/{database}/analyse/landmarks.csv",
            caption=caption("landmarks"),
            category="Analysis",
            subcategory="{database}",
            labels={"table": "landmark comparison (GEE)"},
        ),
        slopes=report(
            "results/{database}/analyse/landmark_slopes.png",
            caption=caption("landmark_slopes"),
            category="Analysis",
            subcategory="{database}",
            labels={"figure": "landmark slopes (GEE)"},
        ),
    log:
        log_path("temporal_study"),
    benchmark:
        bench_path("temporal_study")
    conda:
        "../../envs/analyse.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    params:
        **config_params("analyse"),
        # config read by the script: declared so that changing it reruns this rule
        temporal=config["analyse"]["temporal"],
        outcome=config["outcome"],
        min_cell_count=config["min_cell_count"],
        time_window=lambda wc: time_window_of(wc.database),
        resolution=lambda wc: resolution_of(wc.database),
    script:
        "../../scripts/temporal_study.py"


rule analysis_summary:
    """Headline numbers of phases 1-2 in summary/analysis.json."""
    input:
        outcome="results/{database}/analyse/selection_outcome.json",
        treatment="results/{database}/analyse/selection_treatment.json",
        propensity="results/{database}/analyse/propensity_info.json",
        smd="results/{database}/understand/table1_smd.csv",
        groups="results/{database}/analyse/redundant_groups.csv",
        landmarks="results/{database}/analyse/landmarks.csv",
    output:
        summary="results/{database}/summary/analysis.json",
    log:
        log_path("analysis_summary"),
    benchmark:
        bench_path("analysis_summary")
    conda:
        "../../envs/analyse.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        # config read by the script: declared so that changing it reruns this rule
        understand=config["understand"],
    script:
        "../../scripts/analysis_summary.py"
