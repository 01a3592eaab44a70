# Phase 3: clustering within CS-treated (cs), untreated (no_cs) and pooled stays.
# One cluster_fit job per database x population x method; k grid, consensus resamples, the
# clusterless reference data sets (k = 1 as a candidate) and bootstraps loop inside the job.
# The primary method (rule cluster_primary: config cluster.primary_rule) is characterised,
# matched between cs and no_cs, crossed with treatment and trajectories.


include: "cluster_common.smk"


CLUSTER_POPULATIONS = ["cs", "no_cs", "pooled"]
CLUSTER_METHODS = list(config["cluster"]["methods_run"])
CLUSTER_DIR = "results/{database}/cluster"


add_targets(
    "results/{database}/summary/clustering.json",
    *[f"{CLUSTER_DIR}/{p}/profile_heatmap.png" for p in CLUSTER_POPULATIONS],
    *[f"{CLUSTER_DIR}/{p}/embedding.png" for p in CLUSTER_POPULATIONS],
    *[
        f"{CLUSTER_DIR}/{p}/{m}/evidence.png"
        for p in CLUSTER_POPULATIONS
        for m in CLUSTER_METHODS
    ],
    f"{CLUSTER_DIR}/compare/matching.png",
    f"{CLUSTER_DIR}/treatment/forest.png",
    f"{CLUSTER_DIR}/trajectory/trajectories.png",
)
if len(ANALYSED) >= 2:
    TARGETS.append("results/cluster_replication/replication.csv")


rule cluster_fit:
    """One population x method: consensus over the k grid, silhouette, BIC, chosen k, bootstrap Jaccard."""
    input:
        unpack(_cluster_inputs),
    output:
        labels=f"{CLUSTER_DIR}/{{population}}/{{method}}/labels.parquet",
        fit=f"{CLUSTER_DIR}/{{population}}/{{method}}/fit.json",
        selection=report(
            f"{CLUSTER_DIR}/{{population}}/{{method}}/selection.csv",
            caption=caption("cluster_selection"),
            category="Clustering",
            subcategory="{database}",
            labels={
                "population": "{population}",
                "method": "{method}",
                "table": "choice of k",
            },
        ),
        stability=report(
            f"{CLUSTER_DIR}/{{population}}/{{method}}/stability.csv",
            caption=caption("cluster_stability"),
            category="Clustering",
            subcategory="{database}",
            labels={
                "population": "{population}",
                "method": "{method}",
                "table": "bootstrap stability",
            },
        ),
        figure=report(
            f"{CLUSTER_DIR}/{{population}}/{{method}}/evidence.png",
            caption=caption("cluster_evidence"),
            category="Clustering",
            subcategory="{database}",
            labels={
                "population": "{population}",
                "method": "{method}",
                "figure": "evidence for k",
            },
        ),
    log:
        "results/logs/{database}/cluster_fit_{population}_{method}.log",
    benchmark:
        "results/benchmarks/{database}/cluster_fit_{population}_{method}.tsv"
    wildcard_constraints:
        population="cs|no_cs|pooled",
        method="|".join(CLUSTER_METHODS),
    conda:
        "../../envs/cluster.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        # the null reference repeats the consensus n_ref times: minutes grow with (1 + n_ref)
        runtime=_fit_runtime(),
    params:
        **config_params("cluster", "min_cell_count", "seed"),
    script:
        "../../scripts/cluster_fit.py"


rule cluster_primary:
    """The primary method by the truth-free rule of the config (cluster.primary_rule); its labels per population."""
    input:
        unpack(_primary_inputs),
    output:
        info=f"{CLUSTER_DIR}/primary.json",
        **{
            f"labels_{p}": f"{CLUSTER_DIR}/{p}/primary/labels.parquet"
            for p in CLUSTER_POPULATIONS
        },
    log:
        log_path("cluster_primary"),
    benchmark:
        bench_path("cluster_primary")
    conda:
        "../../envs/cluster.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        **config_params("cluster"),
    script:
        "../../scripts/cluster_primary.py"


rule cluster_characterise:
    """Profiles, SMDs, outcome rates, PCA/t-SNE per population; CS vs no-CS matching and traits."""
    input:
        unpack(_characterise_inputs),
    output:
        **_characterise_outputs(),
        matches=report(
            f"{CLUSTER_DIR}/compare/matches.csv",
            caption=caption("cluster_matches"),
            category="Clustering",
            subcategory="{database}",
            labels={"population": "cs vs no_cs", "table": "matched clusters"},
        ),
        traits=report(
            f"{CLUSTER_DIR}/compare/traits.csv",
            caption=caption("cluster_traits"),
            category="Clustering",
            subcategory="{database}",
            labels={
                "population": "cs vs no_cs",
                "table": "shared and specific traits",
            },
        ),
        matching=report(
            f"{CLUSTER_DIR}/compare/matching.png",
            caption=caption("cluster_matches"),
            category="Clustering",
            subcategory="{database}",
            labels={"population": "cs vs no_cs", "figure": "matching"},
        ),
    log:
        log_path("cluster_characterise"),
    benchmark:
        bench_path("cluster_characterise")
    conda:
        "../../envs/cluster.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        **config_params("cluster", "min_cell_count", "seed"),
    script:
        "../../scripts/cluster_characterise.py"


rule cluster_treatment:
    """CS vs no-CS outcome difference per pooled cluster (IPTW, bootstrap CIs) and the cs x cluster interaction test."""
    input:
        unpack(_treatment_inputs),
    output:
        table=report(
            f"{CLUSTER_DIR}/treatment/effects.csv",
            caption=caption("cluster_treatment"),
            category="Clustering",
            subcategory="{database}",
            labels={"population": "pooled", "table": "CS effect by cluster"},
        ),
        test=f"{CLUSTER_DIR}/treatment/interaction.json",
        figure=report(
            f"{CLUSTER_DIR}/treatment/forest.png",
            caption=caption("cluster_treatment"),
            category="Clustering",
            subcategory="{database}",
            labels={"population": "pooled", "figure": "CS effect by cluster"},
        ),
    log:
        log_path("cluster_treatment"),
    benchmark:
        bench_path("cluster_treatment")
    conda:
        "../../envs/cluster.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        **config_params("cluster", "min_cell_count", "outcome", "seed"),
    script:
        "../../scripts/cluster_treatment.py"


rule cluster_trajectory:
    """k-means on binned hourly trajectories after time zero; cross-tab with the static pooled clusters."""
    input:
        timeseries="results/{database}/data/timeseries.parquet",
        labels=f"{CLUSTER_DIR}/pooled/primary/labels.parquet",
    output:
        labels=f"{CLUSTER_DIR}/trajectory/labels.parquet",
        summary=f"{CLUSTER_DIR}/trajectory/trajectory.json",
        selection=f"{CLUSTER_DIR}/trajectory/selection.csv",
        crosstab=report(
            f"{CLUSTER_DIR}/trajectory/crosstab.csv",
            caption=caption("cluster_trajectory"),
            category="Clustering",
            subcategory="{database}",
            labels={"population": "pooled", "table": "static x trajectory clusters"},
        ),
        figure=report(
            f"{CLUSTER_DIR}/trajectory/trajectories.png",
            caption=caption("cluster_trajectory"),
            category="Clustering",
            subcategory="{database}",
            labels={"population": "pooled", "figure": "trajectory clusters"},
        ),
    log:
        log_path("cluster_trajectory"),
    benchmark:
        bench_path("cluster_trajectory")
    conda:
        "../../envs/cluster.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        **config_params("cluster", "min_cell_count", "seed"),
        time_window=lambda wc: time_window_of(wc.database),
        resolution=lambda wc: resolution_of(wc.database),
    script:
        "../../scripts/cluster_trajectory.py"


rule cluster_summary:
    """Headline numbers of the clustering phase (chosen k, PAC, ARI vs truth on simulated data)."""
    input:
        unpack(_summary_inputs),
    output:
        summary="results/{database}/summary/clustering.json",
    log:
        log_path("cluster_summary"),
    benchmark:
        bench_path("cluster_summary")
    conda:
        "../../envs/cluster.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        **config_params("cluster", "outcome", "min_cell_count"),
    script:
        "../../scripts/cluster_summary.py"


rule cluster_replication:
    """Classifier of the pooled cluster labels trained in one analysed database, applied to each other one."""
    input:
        features=expand(
            "results/{database}/features/stay_features.parquet", database=ANALYSED
        ),
        cohorts=expand("results/{database}/data/cohort.parquet", database=ANALYSED),
        labels=expand(
            "results/{database}/cluster/pooled/primary/labels.parquet",
            database=ANALYSED,
        ),
        dictionary=DICTIONARY,
    output:
        table=report(
            "results/cluster_replication/replication.csv",
            caption=caption("cluster_replication"),
            category="Clustering",
            subcategory="replication",
            labels={"table": "replication across databases"},
        ),
    log:
        "results/logs/cluster_replication.log",
    benchmark:
        "results/benchmarks/cluster_replication.tsv"
    conda:
        "../../envs/cluster.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        **config_params("cluster", "seed"),
        databases=ANALYSED,
    script:
        "../../scripts/cluster_replication.py"
