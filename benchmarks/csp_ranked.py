"""End-to-end structure prediction from a formula and a band gap: the default pipeline unranked against
energy-ranked, at the same structure budget (issue #22, benchmark 1).

    python benchmarks/csp_ranked.py [--split test] [--mode reduced-formula|exact-cell] [--top-k 3] [-n 2]
                                    [--limit N] [--threads 1]

For each crystal of the MP-20 sample split, the request a user would type (``--formula`` with the reduced
formula, or ``--exact-cell`` with the file's cell formula, plus ``--band-gap`` with its MP band gap) gets what
``crystalgf rank --top-k K -n N`` builds: G's top-K constraints, N structures each from H, the same jobs and
seeds, each relaxed by CHGNet with its symmetry kept. Against the true crystal (StructureMatcher stol=0.5,
angle_tol=10, ltol=0.3):

- ``unranked@1``: the first structure as ``crystalgf run`` writes it (G's top constraint, first seed, unrelaxed);
- ``unranked@1 relaxed``: the same structure relaxed;
- ``energy-ranked@1``: the relaxed candidate of lowest CHGNet energy per atom (``crystalgf rank`` without targets);
- ``rank-score@1``: the first by ``crystalgf rank``'s rule with the band-gap target (E above the lowest + |gap − target|);
- ``any@B`` unrelaxed and relaxed: some of the B = K·N candidates matches (the ceiling of any ranking).

A G that proposes nothing, an H that builds nothing and a relaxation that fails count as misses. Rates
carry 95 % Wilson intervals. Per-crystal results are kept in ``.benchmark-cache/csp_ranked/`` (a rerun
with the same settings continues); the table goes to ``results/csp_ranked_<data>_<mode>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import DATA, RESULTS, hardware, top_k  # noqa: E402

from crystalgf.config import DEFAULT_G, DEFAULT_H, load_run_config  # noqa: E402
from crystalgf.datasets import StructureTable  # noqa: E402
from crystalgf.manifest import now, package_versions  # noqa: E402
from crystalgf.pipeline import jobs_for_constraints  # noqa: E402
from crystalgf.plugins import PluginRegistry  # noqa: E402
from crystalgf.schema import PropertyTarget  # noqa: E402
from crystalgf_eval.metrics.matching import matcher  # noqa: E402
from crystalgf_eval.rank import rank_candidates  # noqa: E402

CACHE = Path(__file__).resolve().parents[1] / ".benchmark-cache" / "csp_ranked"
MEASURES = ("unranked@1", "unranked@1 relaxed", "energy-ranked@1", "rank-score@1", "any@B unrelaxed", "any@B relaxed")


def wilson(hits: int, n: int) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    z, p = 1.96, hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def request_for(entry, mode: str):
    composition = entry.structure.composition
    flags = {"band_gap": str(round(entry.properties["band_gap"], 4))}
    if mode == "exact-cell":
        flags.update(formula=composition.formula.replace(" ", ""), exact_cell=True)
    else:
        flags.update(formula=composition.reduced_formula)
    return load_run_config(None, flags).request()


def one_crystal(entry, mode, g, h, relaxer, gap_predictor, k, n, seed, structure_matcher) -> dict:
    request = request_for(entry, mode)
    started = time.perf_counter()
    constraints = top_k(g, [request], k, seed)[0]
    result = {"id": entry.id, "request": request.to_dict(), "constraints": [c.to_dict() for c in constraints],
              "true_space_group": int(entry.properties.get("spacegroup.number", 0)) or None, "candidates": []}
    if not constraints:
        return {**result, "note": "G proposed nothing", "seconds": time.perf_counter() - started}
    jobs = jobs_for_constraints([(request.request_id, constraints)], n * len(constraints), seed, [request])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structures = h.generate([job.constraint for job in jobs], [job.seed for job in jobs])
    target = request.properties["band_gap"]
    for index, (job, structure) in enumerate(zip(jobs, structures)):
        candidate = {"id": job.record_id, "index": index, "g_rank": index % len(constraints) + 1, "seed": job.seed,
                     "space_group": job.constraint.space_group}
        if structure is None:
            result["candidates"].append({**candidate, "status": "failed: H"})
            continue
        candidate["match_unrelaxed"] = bool(structure_matcher.fit(structure, entry.structure))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                [relaxation] = relaxer.relax([structure], fix_symmetry=True)
                [gap] = gap_predictor.predict([relaxation.structure])
        except Exception as error:  # noqa: BLE001 - a failed relaxation is a miss, named
            result["candidates"].append({**candidate, "status": f"failed: relaxation: {type(error).__name__}"})
            continue
        relaxed = relaxation.structure
        result["candidates"].append({
            **candidate, "status": "ok", "energy_per_atom": relaxation.energy_per_atom, "steps": relaxation.steps,
            "band_gap": gap, "gap_distance": None if gap is None else target.distance(gap),
            "reduced_formula": relaxed.composition.reduced_formula, "e_above_hull": None,
            "predicted": {"band_gap": gap}, "match_relaxed": bool(structure_matcher.fit(relaxed, entry.structure))})
    result["seconds"] = time.perf_counter() - started
    return result


def measures(result: dict, targets: dict) -> dict[str, bool]:
    candidates = result["candidates"]
    ok = [c for c in candidates if c["status"] == "ok"]
    first = next((c for c in candidates if c["index"] == 0), None)
    by_energy = rank_candidates(ok, {}) if ok else []
    by_score = rank_candidates(ok, targets) if ok else []
    return {
        "unranked@1": bool(first and first.get("match_unrelaxed")),
        "unranked@1 relaxed": bool(first and first.get("match_relaxed")),
        "energy-ranked@1": bool(by_energy and by_energy[0]["match_relaxed"]),
        "rank-score@1": bool(by_score and by_score[0]["match_relaxed"]),
        "any@B unrelaxed": any(c.get("match_unrelaxed") for c in candidates),
        "any@B relaxed": any(c.get("match_relaxed") for c in ok),
    }


def read_cache(settings: str) -> dict[str, dict]:
    """Finished crystals of every worker with these settings."""
    done = {}
    for path in sorted(CACHE.glob(f"{settings}.*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line a worker is still writing
                continue
            done[record["id"]] = record
    return done


def claim(path: Path) -> bool:
    """Take a crystal for this worker (several may share the cache): a claim file holding the worker's pid;
    the claim of a worker that is gone is taken over."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            owner = int(path.read_text() or 0)
            os.kill(owner, 0)
            return False
        except (ValueError, ProcessLookupError, PermissionError):
            path.write_text(str(os.getpid()))
            return True
    with os.fdopen(descriptor, "w") as handle:
        handle.write(str(os.getpid()))
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mp_20_sample")
    parser.add_argument("--split", default="test")
    parser.add_argument("--mode", choices=("reduced-formula", "exact-cell"), default="reduced-formula")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("-n", type=int, default=2)
    parser.add_argument("--limit", type=int, help="first N crystals only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--worker", default="w0", help="name of this worker: several may run at once, sharing the cache")
    parser.add_argument("--render-done", action="store_true",
                        help="report the crystals finished so far (the longest finished prefix of the file)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    entries = StructureTable().read(DATA / args.data / f"{args.split}.csv", limit=args.limit).entries
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip() or os.environ.get("CRYSTALGF_COMMIT", "?")
    commit = os.environ.get("CRYSTALGF_COMMIT", commit)
    settings = f"{args.data}-{args.split}-{args.mode}-k{args.top_k}-n{args.n}-s{args.seed}-{commit[:12]}"
    CACHE.mkdir(parents=True, exist_ok=True)
    cache = CACHE / f"{settings}.{args.worker}.jsonl"
    claims = CACHE / f"{settings}.claims"
    claims.mkdir(exist_ok=True)
    done = read_cache(settings)
    started = time.perf_counter()
    if not args.render_done:
        compute(args, entries, settings, cache, claims, done)
    done = read_cache(settings)
    results = [done[e.id] for e in entries if e.id in done]
    if args.render_done:  # the crystals finished so far, in file order
        results = results[:next((i for i, e in enumerate(entries) if e.id not in done), len(entries))]
    render(args, results, commit, len(entries))
    print(f"{time.perf_counter() - started:.0f} s")


def compute(args, entries, settings, cache, claims, done) -> None:
    registry = PluginRegistry.discover()
    g, h = registry.create("g", DEFAULT_G), registry.create("h", DEFAULT_H)
    relaxer, gap_predictor = registry.create("relaxer", "chgnet"), registry.create("predictor", "megnet-bandgap")
    structure_matcher = matcher()
    with cache.open("a") as handle:
        for i, entry in enumerate(entries, start=1):
            if entry.id in done or entry.id in read_cache(settings) or not claim(claims / entry.id):
                continue
            record = one_crystal(entry, args.mode, g, h, relaxer, gap_predictor, args.top_k, args.n, args.seed,
                                 structure_matcher)
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            done[entry.id] = record
            print(f"{i}/{len(entries)} {entry.id} {record['request']['formula']} {record['seconds']:.0f} s "
                  f"{measures(record, {'band_gap': PropertyTarget.parse('band_gap', entry.properties['band_gap'])})}",
                  flush=True)


def render(args, results: list[dict], commit: str, available: int) -> None:
    counts = {m: 0 for m in MEASURES}
    for record in results:
        target = PropertyTarget.from_dict(record["request"]["properties"]["band_gap"])
        for m, hit in measures(record, {"band_gap": target}).items():
            counts[m] += hit
    total = len(results)
    candidates = [c for r in results for c in r["candidates"]]
    report = {
        "benchmark": "csp_ranked", "date": now(), "hardware": hardware(), "load_average": os.getloadavg()[0],
        "commit": commit, "versions": package_versions(), "seed": args.seed,
        "settings": {"data": args.data, "split": args.split, "mode": args.mode, "top_k": args.top_k, "n": args.n,
                     "g": DEFAULT_G, "h": DEFAULT_H, "h_options": {}, "relaxer": "chgnet (steps 300, fmax 0.1, symmetry kept)",
                     "threads": args.threads, "matcher": "stol=0.5, angle_tol=10, ltol=0.3"},
        "crystals": total, "crystals_in_file": available, "budget_per_crystal": args.top_k * args.n,
        "g_failed": sum(not r["constraints"] for r in results),
        "candidates": len(candidates), "candidates_failed": sum(c["status"] != "ok" for c in candidates),
        "seconds_per_crystal": sum(r["seconds"] for r in results) / max(total, 1),
        "results": {m: {"hits": counts[m], "rate": counts[m] / max(total, 1), "ci95": wilson(counts[m], total)}
                    for m in MEASURES},
    }
    stem = f"csp_ranked_{args.data}_{args.mode.replace('-', '_')}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# Structure prediction from formula + band gap, unranked vs ranked ({args.data} {args.split}, {args.mode})", "",
             f"{report['date']}, {report['hardware']}, load average {report['load_average']:.1f}, seed {args.seed}, "
             f"commit {commit[:12]}; G `{DEFAULT_G}`, H `{DEFAULT_H}` (default checkpoint), CHGNet relaxation "
             f"(300 steps, fmax 0.1, symmetry kept); budget {args.top_k} constraints × {args.n} structures = "
             f"{args.top_k * args.n} per crystal; {total} crystals"
             f"{'' if total == available else f' (the first {total} of the {available} in the file)'} "
             f"({report['g_failed']} without a constraint from G; "
             f"{report['candidates_failed']} of {report['candidates']} candidates failed); "
             f"{report['seconds_per_crystal']:.0f} s per crystal", "",
             "| measure | match rate | 95 % interval | hits |", "|---|---|---|---|"]
    for m in MEASURES:
        r = report["results"][m]
        lines.append(f"| {m} | {r['rate']:.1%} | {r['ci95'][0]:.1%}–{r['ci95'][1]:.1%} | {r['hits']}/{total} |")
    lines += ["", "StructureMatcher stol=0.5, angle_tol=10, ltol=0.3 against the file's structure. `unranked@1` is what "
              "`crystalgf run -n 1` writes; `energy-ranked@1` the lowest CHGNet energy per atom among the "
              f"{args.top_k * args.n} relaxed candidates; `rank-score@1` `crystalgf rank`'s first with the band-gap "
              "target; `any@B` the share for which some candidate matches (the most a ranking could reach). "
              f"Command: `python benchmarks/csp_ranked.py --mode {args.mode} --top-k {args.top_k} -n {args.n}"
              f"{f' --limit {args.limit}' if args.limit else ''} --threads {args.threads}`"
              f"{' (two workers at once, --worker w0 and w1; then --render-done)' if total < available else ''}."]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
