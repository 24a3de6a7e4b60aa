"""Fit the table of G ``prior`` (and the crystals of G ``forest``) on the training side of the data.

    python crystalgf-baselines/scripts/fit_prior.py --data ../shared/data/crystalgf_constraints/constraints.csv \
        --structures ../shared/data/mp_20_sample/{train,val,test}.csv

writes ``crystalgf-baselines/src/crystalgf_baselines/data/prior.json``: the method's constraint data
and, where given, structure CSVs with Materials Project properties (the MP-20 sample: its symmetry
found by spglib at 0.1 Å). The split is the core's grouped hold-out split by reduced formula
(``crystalgf.datasets.holdout_split``): rows of held-out formulas are never counted, whichever file
they come from. Deterministic: the same CSVs give the same file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from crystalgf_baselines.prior import PACKAGED_TABLE
from crystalgf_baselines.prior_table import fit_prior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="constraints.csv")
    parser.add_argument("--structures", type=Path, nargs="*", default=[],
                        help="structure CSVs (material_id, cif, band_gap, formation_energy_per_atom)")
    parser.add_argument("-o", "--output", type=Path, default=PACKAGED_TABLE)
    args = parser.parse_args()
    table = fit_prior(args.data, args.structures)
    table.save(args.output)
    extra = sum(s["train_rows"] for s in table.source.get("structures", []))
    print(f"wrote {args.output} from {table.source['train_rows']} training rows "
          f"({table.source['skipped_rows']} unreadable rows skipped) and {extra} training structures")


if __name__ == "__main__":
    main()
