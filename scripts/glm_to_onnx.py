"""Convert a logistic glm's coefficients (e.g. from R) into an ONNX model the workflow can apply.

    Rscript -e 'fit <- glm(death ~ age + sex + lactate, family = binomial, data = d);
                write.csv(data.frame(term = names(coef(fit)), estimate = coef(fit)), "coef.csv", row.names = FALSE)'
    python scripts/glm_to_onnx.py coef.csv lab_glm.onnx

The ONNX model has one input per term (mapped in config ``external_models[].inputs``); see
docs/external-models.md.  Not a workflow rule: a one-off export tool.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sepsis_cs.errors import UserInputError  # noqa: E402
from sepsis_cs.external import glm_to_onnx  # noqa: E402
from sepsis_cs.io import read_table  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("coefficients", help="CSV with columns term, estimate (R: names(coef(fit)), coef(fit))")
    ap.add_argument("output", help="ONNX file to write (.onnx)")
    args = ap.parse_args(argv)
    try:
        table = read_table(args.coefficients)
        for col in ("term", "estimate"):
            if col not in table.columns:
                raise UserInputError(args.coefficients, col, "missing column; expected columns term, estimate")
        Path(args.output).write_bytes(glm_to_onnx([str(t) for t in table["term"].to_list()], [float("nan") if v is None else float(v) for v in table["estimate"].to_list()]))
    except UserInputError as exc:
        print(f"ERROR {exc.one_line()}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}: inputs {', '.join(t for t in table['term'].to_list() if t != '(Intercept)')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
