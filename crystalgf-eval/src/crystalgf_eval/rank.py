"""``crystalgf rank``: ranked candidate crystals for one request, in one command.

G proposes its ``top_k`` best constraints; H builds ``n`` structures for each (the jobs and seeds of
``crystalgf run --top-k K -n K·N``, so the unrelaxed structures are that run's); each structure is relaxed
with its symmetry kept (the relaxer plugin, CHGNet by default), its energy above the hull of the known
references and its properties are predicted, and one JSON line per candidate is appended to
``candidates.jsonl`` as soon as it is finished. At the end every candidate is ranked (:func:`score`).

Ranking rule: ``score = e_above_hull + sum over targets of |predicted - target|`` (0 inside a target
interval; eV for the band gap, eV/atom for the formation energy); lower is better, ties go to the lower
energy per atom, then to the id. Candidates with no prediction for a targeted property come after all
others with one, and failed candidates come last, unranked. Without targets the rank follows the energy
above the hull, i.e. the energy per atom for a formula (all candidates share one composition).
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import json
import math
import os
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Structure
from pymatgen.io.cif import CifWriter
from rich.console import Console
from rich.table import Table

from crystalgf.config import load_run_config, parse_options
from crystalgf.datasets import StructureTable
from crystalgf.errors import InvalidInputError, UnknownPluginError
from crystalgf.manifest import new_manifest, now, write_json
from crystalgf.output import remove_own_files, safe_name
from crystalgf.pipeline import StructureJob, jobs_for_constraints, propose_constraints
from crystalgf.plugins import PluginRegistry
from crystalgf.progress import progress_bar
from crystalgf.progress import stderr as status_console
from crystalgf.schema import PROPERTY_UNITS, Constraint, PropertyTarget
from crystalgf.symmetry.detect import detect_space_groups
from crystalgf.symmetry.wyckoff import space_group_symbol
from crystalgf_eval.metrics.matching import matcher
from crystalgf_eval.references import elemental_energies, locate
from crystalgf_eval.services import DEFAULT_PREDICTORS

CANDIDATES_FILE = "candidates.jsonl"
RANKING_FILE = "ranking.jsonl"
RANKING_CSV = "ranking.csv"
HULL_FILE = "hull_references.json"
MANIFEST_FILE = "manifest.json"
OWN_FILES = ("structures", CANDIDATES_FILE, RANKING_FILE, RANKING_CSV, HULL_FILE, MANIFEST_FILE)
"""All that ``crystalgf rank`` writes into its directory (and all that ``--overwrite`` removes)."""

RESUME_IGNORES = ("batch_size", "threads")
"""Settings that do not change the candidates; a resumed run may change them."""

stdout = Console(width=None if sys.stdout.isatty() else 160)


# ---------------------------------------------------------------- ranking


def score(candidate: dict[str, Any], targets: dict[str, PropertyTarget]) -> float:
    """The ranking score of a finished candidate (lower is better); ``inf`` where a targeted property has
    no prediction. See the module docstring."""
    total = candidate["e_above_hull"] if candidate["e_above_hull"] is not None else candidate["energy_above_lowest"]
    for name, target in targets.items():
        value = candidate["predicted"].get(name)
        if value is None:
            return math.inf
        total += target.distance(value)
    return total


def rank_candidates(candidates: Sequence[dict[str, Any]], targets: dict[str, PropertyTarget]) -> list[dict[str, Any]]:
    """Every candidate with ``rank`` (1 = best; ``None`` for failed ones) and ``score``, best first."""
    finished = [dict(c) for c in candidates if c["status"] == "ok"]
    lowest: dict[str, float] = {}
    for c in finished:
        lowest[c["reduced_formula"]] = min(lowest.get(c["reduced_formula"], math.inf), c["energy_per_atom"])
    for c in finished:
        c["energy_above_lowest"] = c["energy_per_atom"] - lowest[c["reduced_formula"]]
        c["score"] = score(c, targets)
    finished.sort(key=lambda c: (c["score"], c["energy_per_atom"], c["id"]))
    failed = sorted((dict(c, score=None) for c in candidates if c["status"] != "ok"), key=lambda c: c["id"])
    for rank, c in enumerate(finished, start=1):
        c["rank"] = rank
    for c in failed:
        c["rank"] = None
    return finished + failed


# ---------------------------------------------------------------- the hull of known references


class Hull:
    """Convex hull of the MP elemental references (MP2020-compatible DFT energies) and of reference
    crystals relaxed with the same potential as the candidates (their energies on CHGNet's MP2020 scale)."""

    def __init__(self, elements: dict[str, float], references: Sequence[dict[str, Any]]):
        self.elements = elements
        self.entries = [PDEntry(Composition(el), energy) for el, energy in elements.items()]
        self.entries += [PDEntry(Composition(r["formula"]), r["energy_per_atom"] * Composition(r["formula"]).num_atoms)
                         for r in references]
        self._diagrams: dict[frozenset[str], PhaseDiagram] = {}

    def e_above_hull(self, composition: Composition, energy_per_atom: float) -> float | None:
        """Energy above the hull (eV/atom, negative below it); ``None`` if an element has no reference."""
        system = frozenset(el.symbol for el in composition.elements)
        if not system <= set(self.elements):
            return None
        if system not in self._diagrams:
            self._diagrams[system] = PhaseDiagram(
                [e for e in self.entries if {el.symbol for el in e.composition.elements} <= system])
        entry = PDEntry(composition, energy_per_atom * composition.num_atoms)
        return float(self._diagrams[system].get_decomp_and_e_above_hull(entry, allow_negative=True)[1])


def relax_references(entries: Sequence[Any], relaxer: Any) -> list[dict[str, Any]]:
    """Reference crystals relaxed (symmetry free, as the S.U.N. evaluator does); unrelaxable ones are left out."""
    relaxed = []
    for entry in entries:
        try:
            [result] = relaxer.relax([entry.structure], fix_symmetry=False)
        except Exception:  # noqa: BLE001 - a reference the potential cannot take is left out of the hull
            continue
        relaxed.append({"id": entry.id, "formula": result.structure.composition.formula.replace(" ", ""),
                        "reduced_formula": result.structure.composition.reduced_formula,
                        "energy_per_atom": result.energy_per_atom, "steps": result.steps})
    return relaxed


# ---------------------------------------------------------------- output


def _write_cif(directory: Path, relative: str, structure: Structure) -> str:
    target = directory / relative
    temporary = target.with_name(target.name + ".tmp")
    CifWriter(structure).write_file(temporary)
    os.replace(temporary, target)
    return relative


def read_candidates(path: Path) -> list[dict[str, Any]]:
    """The complete lines of ``candidates.jsonl`` (a line cut short by an interruption is dropped)."""
    found: list[dict[str, Any]] = []
    if not path.is_file():
        return found
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "id" in record and "status" in record:
            found.append(record)
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _settings_differ(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    for key in sorted(set(old) | set(new)):
        if key not in RESUME_IGNORES and old.get(key) != new.get(key):
            return f"{key} {old.get(key)!r}, not {new.get(key)!r}"
    return None


def _print_ranking(ranked: Sequence[dict[str, Any]], targets: dict[str, PropertyTarget], directory: Path,
                   limit: int = 10) -> None:
    table = Table(title=f"{sum(c['rank'] is not None for c in ranked)} ranked candidates in {directory} "
                        f"(best {min(limit, len(ranked))} shown; all in {RANKING_FILE})")
    columns = ["rank", "id", "formula", "space group (relaxed @0.1)", "G rank", "E (eV/atom)", "E above hull",
               "Ef (eV/atom)", "band gap (eV)", "score"]
    for column in columns:
        table.add_column(column)

    def number(value: float | None, sign: bool = False) -> str:
        return "—" if value is None or not math.isfinite(value) else (f"{value:+.3f}" if sign else f"{value:.3f}")

    for c in ranked[:limit]:
        if c["rank"] is None:
            table.add_row("—", c["id"], c["constraint"]["formula"], "", str(c["g_rank"]), "", "", "", "", c["status"])
            continue
        group = c["space_group_relaxed"].get("0.1")
        table.add_row(str(c["rank"]), c["id"], c["formula"], f"{group} {space_group_symbol(group)}" if group else "?",
                      str(c["g_rank"]), number(c["energy_per_atom"]), number(c["e_above_hull"], True),
                      number(c["predicted"].get("formation_energy_per_atom"), True),
                      number(c["predicted"].get("band_gap")), number(c["score"]))
    stdout.print(table)


def _write_ranking(directory: Path, ranked: Sequence[dict[str, Any]], targets: dict[str, PropertyTarget]) -> None:
    temporary = directory / (RANKING_FILE + ".tmp")
    temporary.write_text("".join(json.dumps(c) + "\n" for c in ranked), encoding="utf-8")
    os.replace(temporary, directory / RANKING_FILE)
    fields = ["rank", "id", "status", "score", "formula", "space_group", "wyckoff", "g_rank", "space_group_relaxed",
              "energy_per_atom", "e_above_hull", *(f"predicted_{p}" for p in PROPERTY_UNITS),
              *(f"distance_{p}" for p in targets), "relaxation_steps", "relaxed_cif", "unrelaxed_cif"]
    temporary = directory / (RANKING_CSV + ".tmp")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for c in ranked:
            ok = c["status"] == "ok"
            writer.writerow({
                "rank": c["rank"], "id": c["id"], "status": c["status"], "score": c["score"],
                "formula": c.get("formula") or c["constraint"]["formula"], "space_group": c["constraint"]["space_group"],
                "wyckoff": Constraint.from_dict(c["constraint"]).wyckoff_text, "g_rank": c["g_rank"],
                "space_group_relaxed": c["space_group_relaxed"].get("0.1") if ok else None,
                "energy_per_atom": c.get("energy_per_atom"), "e_above_hull": c.get("e_above_hull"),
                **{f"predicted_{p}": c.get("predicted", {}).get(p) for p in PROPERTY_UNITS},
                **{f"distance_{p}": c.get("target_distance", {}).get(p) for p in targets},
                "relaxation_steps": c.get("relaxation_steps"), "relaxed_cif": c.get("relaxed_cif"),
                "unrelaxed_cif": c.get("unrelaxed_cif")})
    os.replace(temporary, directory / RANKING_CSV)


# ---------------------------------------------------------------- one candidate


class CandidateMaker:
    """Relaxes, judges and writes one generated structure at a time."""

    def __init__(self, directory: Path, relaxer: Any, predictors: dict[str, Any], hull: Hull,
                 known: Sequence[tuple[str, Structure]], targets: dict[str, PropertyTarget], g_ranks: dict[str, int]):
        self.directory = directory
        self.relaxer = relaxer
        self.predictors = predictors
        self.hull = hull
        self.known = known
        self.targets = targets
        self.g_ranks = g_ranks
        self.matcher = matcher()

    def base(self, job: StructureJob) -> dict[str, Any]:
        return {"id": job.record_id, "request_id": job.request_id, "g_rank": self.g_ranks[job.constraint.to_json()],
                "constraint": job.constraint.to_dict(), "seed": job.seed}

    def failed(self, job: StructureJob, why: str, seconds: dict[str, float]) -> dict[str, Any]:
        return {**self.base(job), "status": f"failed: {why}", "seconds": seconds}

    def make(self, job: StructureJob, structure: Structure | None, h_seconds: float) -> dict[str, Any]:
        seconds = {"h": h_seconds}
        if structure is None:
            return self.failed(job, "H produced no structure", seconds)
        name = safe_name(job.record_id)
        unrelaxed_cif = _write_cif(self.directory, f"structures/unrelaxed/{name}.cif", structure)
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                [relaxation] = self.relaxer.relax([structure], fix_symmetry=True)
        except Exception as error:  # noqa: BLE001 - one structure the potential cannot take must not stop the run
            seconds["relax"] = time.perf_counter() - started
            return {**self.failed(job, f"relaxation: {type(error).__name__}: {str(error)[:160]}", seconds),
                    "unrelaxed_cif": unrelaxed_cif}
        seconds["relax"] = time.perf_counter() - started
        relaxed = relaxation.structure
        started = time.perf_counter()
        predicted: dict[str, float | None] = {}
        for name_, predictor in self.predictors.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                [predicted[name_]] = predictor.predict([relaxed])
        seconds["predict"] = time.perf_counter() - started
        started = time.perf_counter()
        composition = relaxed.composition
        e_hull = self.hull.e_above_hull(composition, relaxation.energy_per_atom)
        matches = [ref_id for ref_id, ref in self.known
                   if ref.composition.reduced_formula == composition.reduced_formula and self.matcher.fit(relaxed, ref)]
        record = {
            **self.base(job), "status": "ok",
            "formula": composition.formula.replace(" ", ""), "reduced_formula": composition.reduced_formula,
            "unrelaxed_cif": unrelaxed_cif,
            "relaxed_cif": _write_cif(self.directory, f"structures/relaxed/{name}.cif", relaxed),
            "space_group_unrelaxed": detect_space_groups(structure), "space_group_relaxed": detect_space_groups(relaxed),
            "energy_per_atom": relaxation.energy_per_atom, "relaxation_steps": relaxation.steps,
            "e_above_hull": e_hull, "predicted": predicted,
            "target_distance": {p: (None if predicted.get(p) is None else t.distance(predicted[p]))
                                for p, t in self.targets.items()},
            "matches_reference": matches,
        }
        seconds["judge"] = time.perf_counter() - started
        return {**record, "seconds": seconds}


# ---------------------------------------------------------------- the command


@click.command("rank")
@click.option("--formula", help="Composition ratio, e.g. SrTiO3 (G chooses formula units per cell).")
@click.option("--elements", help="Element set, e.g. Sr-Ti-O (G chooses the ratio).")
@click.option("--band-gap", help="Target band gap in eV: a value (1.5) or an interval (1.5:2.0).")
@click.option("--formation-energy", help="Target formation energy in eV/atom: a value or an interval.")
@click.option("--space-group", type=int, help="Fix the space group (1-230); G chooses only the Wyckoff sites.")
@click.option("--max-atoms", type=int, help="Most atoms per cell [default: as crystalgf run].")
@click.option("--exact-cell", is_flag=True, default=None, help="Take the formula as the exact cell content.")
@click.option("--g", "g", help="Constraint generator (G) [default: as crystalgf run].")
@click.option("--h", "h", help="Structure generator (H) [default: as crystalgf run].")
@click.option("--g-option", "g_options", multiple=True, metavar="KEY=VALUE", help="Option for G.")
@click.option("--h-option", "h_options", multiple=True, metavar="KEY=VALUE", help="Option for H.")
@click.option("--top-k", default=3, show_default=True, type=click.IntRange(min=1), help="G's best constraints to use.")
@click.option("-n", "n", default=4, show_default=True, type=click.IntRange(min=1), help="Structures per constraint.")
@click.option("--relaxer", default="chgnet", show_default=True, help="Relaxer (symmetry kept).")
@click.option("--relaxer-option", "relaxer_options", multiple=True, metavar="KEY=VALUE",
              help="Option of the relaxer, e.g. steps=300 or fmax=0.05.")
@click.option("--predictor", "predictors", multiple=True, metavar="PROPERTY=NAME",
              help="Predictor per property [default: band_gap=megnet-bandgap, formation_energy_per_atom=chgnet-eform].")
@click.option("--reference", type=click.Path(path_type=Path),
              help="Known crystals (CSV with material_id, cif): those of the request's elements join the hull "
                   "(relaxed with the same relaxer) and are matched against the candidates.")
@click.option("--elemental-references", help="MP elemental reference entries (json.gz) [default: the packaged copy].")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Random seed.")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1), help="Structures per H call.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
              help="torch CPU threads. CHGNet's small graphs gain little from more, and on a CPU shared with other "
                   "jobs two threads made each relaxation step 9x slower (README).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier rank output in the directory.")
@click.option("--resume", is_flag=True, help="Continue an interrupted rank run: skip the candidates already finished.")
def rank(formula: str | None, elements: str | None, band_gap: str | None, formation_energy: str | None,
         space_group: int | None, max_atoms: int | None, exact_cell: bool | None, g: str | None, h: str | None,
         g_options: tuple[str, ...], h_options: tuple[str, ...], top_k: int, n: int, relaxer: str,
         relaxer_options: tuple[str, ...], predictors: tuple[str, ...], reference: Path | None,
         elemental_references: str | None, seed: int, batch_size: int, threads: int, output: Path,
         overwrite: bool, resume: bool) -> None:
    """Ranked candidate crystals: G's top-k constraints, n structures each from H, relaxed with symmetry
    kept, ranked by energy above the hull plus the predicted distance to the targets."""
    # Everything that can be wrong with the input is checked before anything is written.
    if overwrite and resume:
        raise InvalidInputError("--resume and --overwrite exclude each other (continue the run, or start it over)")
    config = load_run_config(None, {"formula": formula, "elements": elements, "band_gap": band_gap,
                                    "formation_energy": formation_energy, "space_group": space_group,
                                    "max_atoms": max_atoms, "exact_cell": exact_cell, "g": g, "h": h,
                                    "g_options": parse_options(g_options), "h_options": parse_options(h_options),
                                    "seed": seed, "batch_size": batch_size})
    request = config.request()
    targets = dict(request.properties)
    relax_settings = parse_options(relaxer_options) or {}
    chosen = {**DEFAULT_PREDICTORS, **(parse_options(predictors) or {})}
    for prop in chosen:
        if prop not in PROPERTY_UNITS:
            raise InvalidInputError(f"--predictor {prop}=…: unknown property (choose from {', '.join(PROPERTY_UNITS)})")
    if reference is not None and not reference.is_file():
        raise InvalidInputError(f"{reference}: no such file")
    references_path = locate(elemental_references)
    settings = {**{k: v for k, v in config.model_dump(mode="json").items()
                   if k in ("g", "h", "g_options", "h_options", "formula", "elements", "band_gap", "formation_energy",
                            "space_group", "max_atoms", "exact_cell", "seed", "batch_size")},
                "top_k": top_k, "n": n, "relaxer": relaxer, "relaxer_options": relax_settings, "predictors": chosen,
                "reference": str(reference) if reference else None,
                "reference_sha256": _sha256(reference) if reference else None,
                "elemental_references_sha256": _sha256(references_path), "threads": threads}
    previous = _previous_run(output, overwrite, resume, settings)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    click.get_current_context().call_on_close(lambda: torch.set_num_threads(before))  # a caller's setting stays
    registry = PluginRegistry.installed()
    known_predictors = set(registry.names("predictor"))
    for name in chosen.values():
        if name not in known_predictors:
            raise UnknownPluginError("property predictor", name, sorted(known_predictors))
    g_plugin, h_plugin = registry.get("g", config.g), registry.get("h", config.h)
    relax_plugin = registry.get("relaxer", relaxer)
    the_relaxer = relax_plugin.create(**relax_settings)
    predictor_options = {"elemental_references": str(references_path)}
    the_predictors = {prop: registry.create("predictor", name, **(
        predictor_options if "elemental_references" in _parameters(registry, name) else {}))
        for prop, name in chosen.items()}
    generator = g_plugin.create(**config.g_options) if previous is None else None
    structure_generator = h_plugin.create(**config.h_options)
    reference_entries = []
    if reference is not None:
        read = StructureTable().read(reference)
        if not read.entries:
            raise InvalidInputError(f"{reference}: no readable reference structures ({len(read.skipped)} skipped)")
        allowed = set(request.elements if request.elements else request.counts)
        reference_entries = [e for e in read.entries
                             if {el.symbol for el in e.structure.composition.elements} <= allowed]
    if previous is None:
        with status_console.status(f"G {config.g}: proposing constraints for {request.composition_text}"):
            constraints = propose_constraints(generator, [request], top_k, seed)[0]
    else:
        constraints = [Constraint.from_dict(c) for c in previous["constraints"]]
    jobs = jobs_for_constraints([(request.request_id, constraints)], n * len(constraints), seed, [request])

    # From here on, files are written.
    if previous is None:
        remove_own_files(output, OWN_FILES)  # an earlier rank run's
        output.mkdir(parents=True, exist_ok=True)
        (output / "structures" / "unrelaxed").mkdir(parents=True, exist_ok=True)
        (output / "structures" / "relaxed").mkdir(parents=True, exist_ok=True)
        instances = [x for x in (generator, structure_generator, the_relaxer, *the_predictors.values()) if x is not None]
        plugins = {"g": g_plugin, "h": h_plugin, "relaxer": relax_plugin,
                   **{f"predictor {p}": registry.get("predictor", name) for p, name in chosen.items()}}
        manifest = new_manifest("rank", seed, settings,
                                {role: {"name": p.name, "package": p.package, "version": p.version}
                                 for role, p in plugins.items()},
                                [path for instance in instances for path in instance.weights_files()])
        manifest["command_line"] = shlex.join(["crystalgf", *sys.argv[1:]])
        manifest["constraints"] = [c.to_dict() for c in constraints]
        manifest["request"] = request.to_dict()
    else:
        manifest = {**previous, "resumed": [*previous.get("resumed", []), now()], "status": "running"}
        manifest["settings"] = {**previous["settings"], **{k: settings[k] for k in RESUME_IGNORES}}
    write_json(output / MANIFEST_FILE, manifest)
    started = time.perf_counter()
    try:
        finished = _run(output, jobs, constraints, structure_generator, the_relaxer, the_predictors,
                        reference_entries, references_path, targets, batch_size, previous is not None)
    except BaseException as error:
        interrupted = isinstance(error, KeyboardInterrupt)
        kept = len(read_candidates(output / CANDIDATES_FILE))
        write_json(output / MANIFEST_FILE, {**manifest, "status": "interrupted" if interrupted else "failed",
                                            "finished": now(), "candidates": kept,
                                            "error": "interrupted" if interrupted else f"{type(error).__name__}: {error}"})
        if interrupted:
            click.echo(f"error: interrupted; {kept} candidate(s) kept in {output}: --resume continues, "
                       "--overwrite starts over", err=True)
            raise click.exceptions.Exit(130) from None
        raise
    ranked = rank_candidates(finished["candidates"], targets)
    _write_ranking(output, ranked, targets)
    seconds = time.perf_counter() - started
    made = finished["made_now"]
    write_json(output / MANIFEST_FILE, {
        **manifest, "status": "complete", "finished": now(), "candidates": len(ranked),
        "failed": sum(c["rank"] is None for c in ranked),
        "timing": {"seconds": seconds, "candidates_this_session": made,
                   "candidates_per_second": made / seconds if seconds else None,
                   "hull_reference_seconds": finished["reference_seconds"],
                   **{f"{stage}_seconds": sum(c.get("seconds", {}).get(stage, 0.0) for c in finished["new"])
                      for stage in ("h", "relax", "predict", "judge")}}})
    _print_ranking(ranked, targets, output)
    if made < len(ranked):
        stdout.print(f"{len(ranked) - made} candidate(s) were finished before this run (--resume)")


def _parameters(registry: PluginRegistry, name: str) -> set[str]:
    return set(inspect.signature(registry.get("predictor", name).cls).parameters)


def _previous_run(output: Path, overwrite: bool, resume: bool, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of the rank run to resume (``None`` to start afresh); refuses a directory it may not use."""
    if output.exists() and not output.is_dir():
        raise InvalidInputError(f"output {output} exists and is not a directory")
    if not output.is_dir() or not any(output.iterdir()):
        return None
    manifest_path = output / MANIFEST_FILE
    manifest = None
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            manifest = None
    is_rank = isinstance(manifest, dict) and manifest.get("command") == "rank"
    if not (overwrite or resume):
        raise InvalidInputError(f"output directory {output} is not empty; choose another, or pass --resume "
                                f"(continue a rank run) or --overwrite")
    if not is_rank:
        raise InvalidInputError(f"{output} holds no crystalgf rank output ({MANIFEST_FILE}); "
                                f"--overwrite and --resume only replace or continue one")
    if overwrite:
        return None
    difference = _settings_differ(manifest.get("settings", {}), settings)
    if difference:
        raise InvalidInputError(f"{output} was ranked with other settings ({difference}); use the same "
                                f"settings to --resume, or another directory")
    return manifest


def _run(output: Path, jobs: Sequence[StructureJob], constraints: Sequence[Constraint], structure_generator: Any,
         relaxer: Any, predictors: dict[str, Any], reference_entries: Sequence[Any], references_path: Path,
         targets: dict[str, PropertyTarget], batch_size: int, resumed: bool) -> dict[str, Any]:
    candidates_path = output / CANDIDATES_FILE
    done = read_candidates(candidates_path) if resumed else []
    done_ids = {c["id"] for c in done}
    # rewrite the file without a line an interruption may have cut short
    temporary = candidates_path.with_name(CANDIDATES_FILE + ".tmp")
    temporary.write_text("".join(json.dumps(c) + "\n" for c in done), encoding="utf-8")
    os.replace(temporary, candidates_path)
    pending = [job for job in jobs if job.record_id not in done_ids]
    new: list[dict[str, Any]] = []
    with progress_bar() as progress:
        task = progress.add_task("hull references", total=len(jobs), completed=len(jobs) - len(pending))
        started = time.perf_counter()
        hull_path = output / HULL_FILE
        if resumed and hull_path.is_file():
            hull_references = json.loads(hull_path.read_text(encoding="utf-8"))["references"]
        else:
            hull_references = relax_references(reference_entries, relaxer)
            write_json(hull_path, {"references": hull_references})
        reference_seconds = time.perf_counter() - started
        hull = Hull(elemental_energies(references_path), hull_references)
        known = [(e.id, e.structure) for e in reference_entries]
        g_ranks = {c.to_json(): rank for rank, c in reversed(list(enumerate(constraints, start=1)))}
        maker = CandidateMaker(output, relaxer, predictors, hull, known, targets, g_ranks)
        with candidates_path.open("a", encoding="utf-8") as handle:
            for start in range(0, len(pending), batch_size):
                batch = pending[start:start + batch_size]
                progress.update(task, description=f"H: {len(batch)} structures")
                began = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    structures = structure_generator.generate([job.constraint for job in batch],
                                                              [job.seed for job in batch])
                h_seconds = (time.perf_counter() - began) / len(batch)
                for job, structure in zip(batch, structures):
                    progress.update(task, description=f"relax {job.record_id}")
                    record = maker.make(job, structure, h_seconds)
                    handle.write(json.dumps(record) + "\n")
                    handle.flush()
                    new.append(record)
                    progress.advance(task)
    return {"candidates": done + new, "new": new, "made_now": len(new), "reference_seconds": reference_seconds}

