"""Speed of a whole ranked run (``crystalgf rank``) on this machine, and where the relaxation spends its time.

    python benchmarks/rank_speed.py [--formula SrTiO3] [--top-k 3] [-n 4] [--threads 1] [--label NAME]

Runs ``crystalgf rank`` in this process under cProfile (default G and H unless ``--g``/``--h``), then splits
the time: model loading, G, H, relaxation (CHGNet graph construction, CHGNet's forward pass, the backward
pass that gives forces and stress, ASE's FixSymmetry, the FIRE optimiser and cell filter), property
prediction and judging (hull, matching, CIF files). Writes ``benchmarks/results/rank_speed.{json,md}``
(rows of earlier runs with other labels are kept).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import torch

from crystalgf.cli import main as crystalgf
from crystalgf.manifest import now, package_versions

RESULTS = Path(__file__).parent / "results"

# part -> (file fragment, function names): cumulative profile time of every call of those functions
PARTS = {
    "relaxation (all)": ("crystalgf_eval/relax.py", ("relax",)),
    "CHGNet calculator": ("chgnet/model/dynamics.py", ("calculate",)),
    "CHGNet graph construction": ("chgnet/graph/converter.py", ("forward",)),
    "CHGNet forward + backward": ("chgnet/model/model.py", ("_compute",)),
    "backward pass (forces, stress)": ("torch/autograd/__init__.py", ("grad",)),
    "FixSymmetry (set-up and projections)": ("ase/constraints/fix_symmetry.py",
                                             ("__init__", "adjust_cell", "adjust_positions", "adjust_forces",
                                              "adjust_stress")),
    "CHGNet model loading": ("chgnet/model/model.py", ("load",)),
    "G (propose constraints)": ("crystalgf/pipeline.py", ("propose_constraints",)),
}


def _cumulative(stats: pstats.Stats, file_fragment: str, names: tuple[str, ...]) -> float:
    return sum(cumulative for (filename, _, func), (_, _, _, cumulative, _) in stats.stats.items()  # type: ignore[attr-defined]
               if file_fragment in filename and func in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formula", default="SrTiO3")
    parser.add_argument("--band-gap", default="1.5")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("-n", type=int, default=4)
    parser.add_argument("--g")
    parser.add_argument("--h")
    parser.add_argument("--threads", type=int, help="torch CPU threads [default: crystalgf rank's]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", help="row label [default: from the settings]")
    parser.add_argument("--render", action="store_true", help="only write the Markdown table from the JSON")
    args = parser.parse_args()
    if args.render:
        render(json.loads((RESULTS / "rank_speed.json").read_text()))
        return
    label = args.label or f"{args.formula} top-k {args.top_k} n {args.n}, {args.threads or 'default'} thread(s)"
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "rank"
        argv = ["rank", "--formula", args.formula, "--band-gap", args.band_gap, "--top-k", str(args.top_k),
                "-n", str(args.n), "--seed", str(args.seed), "-o", str(out)]
        argv += [flag for flag, value in (("--g", args.g), ("--h", args.h), ("--threads", args.threads)) if value
                 for flag in (flag, str(value))]
        load = os.getloadavg()[0]
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        crystalgf.main(argv, standalone_mode=False)
        profile.disable()
        seconds = time.perf_counter() - started
        manifest = json.loads((out / "manifest.json").read_text())
        candidates = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    stats = pstats.Stats(profile)
    parts = {part: _cumulative(stats, f, names) for part, (f, names) in PARTS.items()}
    parts["ASE FIRE, cell filter, conversions"] = (parts["relaxation (all)"] - parts["CHGNet calculator"]
                                                  - parts["FixSymmetry (set-up and projections)"])
    timing = manifest["timing"]
    parts.update({"H (generate)": timing["h_seconds"], "property prediction": timing["predict_seconds"],
                  "hull, matching, files": timing["judge_seconds"]})
    steps = sum(c.get("relaxation_steps") or 0 for c in candidates)
    per_candidate = [sum(c.get("seconds", {}).values()) for c in candidates]
    relax = parts["relaxation (all)"]
    row = {
        "label": label, "argv": argv, "date": now(), "load_average_at_start": load,
        "load_average_at_end": os.getloadavg()[0], "torch_threads": torch.get_num_threads(),
        "candidates": len(candidates), "failed": sum(c["status"] != "ok" for c in candidates),
        "seconds_total": seconds, "candidates_per_second": len(candidates) / seconds,
        "relaxation_steps": steps, "seconds_per_relaxation_step": relax / max(steps, 1),
        "atoms_per_candidate": sum(sum(_counts(c["formula"])) for c in candidates if c["status"] == "ok")
        / max(1, sum(c["status"] == "ok" for c in candidates)),
        "parts_seconds": parts, "manifest_timing": manifest["timing"],
        "seconds_per_candidate_median": statistics.median(per_candidate) if per_candidate else None,
        "seconds_outside_candidates": seconds - sum(per_candidate),
    }
    report = {"benchmark": "rank_speed", "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} "
              f"CPU cores, no GPU, torch {torch.__version__}", "versions": package_versions(), "rows": {}}
    path = RESULTS / "rank_speed.json"
    if path.is_file():
        report["rows"] = json.loads(path.read_text()).get("rows", {})
    report["rows"][label] = row
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    render(report)


def render(report: dict) -> None:
    """``results/rank_speed.md`` from the JSON report."""
    lines = ["# Speed of a ranked run (`crystalgf rank`)", "", f"{report['hardware']}; other jobs shared the CPU "
             "(load average in the table: 2.0 means both cores busy before this run started)", "",
             "| run | date | load avg. | threads | candidates | s total | candidates/s | s/candidate (median) | "
             "start-up (loading, G) | relaxation steps | "
             "s/step | relaxation | CHGNet graph | CHGNet forward+backward | of it backward | FixSymmetry | FIRE, filter | "
             "CHGNet load | H | G | predict | judge |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["rows"].items():
        p = r["parts_seconds"]
        lines.append(f"| {name} | {r['date'][:10]} | {r['load_average_at_start']:.1f} | {r['torch_threads']} | "
                     f"{r['candidates']} | {r['seconds_total']:.0f} | {r['candidates_per_second']:.3f} | "
                     f"{r['seconds_per_candidate_median']:.1f} | {r['seconds_outside_candidates']:.0f} s | "
                     f"{r['relaxation_steps']} | {r['seconds_per_relaxation_step']:.3f} | "
                     f"{p['relaxation (all)']:.0f} s | {p['CHGNet graph construction']:.0f} s | "
                     f"{p['CHGNet forward + backward']:.0f} s | {p['backward pass (forces, stress)']:.0f} s | "
                     f"{p['FixSymmetry (set-up and projections)']:.0f} s | {p['ASE FIRE, cell filter, conversions']:.0f} s | "
                     f"{p['CHGNet model loading']:.0f} s | {p['H (generate)']:.0f} s | {p['G (propose constraints)']:.0f} s | "
                     f"{p['property prediction']:.0f} s | {p['hull, matching, files']:.0f} s |")
    lines += ["", "Seconds are cumulative profile times of one run (cProfile adds some overhead); `forward+backward` "
              "includes the backward pass, which is shown again on its own. Commands: " +
              "; ".join(f"`python benchmarks/rank_speed.py {' '.join(_script_args(r['argv']))}`"
                        for r in report["rows"].values())]
    (RESULTS / "rank_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _counts(formula: str) -> list[int]:
    from pymatgen.core import Composition

    return [int(x) for x in Composition(formula).values()]


def _script_args(argv: list[str]) -> list[str]:
    skip = {"rank", "-o"}
    out, i = [], 0
    while i < len(argv):
        if argv[i] in skip:
            i += 2 if argv[i] == "-o" else 1
            continue
        out.append(argv[i])
        i += 1
    return out


if __name__ == "__main__":
    main()
