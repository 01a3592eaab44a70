# Input functions of the supervised rules (kept apart from the rules, as snakemake --lint asks).


def _rule_makes(pattern):
    """True when some rule of the workflow (e.g. another phase) declares ``pattern`` as output."""
    import re

    for r in workflow.rules:
        for o in r.output:
            if re.sub(r"\{(\w+),[^}]*\}", r"{\1}", str(o)) == pattern:
                return True
    return False


def _cluster_labels_pattern():
    """Pooled labels (`stay_id, cluster`) of the clustering phase's primary solution, when it runs."""
    if any(r.name == "cluster_primary" for r in workflow.rules):
        return "results/{database}/cluster/pooled/primary/labels.parquet"
    return None


def fold_selection_input(wc):
    """`features: selected`: the selection re-run inside each outer training fold (rule supervised_selection)."""
    if config.get("features") != "selected":
        return {}
    return {"fold_selection": FOLD_SELECTION.format(database=wc.database)}


def cate_selected_input(wc):
    """Phase 2's selection (all stays; exploratory), only when `supervised.cate.features` is `selected`."""
    if SUP.get("cate", {}).get("features", "all") != "selected":
        return []
    if config.get("features") != "selected" or not _rule_makes(SELECTED_FEATURES):
        return []
    return SELECTED_FEATURES.format(database=wc.database)


def propensity_input(wc):
    """Phase 2's propensity when the workflow produces it; else cate.py cross-fits its own."""
    return PROPENSITY.format(database=wc.database) if _rule_makes(PROPENSITY) else []


def _fitted_here(database):
    """Fitted external models (external.smk) applied to ``database``."""
    return [m for m in FITTED_MODELS.values() if database in m.databases]


def external_inputs(wc):
    """Prediction files of external models for this database: config files, fitted models' predictions
    (rule external_model_apply), APACHE IV on eICU."""
    files = [m["path"] for m in EXTERNAL_FILES if m["database"] == wc.database]
    files += [
        f"{FITTED_DIR}/predictions.parquet".format(
            database=wc.database, external=m.name
        )
        for m in _fitted_here(wc.database)
    ]
    if db_type(wc.database) == "eicu":
        files.append(f"results/{wc.database}/external/apache_iv.csv")
    return files


def external_names(wc):
    names = [m.get("name") for m in EXTERNAL_FILES if m["database"] == wc.database]
    names += [m.name for m in _fitted_here(wc.database)]
    if db_type(wc.database) == "eicu":
        names.append("apache_iv")
    return names


def external_applied_inputs(wc):
    """Application summaries (applied / not applicable counts) of the fitted models on this database."""
    return [
        f"{FITTED_DIR}/application.json".format(database=wc.database, external=m.name)
        for m in _fitted_here(wc.database)
    ]


def truth_input(wc):
    return (
        f"results/{wc.database}/truth/truth.parquet" if wc.database in SIMULATED else []
    )


def labels_input(wc):
    return CLUSTER_LABELS.format(database=wc.database) if CLUSTER_LABELS else []
