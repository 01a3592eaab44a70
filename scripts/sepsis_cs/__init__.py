"""sepsis_cs: the importable core of the ICU sepsis corticosteroid workflow.

Every Snakemake script under ``scripts/`` is a thin shell around functions of
this package; the tests import it directly.
"""

__version__ = "0.1.0"
