"""Adapters from raw ICU databases (MIMIC-IV, eICU-CRD) to the cohort contract.

``common`` holds the database-independent cohort definition (Sepsis-3 onset, CS exposure,
outcomes, hourly aggregation, hourly SOFA, attrition); ``mimic_iv`` and ``eicu`` read the raw
tables lazily with polars and hand standardised frames to it; ``tables`` lists the raw tables
(imported by the Snakefile, so this package imports nothing heavy at import time).  Every time
inside an adapter is in hours relative to ICU admission until time zero is known.
"""
