# Input functions of the cluster rules (kept apart from the rules, as snakemake --lint asks).


def _selected(wildcards):
    """Selected-feature list when cluster.features is 'selected' (else no extra input)."""
    if config["cluster"]["features"] == "selected":
        return {
            "selected": f"results/{wildcards.database}/analyse/selected_features.json"
        }
    return {}


def _fit_runtime():
    """SLURM minutes of a cluster_fit job: 30 at the default settings, scaled by the consensus runs (1 + n_ref) x resamples x panel."""
    c = config["cluster"]
    runs = 1 + int(c.get("null_reference", {}).get("n_ref", 0))
    work = runs * int(c["consensus"]["n_resamples"]) * int(c["consensus"]["max_items"])
    return max(30, int(30 * work / (5 * 15 * 400)))


def _cluster_inputs(wildcards):
    return {
        "features": f"results/{wildcards.database}/features/stay_features.parquet",
        "cohort": f"results/{wildcards.database}/data/cohort.parquet",
        "dictionary": dictionary_of(wildcards.database),
        **_selected(wildcards),
    }


def _has_rule(name):
    try:
        getattr(rules, name)
        return True
    except Exception:
        return False


def _characterise_outputs():
    """Per-population profile tables and figures (one job characterises all three populations)."""
    out = {}
    items = [
        ("profile", "profile.csv", "cluster_profile", "table", "cluster profiles"),
        (
            "separating",
            "separating_variables.csv",
            "cluster_separating",
            "table",
            "separating variables",
        ),
        ("outcomes", "outcomes.csv", "cluster_outcomes", "table", "outcome rates"),
        (
            "heatmap",
            "profile_heatmap.png",
            "cluster_profile_heatmap",
            "figure",
            "profile heatmap",
        ),
        ("embedding", "embedding.png", "cluster_embedding", "figure", "2-D embedding"),
    ]
    for pop in CLUSTER_POPULATIONS:
        for key, name, cap, kind, label in items:
            out[f"{key}_{pop}"] = report(
                f"{CLUSTER_DIR}/{pop}/{name}",
                caption=caption(cap),
                category="Clustering",
                subcategory="{database}",
                labels={"population": pop, kind: label},
            )
    return out


def _primary_methods():
    """Methods the primary-method choice may pick: the fixed one, or every method (null_evidence)."""
    if config["cluster"].get("primary_rule", "fixed") == "fixed":
        return [config["cluster"]["primary_method"]]
    return CLUSTER_METHODS


def _primary_inputs(wildcards):
    base = f"results/{wildcards.database}/cluster"
    methods = _primary_methods()
    return {
        "fits": [f"{base}/pooled/{m}/fit.json" for m in methods],
        "labels": [
            f"{base}/{p}/{m}/labels.parquet"
            for p in CLUSTER_POPULATIONS
            for m in methods
        ],
    }


def _characterise_inputs(wildcards):
    base = f"results/{wildcards.database}/cluster"
    return {
        **_cluster_inputs(wildcards),
        "primary": f"{base}/primary.json",
        **{
            f"labels_{p}": f"{base}/{p}/primary/labels.parquet"
            for p in CLUSTER_POPULATIONS
        },
    }


def _treatment_inputs(wildcards):
    d = {
        "cohort": f"results/{wildcards.database}/data/cohort.parquet",
        "labels": f"results/{wildcards.database}/cluster/pooled/primary/labels.parquet",
        "dictionary": dictionary_of(wildcards.database),
    }
    # the shared propensity model (rule propensity_model) when the workflow has it
    if config["cluster"]["treatment"]["propensity"] == "shared" and _has_rule(
        "propensity_model"
    ):
        d["propensity"] = f"results/{wildcards.database}/analyse/propensity.parquet"
    return d


def _summary_inputs(wildcards):
    base = f"results/{wildcards.database}/cluster"
    d = {
        "fits": [
            f"{base}/{p}/{m}/fit.json"
            for p in CLUSTER_POPULATIONS
            for m in CLUSTER_METHODS
        ],
        "pooled_labels": [f"{base}/pooled/{m}/labels.parquet" for m in CLUSTER_METHODS],
        "primary": f"{base}/primary.json",
        "primary_pooled": f"{base}/pooled/primary/labels.parquet",
        "traits": f"{base}/compare/traits.csv",
        "treatment": f"{base}/treatment/interaction.json",
        "trajectory": f"{base}/trajectory/trajectory.json",
        "matches": f"{base}/compare/matches.csv",
        "pooled_profile": f"{base}/pooled/profile.csv",
        "pooled_outcomes": f"{base}/pooled/outcomes.csv",
        "dictionary": dictionary_of(wildcards.database),
    }
    if wildcards.database in SIMULATED:  # validation against the planted phenotypes
        d["truth"] = f"results/{wildcards.database}/truth/truth.parquet"
    return d
