# Input functions of the target-trial rule (kept apart from the rule, as snakemake --lint asks).


def _trial_cluster_labels(wildcards):
    """The only dependency on the clustering phase: its primary pooled labels (rule cluster_primary), when the phase runs."""
    try:
        getattr(rules, "cluster_primary")
    except Exception:
        return {}
    return {
        "clusters": f"results/{wildcards.database}/cluster/pooled/primary/labels.parquet"
    }


def target_trial_inputs(wildcards):
    """Cluster labels (if any) and, on simulated databases, the truth table."""
    extra = dict(_trial_cluster_labels(wildcards))
    if db_type(wildcards.database) == "simulated":
        extra["truth"] = f"results/{wildcards.database}/truth/truth.parquet"
    return extra
