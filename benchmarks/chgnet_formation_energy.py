"""Formation energies on the MP2020 scale without any download: ``chgnet-eform`` (CHGNet energy minus the
packaged MP elemental references), as given and after a CHGNet relaxation, beside ``megnet-eform``, against
the Materials Project ``formation_energy_per_atom`` labels of all 430 MP-20 sample rows (train, val, test).

    python benchmarks/chgnet_formation_energy.py --data ../shared/data [--threads 1] [--limit N]

Both models were trained on Materials Project data that contain these crystals (CHGNet on MPtrj, the
2018 MEGNet model on MP 2018.6.1): the errors say how well a predictor reproduces the labels' scale, not
how it generalises. Writes ``benchmarks/results/chgnet_formation_energy.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from crystalgf.datasets import StructureTable
from crystalgf.manifest import now, package_versions
from crystalgf.plugins import PluginRegistry

RESULTS = Path(__file__).parent / "results"
SPLITS = ("train", "val", "test")
PREDICTORS = {
    "megnet-eform": ("megnet-eform", {}),
    "chgnet-eform (as given)": ("chgnet-eform", {}),
    "chgnet-eform (relaxed: steps=300, fmax=0.1, symmetry kept)": ("chgnet-eform", {"steps": 300, "fmax": 0.1}),
}


def statistics(predicted: list[float | None], truth: list[float]) -> dict[str, float | int]:
    kept = [(p, t) for p, t in zip(predicted, truth) if p is not None]
    p, t = np.array([p for p, _ in kept]), np.array([t for _, t in kept])
    errors = p - t
    return {"n": len(truth), "unpredicted": len(truth) - len(kept), "mae": float(np.mean(np.abs(errors))),
            "median_abs_error": float(np.median(np.abs(errors))), "mean_error": float(np.mean(errors)),
            "rmse": float(np.sqrt(np.mean(errors ** 2))), "pearson_r": float(np.corrcoef(p, t)[0, 1]),
            "within_0.05": float(np.mean(np.abs(errors) < 0.05)), "within_0.1": float(np.mean(np.abs(errors) < 0.1))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--threads", type=int, help="torch CPU threads [default: torch's]")
    parser.add_argument("--limit", type=int, help="rows per split (a quick run)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [(split, entry) for split in SPLITS
            for entry in StructureTable().read(args.data / "mp_20_sample" / f"{split}.csv", limit=args.limit).entries]
    structures = [e.structure for _, e in rows]
    truth = [e.properties["formation_energy_per_atom"] for _, e in rows]
    registry = PluginRegistry.discover()
    report = {"benchmark": "chgnet_formation_energy", "date": now(), "seed": 0, "deterministic": True,
              "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
                          f"torch {torch.__version__} ({torch.get_num_threads()} threads)",
              "load_average_at_start": os.getloadavg()[0], "versions": package_versions(),
              "data": f"mp_20_sample train+val+test ({len(rows)} rows)", "rows": []}
    for label, (name, options) in PREDICTORS.items():
        predictor = registry.create("predictor", name, **options)
        started = time.perf_counter()
        predicted = predictor.predict(structures)
        seconds = time.perf_counter() - started
        row = {"predictor": label, "plugin": name, "options": options, "seconds_per_structure": seconds / len(rows),
               "all": statistics(predicted, truth),
               **{split: statistics([p for p, (s, _) in zip(predicted, rows) if s == split],
                                    [t for t, (s, _) in zip(truth, rows) if s == split]) for split in SPLITS}}
        report["rows"].append(row)
        print(label, json.dumps(row["all"]), f"{row['seconds_per_structure']:.3f} s/structure", flush=True)
    report["load_average_at_end"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chgnet_formation_energy.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Formation energy per atom against MP labels (MP-20 sample, all splits)", "",
             f"{report['date']}, {report['hardware']}, load average {report['load_average_at_start']:.1f} "
             f"(other jobs shared the CPU), deterministic (seed 0 recorded), {report['data']}", "",
             "| predictor | n | no prediction | MAE (eV/atom) | median abs. error | mean error | RMSE | Pearson r "
             "| within 0.05 | within 0.1 | MAE train / val / test | s/structure |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        a = r["all"]
        lines.append(f"| {r['predictor']} | {a['n']} | {a['unpredicted']} | {a['mae']:.3f} | {a['median_abs_error']:.3f} | "
                     f"{a['mean_error']:+.3f} | {a['rmse']:.3f} | {a['pearson_r']:.3f} | {a['within_0.05']:.1%} | "
                     f"{a['within_0.1']:.1%} | " + " / ".join(f"{r[s]['mae']:.3f}" for s in SPLITS) +
                     f" | {r['seconds_per_structure']:.2f} |")
    lines += ["", "Both models were trained on Materials Project data containing these crystals (CHGNet: MPtrj; "
              "MEGNet: MP 2018.6.1), so these errors measure the scale of each predictor, not how it generalises."]
    (RESULTS / "chgnet_formation_energy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
