"""Physical plausibility of H's structures (issue #21), with the true constraints of a test split.

    python benchmarks/plausibility.py                    # MP-20 sample test, then Perov-5 test; default H
    python benchmarks/plausibility.py --test ../shared/data/mp_20_sample/test.csv --label raw \\
        --h-option cleanup=false --h-option retries=0    # the model's own first draws
    python benchmarks/plausibility.py --test ../shared/data/mp_20_sample/test.csv --g forest
                                                         # G's first constraint instead of the true one

Each test structure's composition, space group and Wyckoff sites (PyXtal's standard setting, as in
``diffusion_csp.py``) are given to H with its properties as targets, one structure each, seed = row
index + ``--seed``; with ``--g NAME`` H gets G's first constraint for the row's reduced formula and band gap
(as ``crystalgf run --formula F --band-gap X`` asks; a request G cannot answer counts as failed).
Reported per run: structures H did not make (``failed``: the diffusion H finds no
plausible draw within its redraws), structures with a pair closer than 0.7 x the sum of the covalent radii
(:mod:`crystalgf.validity`; the failed ones counted as implausible too), structures with a pair closer than
1.0 Å, files that do not read back (each made structure written as CIF and as an extended XYZ frame and read
with pymatgen and ASE, composition compared: :func:`crystalgf.output.check_readable`), match rate and RMSE
(StructureMatcher stol=0.5, angle_tol=10, ltol=0.3; a failed structure is unmatched), the group shown at
0.1 Å, and the wall-clock and CPU seconds of ``generate`` per 100 structures with the load average of the
machine. Writes ``benchmarks/results/plausibility_<data>[_<label>].{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path
from typing import Any

from ase.io import write as ase_write
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.cif import CifWriter
from rich.progress import track

from common import DATA, generate_structures, hardware, run, write_results
from crystalgf.config import DEFAULT_H, parse_options
from crystalgf.errors import CrystalGFError
from crystalgf.manifest import now, package_versions, sha256_file
from crystalgf.output import check_readable
from crystalgf.plugins import PluginRegistry
from crystalgf.symmetry.detect import detect_space_group
from crystalgf.validity import PLAUSIBLE_RATIO, plausibility
from crystalgf_eval.metrics.matching import matcher
from diffusion_csp import true_pairs

TEST_SETS = [DATA / "mp_20_sample" / "test.csv", DATA / "perov_5" / "test.csv"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", type=Path, nargs="+", default=TEST_SETS)
    parser.add_argument("--h", default=DEFAULT_H)
    parser.add_argument("--h-option", action="append", default=[], help="KEY=VALUE for H, e.g. cleanup=false")
    parser.add_argument("--g", default=None, help="G whose first constraint H gets instead of the true one")
    parser.add_argument("--label", default="", help="a suffix of the results file for runs with options")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="a remark for the table, e.g. that other jobs shared the CPU")
    args = parser.parse_args()
    options = parse_options(tuple(args.h_option)) or {}
    registry = PluginRegistry.discover()
    for test in args.test:
        benchmark(registry, test, args.h, options, args.label or (f"g-{args.g}" if args.g else ""), args.limit,
                  args.seed, args.note, args.g)


def g_pairs(registry, g: str, pairs: list, seed: int) -> list:
    """(entry, G's first constraint or None) for each (entry, true constraint), asked as formula + band gap."""
    from common import top1
    from crystalgf.schema import GenerationRequest, PropertyTarget

    requests = [GenerationRequest(request_id=str(i), formula=entry.structure.composition.reduced_formula,
                                  properties={"band_gap": PropertyTarget(name="band_gap", value=entry.properties["band_gap"])}
                                  if "band_gap" in entry.properties else {})
                for i, (entry, _) in enumerate(pairs)]
    generator = registry.create("g", g)
    found = []
    for start in track(range(0, len(requests), 16), description=f"G {g}"):
        found += top1(generator, requests[start:start + 16], seed)
    return [(entry, constraint) for (entry, _), constraint in zip(pairs, found)]


def benchmark(registry, test: Path, name: str, options: dict[str, Any], label: str, limit: int | None, seed: int,
              note: str, g: str | None = None) -> None:
    entries, pairs = true_pairs(test, limit)
    if g is not None:
        pairs = g_pairs(registry, g, pairs, seed)
    generator = registry.create("h", name, **options)
    settings = {key: getattr(generator, key) for key in ("steps", "noise", "retries", "cleanup", "guidance")
                if hasattr(generator, key)}
    weights = generator.weights_files()
    load_before = os.getloadavg()
    started, cpu = time.perf_counter(), time.process_time()
    made = generate_structures(generator, [c for _, c in pairs], [seed + i for i in range(len(pairs))])
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    load_after = os.getloadavg()
    row = {"h": name, "options": options, "g": g, "g_failed": sum(c is None for _, c in pairs), "settings": settings, **score(pairs, made),
           "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
           "seconds_per_100": round(100 * seconds / len(pairs), 1),
           "cpu_seconds_per_100": round(100 * cpu_seconds / len(pairs), 1),
           "load_average_1min": [round(load_before[0], 2), round(load_after[0], 2)]}
    stem = f"plausibility_{test.parent.name}" + ("" if test.stem == "test" else f"_{test.stem}") + \
        (f"_{label}" if label else "") + (f"_first{limit}" if limit else "")
    report = {"benchmark": "plausibility", "date": now(), "seed": seed, "hardware": hardware(),
              "test": {"file": str(test), "sha256": sha256_file(test), "rows": len(entries), "usable": len(pairs)},
              "weights": {Path(p).parent.name: sha256_file(p) for p in weights}, "versions": package_versions(),
              "note": note, "rows": [row]}
    r = row
    lines = [f"# Plausibility of H's structures with true constraints: {test.parent.name}/{test.name}", "",
             f"{report['date']}, {report['hardware']}, seed {seed}, {len(pairs)} of {len(entries)} test rows; " +
             (f"G {g}'s first constraint for the formula and band gap ({row['g_failed']} requests unanswered), " if g
              else "true constraints, ") + f"H {name} {settings}" + (f", weights {', '.join(report['weights'])}" if weights else "") +
             (f". {note}" if note else ""), "",
             f"Implausible: a pair closer than {PLAUSIBLE_RATIO} x the sum of its covalent radii, or no structure "
             "(H found no plausible draw). Unreadable: a CIF or extended XYZ frame that pymatgen or ASE does not "
             "read back with the same composition.", "",
             "| structures | failed (no structure) | implausible | pair < 1.0 Å | unreadable files | match rate | RMSE "
             "| space group @0.1 | s per 100 (wall) | CPU s per 100 | load average (1 min, before/after) |",
             "|---|---|---|---|---|---|---|---|---|---|---|",
             f"| {r['structures']} | {r['failed']} ({r['failed'] / r['structures']:.1%}) | "
             f"{r['implausible']} ({r['implausible_share']:.1%}) | {r['closer_than_1A']} | {r['unreadable_files']} | "
             f"{r['match_rate']:.2%} | {_number(r['rmse'])} | {r['space_group@0.1']:.1%} | {r['seconds_per_100']} | "
             f"{r['cpu_seconds_per_100']} | {r['load_average_1min'][0]} / {r['load_average_1min'][1]} |"]
    write_results(stem, report, lines)
    print("\n".join(lines))


def score(pairs, made) -> dict[str, Any]:
    structure_matcher = matcher()
    failed = implausible = close = unreadable = matched = shown = 0
    rms, ratios = [], []
    for (entry, constraint), structure in track(list(zip(pairs, made)), description="scoring"):
        if structure is None:
            failed += 1
            implausible += 1
            continue
        check = plausibility(structure)
        ratios.append(check.ratio)
        implausible += not check.plausible
        close += check.distance < 1.0
        unreadable += sum(not readable(structure, fmt) for fmt in ("cif", "extxyz"))
        shown += constraint is not None and detect_space_group(structure, 0.1) == constraint.space_group
        distance = structure_matcher.get_rms_dist(structure, entry.structure)
        if distance is not None:
            matched += 1
            rms.append(distance[0])
    n = len(pairs)
    ratios.sort()
    return {"structures": n, "failed": failed, "implausible": implausible, "implausible_share": implausible / n,
            "closer_than_1A": close, "unreadable_files": unreadable, "match_rate": matched / n,
            "rmse": sum(rms) / len(rms) if rms else None, "space_group@0.1": shown / n,
            "min_distance_ratio": {"min": ratios[0], "median": ratios[len(ratios) // 2]} if ratios else None}


def readable(structure, structure_format: str) -> bool:
    """Whether the structure's CIF (or extended XYZ frame) reads back in pymatgen and ASE as its composition."""
    import io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if structure_format == "cif":
            text = str(CifWriter(structure))
        else:
            frame = io.StringIO()
            ase_write(frame, AseAtomsAdaptor.get_atoms(structure), format="extxyz")
            text = frame.getvalue()
        try:
            check_readable(text, structure_format, structure)
        except CrystalGFError:
            return False
    return True


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    run(main)
