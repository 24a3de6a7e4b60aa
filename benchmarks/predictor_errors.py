"""Errors of the property-predictor plugins against DFT labels, so users know what a surrogate "hit" is worth.

    CRYSTALGF_MATGL_MODELS=../shared/models/matgl python benchmarks/predictor_errors.py --data ../shared/data

MP-20 sample (all 430 rows; Materials Project PBE band gaps and MP2020-corrected formation energies)
and a seeded random sample of Perov-5 test rows (CMR: ``ind_gap`` from GLLB-SC, ``heat_ref``).
Writes ``benchmarks/results/predictor_errors.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path

import numpy as np

from crystalgf.datasets import StructureTable
from crystalgf.manifest import now, package_versions
from crystalgf.plugins import PluginRegistry

RESULTS = Path(__file__).parent / "results"
PREDICTORS = {("megnet-bandgap", "pbe"): "band_gap", ("megnet-bandgap", "gllb-sc"): "band_gap",
              ("megnet-eform", None): "formation_energy_per_atom", ("m3gnet-eform", None): "formation_energy_per_atom"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--perov-rows", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sets = {"mp_20_sample (430)": [e for split in ("train", "val", "test")
                                   for e in StructureTable().read(args.data / "mp_20_sample" / f"{split}.csv").entries]}
    perov = StructureTable().read(args.data / "perov_5" / "test.csv").entries
    sets[f"perov_5 test ({args.perov_rows} of {len(perov)})"] = random.Random(args.seed).sample(perov, args.perov_rows)
    registry = PluginRegistry.discover()
    rows = []
    for (predictor_name, fidelity), prop in PREDICTORS.items():
        predictor = registry.create("predictor", predictor_name, **({"fidelity": fidelity} if fidelity else {}))
        label = f"{predictor_name} ({fidelity})" if fidelity else predictor_name
        for set_name, entries in sets.items():
            labelled = [e for e in entries if prop in e.properties]
            started = time.perf_counter()
            raw = predictor.predict([e.structure for e in labelled])
            seconds = time.perf_counter() - started
            kept = [(p, e.properties[prop]) for p, e in zip(raw, labelled) if p is not None]
            predicted, truth = np.array([p for p, _ in kept]), np.array([t for _, t in kept])
            errors = predicted - truth
            rows.append({"predictor": label, "property": prop, "data": set_name, "n": len(labelled),
                         "unpredicted": len(labelled) - len(kept),
                         "mae": float(np.mean(np.abs(errors))), "median_abs_error": float(np.median(np.abs(errors))),
                         "mean_error": float(np.mean(errors)), "pearson_r": float(np.corrcoef(predicted, truth)[0, 1]),
                         "within_0.05": float(np.mean(np.abs(errors) < 0.05)),
                         "seconds_per_structure": seconds / len(labelled)})
            print(rows[-1])
    report = {"benchmark": "predictor_errors", "date": now(), "seed": args.seed,
              "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores", "versions": package_versions(),
              "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "predictor_errors.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Property predictors against DFT labels", "", f"{report['date']}, {report['hardware']}, seed {args.seed}", "",
             "| predictor | data | n | no prediction | MAE | median abs. error | mean error | Pearson r | within 0.05 | s/structure |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['predictor']} | {r['data']} | {r['n']} | {r['unpredicted']} | {r['mae']:.3f} | {r['median_abs_error']:.3f} | "
              f"{r['mean_error']:+.3f} | {r['pearson_r']:.3f} | {r['within_0.05']:.1%} | {r['seconds_per_structure']:.3f} |"
              for r in rows]
    (RESULTS / "predictor_errors.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
