"""Structure prediction with ground-truth constraints (the method's Table 2 task) for H plugins.

    python benchmarks/diffusion_csp.py --test ../shared/data/perov_5/test.csv --h diffusion pyxtal --steps 100

Each test structure's composition, space group and Wyckoff sites (PyXtal's standard setting) are
given to H, with its properties as targets; the generated structure is compared with the true one:
match rate and RMSE (StructureMatcher stol=0.5, angle_tol=10, ltol=0.3, no validity filter; RMSE
= mean normalised RMS over matched pairs), exact composition, space group by spglib at 0.1 and 0.01,
and throughput. Writes ``benchmarks/results/csp_<data>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from pymatgen.core import Composition
from rich.progress import track

from crystalgf.datasets import StructureTable
from crystalgf.formula import format_formula
from crystalgf.manifest import now, package_versions, sha256_file
from crystalgf.plugins import PluginRegistry
from crystalgf.schema import Constraint, PropertyTarget
from crystalgf.symmetry.detect import detect_space_group
from crystalgf_diffusion.data import encode_structure
from crystalgf_eval.metrics.matching import matcher

RESULTS = Path(__file__).parent / "results"


def true_constraint(entry) -> Constraint:
    sample = encode_structure(entry.structure)
    counts: dict[str, int] = {}
    for element, label in sample.orbits:
        counts[element] = counts.get(element, 0) + int(label[:-1])
    return Constraint(formula=format_formula(counts), space_group=sample.space_group, wyckoff=sample.orbits,
                      properties={k: PropertyTarget(name=k, value=v) for k, v in entry.properties.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--h", nargs="+", default=["diffusion", "pyxtal"])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    entries = StructureTable().read(args.test, limit=args.limit).entries
    pairs = []
    for entry in track(entries, description="true constraints"):
        try:
            pairs.append((entry, true_constraint(entry)))
        except Exception:  # noqa: BLE001 - counted below
            continue
    registry = PluginRegistry.discover()
    structure_matcher = matcher()
    rows = []
    for name in args.h:
        options = {"steps": args.steps, **({"checkpoint": args.checkpoint} if args.checkpoint else {})} \
            if name.startswith("diffusion") else {}
        generator = registry.create("h", name, **options)
        started = time.perf_counter()
        generated = generator.generate([c for _, c in pairs], [args.seed + i for i in range(len(pairs))])
        seconds = time.perf_counter() - started
        matched, rms, exact, group_01, group_001 = 0, [], 0, 0, 0
        for (entry, constraint), structure in track(list(zip(pairs, generated)), description=f"scoring {name}"):
            if structure is None:
                continue
            exact += structure.composition == Composition(constraint.counts)
            group_01 += detect_space_group(structure, 0.1) == constraint.space_group
            group_001 += detect_space_group(structure, 0.01) == constraint.space_group
            distance = structure_matcher.get_rms_dist(structure, entry.structure)
            if distance is not None:
                matched += 1
                rms.append(distance[0])
        n = len(pairs)
        rows.append({"h": name, "options": options, "structures": n, "match_rate": matched / n,
                     "rmse": sum(rms) / len(rms) if rms else None, "exact_composition": exact / n,
                     "space_group@0.1": group_01 / n, "space_group@0.01": group_001 / n,
                     "seconds": round(seconds, 1), "structures_per_second": n / seconds})
        print(rows[-1])
    checkpoint = generator_checkpoint(args.checkpoint)
    report = {"benchmark": "csp", "date": now(), "seed": args.seed, "test": {"file": str(args.test),
              "sha256": sha256_file(args.test), "rows": len(entries), "usable": len(pairs)},
              "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
                          f"({torch.get_num_threads()} threads), no GPU" if not torch.cuda.is_available()
              else torch.cuda.get_device_name(), "checkpoint": checkpoint, "versions": package_versions(), "rows": rows}
    stem = f"csp_{args.test.parent.name}" + (f"_first{args.limit}" if args.limit else "")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# Structure prediction with true constraints: {args.test.parent.name}/{args.test.name}", "",
             f"{report['date']}, {report['hardware']}, seed {args.seed}, {len(pairs)} of {len(entries)} test rows; "
             f"checkpoint {checkpoint}", "",
             "| H | match rate | RMSE | exact composition | space group @0.1 | @0.01 | structures/s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['h']} {r['options'] or ''} | {r['match_rate']:.2%} | {_number(r['rmse'])} | "
              f"{r['exact_composition']:.1%} | {r['space_group@0.1']:.1%} | {r['space_group@0.01']:.1%} | "
              f"{r['structures_per_second']:.1f} |" for r in rows]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def generator_checkpoint(path: str | None) -> dict[str, str]:
    from crystalgf_diffusion.generator import DiffusionGenerator

    try:
        generator = DiffusionGenerator(checkpoint=path)
    except Exception:  # noqa: BLE001 - no checkpoint: nothing to record
        return {}
    weights = generator.weights_files()[0]
    return {"path": str(weights.parent), "sha256": sha256_file(weights)}


if __name__ == "__main__":
    main()
