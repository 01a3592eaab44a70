# Phase 5 helpers: configured transfer pairs, input functions and final targets (rules in transfer.smk).

TRANSFER = config.get("transfer", {})
TRANSFER_PAIRS = [
    (p["source"], p["target"])
    for p in TRANSFER.get("pairs", [])
    if p["source"] in config["databases"] and p["target"] in config["databases"]
]
for _p in TRANSFER.get("pairs", []):
    for _role in ("source", "target"):
        if _p[_role] not in config["databases"]:
            sys.exit(
                f"ERROR config: key 'transfer.pairs': {_role} '{_p[_role]}' is not a configured database"
            )
    if _p["source"] == _p["target"]:
        sys.exit(
            f"ERROR config: key 'transfer.pairs': source and target are both '{_p['source']}'"
        )
TRANSFER_SOURCES = sorted({s for s, _ in TRANSFER_PAIRS})
TRANSFER_TARGETS = sorted({t for _, t in TRANSFER_PAIRS})
TRANSFER_STRATEGIES = list(TRANSFER.get("strategies", []))
TRANSFER_SELECTED = "results/{database}/analyse/selected_features.json"


def _transfer_rule_makes(pattern):
    return any(str(o) == pattern for r in workflow.rules for o in r.output)


def transfer_selected_input(wc):
    """The target's selected features when config `transfer.features: selected` (and the workflow makes them)."""
    if TRANSFER.get("features") == "selected" and _transfer_rule_makes(
        TRANSFER_SELECTED
    ):
        return {"selected": TRANSFER_SELECTED.format(database=wc.target)}
    return {}


def transfer_pair_inputs(wc):
    return {
        "source_features": f"results/{wc.source}/features/stay_features.parquet",
        "source_cohort": f"results/{wc.source}/data/cohort.parquet",
        "target_features": f"results/{wc.target}/features/stay_features.parquet",
        "target_cohort": f"results/{wc.target}/data/cohort.parquet",
        "dictionary": dictionary_of(wc.target),
    }


for _s, _t in TRANSFER_PAIRS:
    TARGETS.extend(
        [
            f"results/transfer/{_s}__{_t}/summary.json",
            f"results/transfer/{_s}__{_t}/learning_curve.png",
        ]
    )
