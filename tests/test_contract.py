"""The contract validator on good and bad inputs."""

import polars as pl
import pytest

from sepsis_cs.contract import CORE_COLUMNS, ContractSettings, validate
from sepsis_cs.errors import ContractError


@pytest.fixture()
def good(sim_small):
    cohort, ts, _ = sim_small
    return cohort, ts


def _validate(cohort, ts, dictionary, **kw):
    return validate(cohort, ts, dictionary, ContractSettings(**kw))


def test_simulated_data_meet_the_contract(good, dictionary):
    cohort, ts, changes = _validate(*good, dictionary)
    assert list(cohort.columns[: len(CORE_COLUMNS)]) == list(CORE_COLUMNS)
    assert cohort["stay_id"].dtype == pl.String and cohort["cs"].dtype == pl.Boolean
    assert cohort["hospital_mortality"].dtype == pl.Int8
    assert changes.height == 0
    assert ts.columns == ["stay_id", "hour", "variable", "value"]


def _msg(excinfo):
    return str(excinfo.value)


@pytest.mark.parametrize(
    "mutate, column, words",
    [
        (lambda c: c.drop("cs"), "cs", "required column is missing"),
        (lambda c: c.rename({"age": "age_years"}), "age", "required column is missing"),
        (lambda c: c.with_columns(pl.lit("x").alias("favourite_colour")), "favourite_colour", "unknown column"),
        (lambda c: c.with_columns(pl.col("age").cast(pl.String)), "age", "expected a numeric column"),
        (lambda c: pl.concat([c, c.head(3)]), "stay_id", "duplicated stay_id"),
        (lambda c: c.with_columns(pl.lit(True).alias("cs"), *(pl.lit(2.0).alias(k) for k in ("cs_start_h", "cs_first_h") if k in c.columns)), "cs", "too small"),
        (lambda c: c.with_columns(pl.lit(0, dtype=pl.Int8).alias("hospital_mortality")), "hospital_mortality", "both outcome classes"),
        (lambda c: c.with_columns(pl.lit(None, dtype=pl.Float64).alias("weight")), "weight", "entirely missing"),
        (lambda c: c.with_columns(pl.when(pl.col("cs")).then(None).otherwise(pl.col("cs_start_h")).alias("cs_start_h")), "cs_start_h", "start hour"),
        (lambda c: c.with_columns(pl.when(pl.col("cs")).then(pl.lit(40.0)).otherwise(None).alias("cs_start_h")), "cs_start_h", "within [0, 24]"),
        (lambda c: c.with_columns(pl.lit("X").alias("sex")), "sex", "expected one of"),
        (lambda c: c.head(0), None, "cohort is empty"),
        (lambda c: c.with_columns(pl.lit(3, dtype=pl.Int64).alias("diabetes")), "diabetes", "binary"),
    ],
)
def test_bad_cohort_gives_one_line_error(good, dictionary, mutate, column, words):
    cohort, ts = good
    with pytest.raises(ContractError) as excinfo:
        _validate(mutate(cohort), ts, dictionary)
    msg = _msg(excinfo)
    assert "\n" not in msg and words in msg
    assert msg.startswith("cohort.parquet")
    if column:
        assert f"column '{column}'" in msg


@pytest.mark.parametrize(
    "mutate, column, words",
    [
        (lambda t: t.drop("value"), "value", "required column is missing"),
        (lambda t: t.with_columns(pl.lit(-30, dtype=pl.Int32).alias("hour")), "hour", "time window"),
        (lambda t: t.with_columns(pl.lit("unobtainium").alias("variable")), "variable", "unknown variable"),
        (lambda t: t.with_columns(pl.lit("999").alias("stay_id")), "stay_id", "in the cohort"),
        (lambda t: pl.concat([t, t.head(2)]), "variable", "duplicates"),
        (lambda t: t.with_columns((pl.col("hour") + 0.5).alias("hour")), "hour", "integer hours"),
        (lambda t: t.with_columns(pl.col("value").cast(pl.String)), "value", "numeric"),
    ],
)
def test_bad_timeseries_gives_one_line_error(good, dictionary, mutate, column, words):
    cohort, ts = good
    with pytest.raises(ContractError) as excinfo:
        _validate(cohort, mutate(ts), dictionary)
    msg = _msg(excinfo)
    assert "\n" not in msg and words in msg and f"column '{column}'" in msg
    assert msg.startswith("timeseries.parquet")


def test_out_of_range_values_are_set_missing_and_counted(good, dictionary):
    cohort, ts = good
    cohort = cohort.with_columns(pl.when(pl.arange(0, pl.len()) < 5).then(-3.0).otherwise(pl.col("age")).alias("age"))
    ts = ts.with_columns(pl.when((pl.col("variable") == "map") & (pl.arange(0, pl.len()) % 100 == 0)).then(900.0).otherwise(pl.col("value")).alias("value"))
    n_bad_map = ts.filter((pl.col("variable") == "map") & (pl.col("value") == 900.0)).height
    c2, t2, changes = _validate(cohort, ts, dictionary)
    assert c2["age"].null_count() == 5
    assert t2.filter(pl.col("value") == 900.0).height == 0
    rec = {(r["column"], r["n"]) for r in changes.iter_rows(named=True)}
    assert ("age", 5) in rec and ("map", n_bad_map) in rec


def test_out_of_range_error_mode(good, dictionary):
    cohort, ts = good
    cohort = cohort.with_columns(pl.when(pl.arange(0, pl.len()) < 5).then(-3.0).otherwise(pl.col("age")).alias("age"))
    with pytest.raises(ContractError, match="column 'age'.*expected values in"):
        _validate(cohort, ts, dictionary, out_of_range="error")


def test_unit_mixup_is_rejected(good, dictionary):
    cohort, ts = good
    fahrenheit = ts.with_columns(
        pl.when(pl.col("variable") == "temperature").then(pl.col("value") * 9 / 5 + 32).otherwise(pl.col("value")).alias("value")
    )
    with pytest.raises(ContractError, match=r"'temperature'.*expected unit degC \(unit mix-up"):
        _validate(cohort, fahrenheit, dictionary)
    pounds = cohort.with_columns((pl.col("weight") * 2.2046).alias("weight"))
    # most weights in pounds stay plausible in kg, so only the implausible share decides
    grams = cohort.with_columns((pl.col("weight") * 1000).alias("weight"))
    with pytest.raises(ContractError, match="column 'weight'.*unit mix-up"):
        _validate(grams, ts, dictionary)
    _validate(pounds, ts, dictionary)  # no error: cannot be told apart, documented limitation


def test_unknown_variables_can_be_dropped(good, dictionary):
    cohort, ts = good
    ts2 = pl.concat([ts, ts.head(4).with_columns(pl.lit("unobtainium").alias("variable"))])
    _, t2, changes = _validate(cohort, ts2, dictionary, unknown_variables="drop")
    assert "unobtainium" not in t2["variable"].to_list()
    assert changes.filter(pl.col("action") == "dropped")["n"].sum() == 4


def test_integer_ids_and_boolean_outcomes_are_accepted(good, dictionary):
    cohort, ts = good
    c = cohort.with_columns(pl.col("stay_id").cast(pl.Int64), pl.col("hospital_mortality").cast(pl.Boolean))
    t = ts.with_columns(pl.col("stay_id").cast(pl.Int64))
    c2, t2, _ = _validate(c, t, dictionary)
    assert c2["stay_id"].dtype == pl.String and c2["hospital_mortality"].dtype == pl.Int8


def test_optional_timing_columns(good, dictionary):
    cohort, ts = good
    timed = cohort.with_columns(
        pl.col("cs_start_h").alias("cs_first_h"),
        (pl.col("icu_los_days") * 24).alias("icu_discharge_h"),
        pl.lit(None, dtype=pl.Float64).alias("death_h"),
    )
    out, _, _ = _validate(timed, ts, dictionary)
    assert out.columns[len(CORE_COLUMNS) : len(CORE_COLUMNS) + 3] == ["cs_first_h", "death_h", "icu_discharge_h"]
    with pytest.raises(ContractError, match="icu_discharge_h.*>= 0"):
        _validate(timed.with_columns(pl.lit(-1.0).alias("icu_discharge_h")), ts, dictionary)
    with pytest.raises(ContractError, match="cs_first_h.*treated"):
        _validate(timed.with_columns((pl.col("cs_first_h") + 0.5).alias("cs_first_h")), ts, dictionary)
