"""Symmetry accuracy of constraint generators on the held-out split of the method's constraint data.

    python benchmarks/g_symmetry_accuracy.py --data ../shared/data/crystalgf_constraints/constraints.csv --g prior random

For each held-out row (``holdout_split(reduced_formula) == "test"``) and each input mode
(formula or elements, with band gap or formation energy) G proposes its top-1 constraint:
- space-group accuracy: the proposed group equals the true one;
- Wyckoff accuracy: G is given the true space group (and, in formula mode, the exact cell),
  then per element the multiset of proposed site labels is matched with the true one; an
  item scores (matched sites) / (sum over elements of max(#proposed, #true)).
Writes ``benchmarks/results/g_symmetry_accuracy.{json,md}`` with date, hardware, versions and seed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from pymatgen.core import Composition
from rich.progress import track

from crystalgf.datasets import ConstraintTable, holdout_split
from crystalgf.errors import CrystalGFError
from crystalgf.manifest import now, package_versions, sha256_file
from crystalgf.plugins import PluginRegistry
from crystalgf.schema import Constraint, GenerationRequest, PropertyTarget
from crystalgf_eval.symmetry_accuracy import wyckoff_accuracy

MODES = {
    "formula+band_gap": ("formula", "band_gap"),
    "formula+formation_energy": ("formula", "formation_energy_per_atom"),
    "elements+band_gap": ("elements", "band_gap"),
    "elements+formation_energy": ("elements", "formation_energy_per_atom"),
}
RESULTS = Path(__file__).parent / "results"


def request(true: Constraint, mode: str, prop: str, value: float, space_group: int | None) -> GenerationRequest:
    composition = {"formula": true.cell_formula, "exact_cell": True} if mode == "formula" else \
        {"elements": sorted(true.counts)}
    return GenerationRequest.from_dict({**composition, "properties": {prop: PropertyTarget(name=prop, value=value)},
                                        "space_group": space_group, "max_atoms": max(20, sum(true.counts.values()))})


def evaluate(generator, entries, seed: int) -> dict[str, dict[str, float]]:
    table = {}
    for name, (mode, prop) in MODES.items():
        sg_hits = wyckoff_sum = failures = 0
        started = time.perf_counter()
        for entry in track(entries, description=f"{generator.name} {name}"):
            true = entry.constraint
            value = entry.properties[prop]
            try:
                [first, *_] = generator.generate([request(true, mode, prop, value, None)], 1, seed)[0]
                sg_hits += first.space_group == true.space_group
                [given_group, *_] = generator.generate([request(true, mode, prop, value, true.space_group)], 1, seed)[0]
                wyckoff_sum += wyckoff_accuracy(given_group, true)
            except CrystalGFError:
                failures += 1
        table[name] = {"space_group_accuracy": sg_hits / len(entries), "wyckoff_accuracy": wyckoff_sum / len(entries),
                       "failed": failures, "seconds": round(time.perf_counter() - started, 1)}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--g", nargs="+", default=["prior", "random"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="first N held-out rows only")
    args = parser.parse_args()
    entries = [e for e in ConstraintTable().read(args.data).entries
               if holdout_split(Composition(e.constraint.counts).reduced_formula) == "test"][: args.limit]
    registry = PluginRegistry.discover()
    results = {g: evaluate(registry.create("g", g), entries, args.seed) for g in args.g}
    report = {"benchmark": "g_symmetry_accuracy", "date": now(), "seed": args.seed,
              "data": {"file": args.data.name, "sha256": sha256_file(args.data), "held_out_rows": len(entries)},
              "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
              "versions": package_versions(), "results": results}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "g_symmetry_accuracy.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# G symmetry accuracy (held-out split, {len(entries)} rows)", "",
             f"{report['date']}, {report['hardware']}, seed {args.seed}; "
             "Wyckoff accuracy given the true space group (and exact cell in formula mode).", "",
             "| G | mode | space-group acc. | Wyckoff acc. | failed | seconds |", "|---|---|---|---|---|---|"]
    for g, table in results.items():
        for mode, row in table.items():
            lines.append(f"| {g} | {mode} | {row['space_group_accuracy']:.1%} | {row['wyckoff_accuracy']:.1%} "
                         f"| {row['failed']} | {row['seconds']} |")
    (RESULTS / "g_symmetry_accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
