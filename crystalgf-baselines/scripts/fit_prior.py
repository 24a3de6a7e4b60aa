"""Fit the table of G ``prior`` on the training side of the method's constraint data.

    python crystalgf-baselines/scripts/fit_prior.py --data ../shared/data/crystalgf_constraints/constraints.csv

writes ``crystalgf-baselines/src/crystalgf_baselines/data/prior.json``. The split is the core's
grouped hold-out split by reduced formula (``crystalgf.datasets.holdout_split``): test rows are
never counted. Deterministic: the same CSV gives the same file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from crystalgf_baselines.prior import PACKAGED_TABLE
from crystalgf_baselines.prior_table import fit_prior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="constraints.csv")
    parser.add_argument("-o", "--output", type=Path, default=PACKAGED_TABLE)
    args = parser.parse_args()
    table = fit_prior(args.data)
    table.save(args.output)
    print(f"wrote {args.output} from {table.source['train_rows']} training rows "
          f"({table.source['skipped_rows']} unreadable rows skipped)")


if __name__ == "__main__":
    main()
