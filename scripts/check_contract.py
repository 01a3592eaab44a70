#!/usr/bin/env python3
"""Check a database's contract files in one pass, without Snakemake; or write starter files.

    scripts/check_contract.py --cohort cohort.csv --timeseries timeseries.csv [--config my.yaml] [--mapping m.yaml]
    scripts/check_contract.py --config my.yaml --database my_icu [--suggest suggested.yaml] [--problems problems.csv]
    scripts/check_contract.py --starter starter/

Exit status 0 when the pair meets the contract, 1 otherwise; every problem is printed on one line
(file, column, expected, rows, an example value, the fix).  See docs/bring-your-database.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sepsis_cs.check_cli import cli

if __name__ == "__main__":
    sys.exit(cli())
