"""``crystalgf evaluate`` and ``crystalgf export-vasp``, added to the CLI through the command hook."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from crystalgf.progress import progress_bar

from crystalgf.config import PATH, parse_options
from crystalgf.datasets import ConstraintTable
from crystalgf.errors import InvalidInputError, UnknownPluginError
from crystalgf.manifest import new_manifest, now, write_json
from crystalgf.output import check_output_directory
from crystalgf.plugins import PluginRegistry
from crystalgf.schema import PROPERTY_UNITS
from crystalgf_eval.batch import add_reference, load_input, load_run
from crystalgf_eval.dft import export_vasp_inputs, read_vasp_results
from crystalgf_eval.references import load_elemental_references, locate
from crystalgf_eval.report import evaluate_batch, evaluate_symmetry
from crystalgf_eval.services import DEFAULT_PREDICTORS, CachedServices
from crystalgf_eval.symmetry_accuracy import pair_by_id, top_proposals

stderr = Console(stderr=True)


def _metric_options(pairs: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    options: dict[str, dict[str, Any]] = {}
    for key, value in (parse_options(pairs) or {}).items():
        metric, dot, option = key.partition(".")
        if not dot:
            raise InvalidInputError(f"--option {key!r} must be METRIC.KEY=VALUE, e.g. coverage.preset=perov")
        options.setdefault(metric.replace("_", "-"), {})[option] = value
    return options


@click.command("evaluate")
@click.option("--input", "input_path", required=True, type=PATH,
              help="A run directory, a structure CSV, or a constraints.jsonl from crystalgf constrain.")
@click.option("--reference", type=PATH,
              help="Reference structures (CSV with material_id, cif), or true constraints for a constraints.jsonl.")
@click.option("--reference-limit", type=click.IntRange(min=1), help="Use only the first N reference rows.")
@click.option("--metrics", help="Comma-separated evaluators [default: all installed].")
@click.option("--predictor", "predictors", multiple=True, metavar="PROPERTY=NAME",
              help="Predictor per property [default: band_gap=megnet-bandgap, formation_energy_per_atom=chgnet-eform].")
@click.option("--relaxer", default="chgnet", show_default=True, help="Relaxer for stability (S.U.N.).")
@click.option("--relaxer-option", "relaxer_options", multiple=True, metavar="KEY=VALUE",
              help="Option of the relaxer, e.g. steps=100 (steps=0: energies of the structures as given).")
@click.option("--option", "metric_options", multiple=True, metavar="METRIC.KEY=VALUE", help="Option of a metric.")
@click.option("--vasp", "vasp_dir", type=PATH, help="Read finished VASP runs (<id>/vasprun.xml).")
@click.option("--elemental-references", help="MP elemental reference entries (json.gz) for hulls and formation "
              "energies [default: $CRYSTALGF_ELEMENTAL_REFERENCES, else the packaged copy].")
@click.option("-o", "--output", required=True, type=PATH, help="Report directory.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty report directory (the cache is reused).")
def evaluate(input_path: Path, reference: Path | None, reference_limit: int | None, metrics: str | None,
             predictors: tuple[str, ...], relaxer: str, relaxer_options: tuple[str, ...], metric_options: tuple[str, ...], vasp_dir: Path | None,
             elemental_references: str | None, output: Path, overwrite: bool) -> None:
    """Evaluate generated structures (or a G's constraints) the way the method's paper does."""
    if not input_path.exists():
        raise InvalidInputError(f"{input_path}: no such file or directory")
    if reference is not None and not reference.is_file():
        raise InvalidInputError(f"{reference}: no such file")
    if vasp_dir is not None and not vasp_dir.is_dir():
        raise InvalidInputError(f"{vasp_dir}: no such directory")
    if elemental_references or vasp_dir is not None:  # named or needed: it must be there before anything is written
        references_file = locate(elemental_references)
    if vasp_dir is not None:
        reference_energies = {el: e.energy_per_atom for el, e in load_elemental_references(references_file).items()}
    check_output_directory(output, overwrite)
    registry = PluginRegistry.installed()
    header = {"input": str(input_path), "reference": str(reference) if reference else None, "date": now()}
    if input_path.suffix == ".jsonl":
        if reference is None:
            raise InvalidInputError("evaluating constraints needs --reference with the true constraints (constraints.csv)")
        truth = {e.id: e.constraint for e in ConstraintTable().read(reference).entries if e.constraint}
        accuracy = pair_by_id(top_proposals(input_path), truth)
        output.mkdir(parents=True, exist_ok=True)
        report = evaluate_symmetry(accuracy, output, header)
        summary = report["metrics"]["symmetry-accuracy"]["summary"]
        click.echo(f"space-group accuracy {summary['space_group_accuracy']:.1%}, Wyckoff accuracy "
                   f"{summary['wyckoff_accuracy']:.1%} over {summary['pairs']} items; report in {output}")
        return
    batch, skipped = load_input(input_path)
    if reference is not None:
        skipped += add_reference(batch, reference, reference_limit)
    names = [m.strip() for m in metrics.split(",")] if metrics else registry.names("evaluator")
    chosen = {**DEFAULT_PREDICTORS, **(parse_options(predictors) or {})}
    for prop in chosen:
        if prop not in PROPERTY_UNITS:
            raise InvalidInputError(f"--predictor {prop}=…: unknown property (choose from {', '.join(PROPERTY_UNITS)})")
    known = set(registry.names("predictor"))
    for name in chosen.values():
        if name not in known and name not in DEFAULT_PREDICTORS.values():
            raise UnknownPluginError("property predictor", name, sorted(known))
    options = _metric_options(metric_options)
    for target in options:
        if target not in names and target not in chosen.values():
            raise InvalidInputError(f"--option {target}.…: {target!r} is neither a chosen metric "
                                    f"({', '.join(names)}) nor a chosen predictor ({', '.join(chosen.values())})")
    if elemental_references and "sun" in names:
        options.setdefault("sun", {}).setdefault("elemental_references", elemental_references)
    if elemental_references and "chgnet-eform" in chosen.values():
        options.setdefault("chgnet-eform", {}).setdefault("elemental_references", elemental_references)
    evaluators = {name: registry.create("evaluator", name, **options.get(name, {})) for name in names}
    factories = {prop: (lambda name=name: registry.create("predictor", name, **options.get(name, {})))
                 for prop, name in chosen.items() if name in known}
    relax_settings = parse_options(relaxer_options) or {}
    chosen_relaxer = registry.create("relaxer", relaxer, **relax_settings)  # bad names and options fail here
    settings_key = hashlib.sha256(json.dumps([relaxer, relax_settings, chosen, options], sort_keys=True,
                                             default=str).encode()).hexdigest()[:12]
    output.mkdir(parents=True, exist_ok=True)
    manifest = new_manifest("evaluate", 0, {"input": str(input_path), "reference": str(reference) if reference else None,
                                            "metrics": names, "predictors": chosen, "relaxer": relaxer,
                                            "relaxer_options": relax_settings}, {}, [])
    write_json(output / "manifest.json", manifest)
    progress = progress_bar()
    with progress:
        services = CachedServices(output / "cache", factories, lambda: chosen_relaxer, progress, settings_key)
        report = evaluate_batch(batch, evaluators, services, output, {**header, "skipped": len(skipped)})
    if vasp_dir is not None:
        report["dft"] = read_vasp_results(vasp_dir, reference_energies)
        write_json(output / "report.json", report)
    write_json(output / "manifest.json", {**manifest, "status": "complete", "finished": now()})
    for name, result in report["metrics"].items():
        click.echo(f"{name}: " + ", ".join(f"{k}={_short(v)}" for k, v in result["summary"].items()))
    for name, why in {**report["not_applicable"], **report["failed"]}.items():
        click.echo(f"{name}: not computed ({why})")
    if skipped:
        stderr.print(f"warning: skipped {len(skipped)} unreadable item(s); first, {skipped[0][0]}: {skipped[0][1]}",
                     highlight=False)
    click.echo(f"report: {output / 'report.md'}")


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_short(v)}" for k, v in value.items()) + "}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@click.command("export-vasp")
@click.option("--input", "input_path", required=True, type=PATH, help="A run directory.")
@click.option("--ids", help="Comma-separated record ids [default: all; an empty list is an error].")
@click.option("-o", "--output", required=True, type=PATH)
@click.option("--overwrite", is_flag=True)
def export_vasp(input_path: Path, ids: str | None, output: Path, overwrite: bool) -> None:
    """Write VASP inputs (MPRelaxSet, PBE, ENCUT 520 eV) for chosen structures of a run."""
    if not input_path.is_dir():
        raise InvalidInputError(f"{input_path}: not a run directory")
    if ids is not None and not all(i.strip() for i in ids.split(",")):
        raise InvalidInputError(f"--ids {ids!r} names an empty id; give comma-separated record ids, or leave "
                                "--ids out for all")
    check_output_directory(output, overwrite)
    batch, _ = load_run(input_path)
    wanted = [i.strip() for i in ids.split(",")] if ids is not None else batch.ids
    unknown = [i for i in wanted if i not in batch.ids]
    if unknown:
        raise InvalidInputError(f"no record {unknown[0]!r} in {input_path}")
    chosen = [(i, s) for i, s in zip(batch.ids, batch.structures) if i in set(wanted)]
    folders = export_vasp_inputs([i for i, _ in chosen], [s for _, s in chosen], output)
    click.echo(f"wrote {len(folders)} VASP input folders to {output}")
