"""The ``crystalgf`` command line: a thin layer over :mod:`crystalgf.pipeline`.

Bad input ends with ``error: <one line>`` on stderr and exit code 2, before anything is written; so does
a plugin that fails while it runs (the line names it). Set ``CRYSTALGF_TRACEBACK=1`` to see the
traceback behind such a line. Exit code 1 with a traceback is left to internal errors.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import click
from click.exceptions import NoArgsIsHelpError
from rich.console import Console
from rich.table import Table

from crystalgf.config import DEFAULT_G, DEFAULT_H, PATH, load_run_config, parse_options
from crystalgf.errors import CrystalGFError, GenerationError, InvalidInputError
from crystalgf.inputs import read_constraints, read_requests
from crystalgf.manifest import new_manifest, now, sha256_file, write_json
from crystalgf.output import (FORMATS, MANIFEST_FILE, OWN_FILES, RESULTS_FILE, RunOutput, check_output_directory,
                              read_manifest, read_results, remove_own_files)
from crystalgf.pipeline import GenerationSummary, StructureJob, build_structures, jobs_for_constraints, propose_constraints
from crystalgf.progress import progress_bar
from crystalgf.plugins import KINDS, PluginRegistry, RegisteredPlugin
from crystalgf.schema import MAX_STRUCTURES, Constraint, GeneratedCrystal, PluginVersion
from crystalgf.symmetry.wyckoff import space_group_symbol

# pymatgen's notice on noble gases, which have no Pauling electronegativity, is not the user's concern
warnings.filterwarnings("ignore", message="No Pauling electronegativity", category=UserWarning)

_WIDTH = None if sys.stdout.isatty() else 160
stdout = Console(width=_WIDTH)
stderr = Console(stderr=True, width=_WIDTH)


class _Cli(click.Group):
    """The command group: built-in commands plus those plugins add (``crystalgf_add_commands``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_registry().commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, name) or _registry().commands.get(name)

    def invoke(self, ctx: click.Context) -> None:
        """Run the command; its return value is dropped (only ``ctx.exit`` sets the exit code)."""
        try:
            super().invoke(ctx)
        except CrystalGFError as error:
            if os.environ.get("CRYSTALGF_TRACEBACK"):
                raise
            click.echo(f"error: {error}", err=True)
            ctx.exit(2)
        except OSError as error:  # a file that cannot be read or written; other OS errors are not the input's
            if error.filename is None:
                raise
            click.echo(f"error: {error.filename}: {error.strerror or error}", err=True)
            ctx.exit(2)
        except UnicodeDecodeError as error:  # a text input (a configuration, a CIF) in another encoding
            click.echo(f"error: an input file is not UTF-8 text ({error.reason})", err=True)
            ctx.exit(2)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Click's usage errors (a bad option value, a missing argument) in one line too."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError as error:
            error.show()
            sys.exit(error.exit_code)
        except click.UsageError as error:
            hint = f" (see {error.ctx.command_path} --help)" if error.ctx else ""
            click.echo(f"error: {error.format_message().rstrip('.')}{hint}", err=True)
            sys.exit(error.exit_code)
        except click.ClickException as error:
            click.echo(f"error: {error.format_message()}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_Cli)
@click.version_option(package_name="crystalgf-core")
def main() -> None:
    """CrystalGF: generate crystals under strict constraints, M = H(G(C, P), P)."""


class _TrainGroup(click.Group):
    """``crystalgf train h|g``: subcommands come from plugins (``crystalgf_add_train_commands``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_registry().train_commands)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return _registry().train_commands.get(name)


@main.group(cls=_TrainGroup)
def train() -> None:
    """Train a constraint generator (g) or a structure generator (h)."""


@lru_cache(maxsize=1)
def _registry() -> PluginRegistry:
    """The process's plugin registry (:meth:`PluginRegistry.installed`), its load failures warned about once."""
    registry = PluginRegistry.installed()
    for broken in registry.broken:
        stderr.print(f"warning: plugin {broken.source!r} ({broken.package}) failed to load: {broken.error}",
                     highlight=False)
    return registry


def _version(plugin: RegisteredPlugin) -> PluginVersion:
    return PluginVersion(name=plugin.name, package=plugin.package, version=plugin.version)


@main.command()
def plugins() -> None:
    """List every registered G, H, relaxer, predictor, evaluator and dataset, with its package."""
    registry = _registry()
    table = Table(title="CrystalGF plugins")
    for column in ("kind", "name", "package", "description"):
        table.add_column(column)
    for plugin in registry.all():
        table.add_row(plugin.kind.key, plugin.name, f"{plugin.package} {plugin.version}", plugin.cls.description)
    stdout.print(table)
    empty = [kind.title for kind in KINDS if not registry.names(kind.key)]
    if empty:
        stdout.print(f"none installed: {', '.join(empty)}")


option_g = click.option("--g", "g", help=f"Constraint generator (G) [default: {DEFAULT_G}].")
option_h = click.option("--h", "h", help=f"Structure generator (H) [default: {DEFAULT_H}].")
option_g_opts = click.option("--g-option", "g_options", multiple=True, metavar="KEY=VALUE", help="Option for G.")
option_h_opts = click.option("--h-option", "h_options", multiple=True, metavar="KEY=VALUE", help="Option for H.")
option_relax = click.option("--relax", help="Relax each structure with this relaxer, keeping its symmetry (e.g. chgnet).")
option_format = click.option("--format", "structure_format", type=click.Choice(FORMATS),
                             help="Structure files: one CIF each, or one extxyz file [default: cif].")
option_seed = click.option("--seed", type=click.IntRange(min=0), help="Random seed [default: 0].")
option_overwrite = click.option("--overwrite", is_flag=True, help="Replace a non-empty output directory.")
option_resume = click.option("--resume", is_flag=True,
                             help="Continue the unfinished run in the output directory (same command and settings): "
                                  "the structures in its results.jsonl are kept, the rest made as without the "
                                  "interruption.")


@main.command()
@click.option("--config", "config_path", type=PATH, help="YAML run config; flags override it.")
@option_g
@option_h
@click.option("--formula", help="Composition ratio, e.g. SrTiO3 or Ca(OH)2 (G chooses formula units per cell).")
@click.option("--elements", help="Element set, e.g. Sr-Ti-O (G chooses the ratio).")
@click.option("--band-gap", help="Target band gap in eV: a value (1.5) or an interval (1.5:2.0).")
@click.option("--formation-energy", help="Target formation energy in eV/atom: a value or an interval.")
@click.option("--space-group", type=int, help="Fix the space group (1-230); G chooses only the Wyckoff sites.")
@click.option("--max-atoms", type=int, help="Most atoms per primitive cell (a centred group's conventional cell "
              "holds 2-4 times as many), up to 200 [default: 30].")
@click.option("--exact-cell", is_flag=True, default=None, help="Take the formula as the exact cell content: the conventional cell, or the "
              "primitive cell of a centred group (G then proposes its conventional cell).")
@click.option("-n", "n", type=int, help=f"Number of structures, up to {MAX_STRUCTURES:,} [default: 1].")
@click.option("--top-k", type=int, help="Ranked constraints to use, structures spread over them [default: 1].")
@option_seed
@option_relax
@option_format
@option_g_opts
@option_h_opts
@click.option("--batch-size", type=int, help="Structures per H call [default: 16].")
@click.option("-o", "--output", type=PATH, help="Output directory.")
@option_overwrite
@option_resume
def run(config_path: Path | None, overwrite: bool, resume: bool, **flags: Any) -> None:
    """Run G then H: from a formula or element set and targets to structures."""
    _check_resume(overwrite, resume)
    flags["format"] = flags.pop("structure_format")
    flags["g_options"] = parse_options(flags["g_options"])
    flags["h_options"] = parse_options(flags["h_options"])
    config = load_run_config(config_path, flags)
    if config.output is None:
        raise InvalidInputError("no output directory: give -o/--output or 'output' in the config")
    request = config.request()
    check_output_directory(config.output, overwrite, resume)
    registry = _registry()
    g_plugin, h_plugin = registry.get("g", config.g), registry.get("h", config.h)
    relax_plugin = registry.get("relaxer", config.relax) if config.relax else None
    generator = g_plugin.create(**config.g_options)
    structure_generator = h_plugin.create(**config.h_options)
    relaxer = relax_plugin.create(**config.relax_options) if relax_plugin else None
    with stderr.status(f"G {config.g}: proposing constraints for {request.composition_text}"):
        constraints = propose_constraints(generator, [request], config.top_k, config.seed)[0]
    jobs = jobs_for_constraints([(request.request_id, constraints)], config.n, config.seed, [request])
    used = {"g": g_plugin, "h": h_plugin, **({"relax": relax_plugin} if relax_plugin else {})}
    instances = [generator, structure_generator, *([relaxer] if relaxer else [])]
    summary = _generate(jobs, structure_generator, relaxer, used, instances, config.output, config.format,
                        overwrite, resume, config.batch_size, config.seed, "run", config.model_dump(mode="json"))
    _print_summary(summary, config.output)


@main.command()
@option_g
@click.option("--input", "input_path", required=True, type=PATH, help="requests.csv")
@click.option("-o", "--output", required=True, type=PATH, help="constraints.jsonl to write.")
@click.option("--top-k", default=1, show_default=True, type=click.IntRange(min=1), help="Constraints per request.")
@option_seed
@option_g_opts
@click.option("--skip-invalid", is_flag=True, help="Skip (and count) invalid rows instead of stopping.")
@option_overwrite
def constrain(g: str | None, input_path: Path, output: Path, top_k: int, seed: int | None,
              g_options: tuple[str, ...], skip_invalid: bool, overwrite: bool) -> None:
    """Run G alone on a batch of requests; writes one JSON line per (request, rank)."""
    g, seed = g or DEFAULT_G, seed or 0
    if output.exists() and not overwrite:
        raise InvalidInputError(f"{output} exists; choose another path or pass --overwrite")
    if not output.parent.is_dir():
        raise InvalidInputError(f"{output.parent}: no such directory")
    requests, skipped = read_requests(input_path, skip_invalid)
    if not requests:
        raise InvalidInputError(f"{input_path}: no valid requests{_skipped_note(skipped)}")
    _report_skipped(input_path, skipped)
    registry = _registry()
    plugin = registry.get("g", g)
    generator = plugin.create(**(parse_options(g_options) or {}))
    manifest = new_manifest("constrain", seed, {"input": str(input_path), "top_k": top_k},
                            {"g": _version(plugin).to_dict()}, generator.weights_files())
    temporary = output.with_name(output.name + ".tmp")
    written = 0
    try:
        with progress_bar() as progress, temporary.open("w", encoding="utf-8") as handle:
            task = progress.add_task(f"G {g}", total=len(requests))
            for start in range(0, len(requests), 64):
                batch = requests[start:start + 64]
                for request, constraints in zip(batch, propose_constraints(generator, batch, top_k, seed)):
                    for rank, constraint in enumerate(constraints, start=1):
                        handle.write(json.dumps({"id": request.request_id, "rank": rank, **constraint.to_dict()}) + "\n")
                        written += 1
                progress.advance(task, len(batch))
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    write_json(output.with_name(output.name + ".manifest.json"),
               {**manifest, "status": "complete", "finished": now(), "requests": len(requests),
                "skipped": len(skipped), "constraints": written})
    stdout.print(f"wrote {written} constraints for {len(requests)} requests to {output}")


@main.command()
@option_h
@click.option("--input", "input_path", required=True, type=PATH, help="constraints.jsonl")
@click.option("-o", "--output", required=True, type=PATH, help="Output directory.")
@click.option("-n", "n", default=1, show_default=True, type=click.IntRange(min=1, max=MAX_STRUCTURES),
              help=f"Structures per constraint (at most {MAX_STRUCTURES:,} in all).")
@option_seed
@option_relax
@option_format
@option_h_opts
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--skip-invalid", is_flag=True, help="Skip (and count) invalid lines instead of stopping.")
@option_overwrite
@option_resume
def generate(h: str | None, input_path: Path, output: Path, n: int, seed: int | None, relax: str | None,
             structure_format: str | None, h_options: tuple[str, ...], batch_size: int, skip_invalid: bool,
             overwrite: bool, resume: bool) -> None:
    """Run H alone on a batch of constraints (the output of ``crystalgf constrain``)."""
    _check_resume(overwrite, resume)
    h, seed, structure_format = h or DEFAULT_H, seed or 0, structure_format or "cif"
    items, skipped = read_constraints(input_path, skip_invalid)
    if not items:
        raise InvalidInputError(f"{input_path}: no valid constraints{_skipped_note(skipped)}")
    _report_skipped(input_path, skipped)
    if len(items) * n > MAX_STRUCTURES:
        raise InvalidInputError(f"{len(items)} constraints x -n {n} = {len(items) * n:,} structures, more than "
                                f"{MAX_STRUCTURES:,} per run; split the input into several runs")
    check_output_directory(output, overwrite, resume)
    registry = _registry()
    h_plugin = registry.get("h", h)
    relax_plugin = registry.get("relaxer", relax) if relax else None
    structure_generator = h_plugin.create(**(parse_options(h_options) or {}))
    relaxer = relax_plugin.create() if relax_plugin else None
    jobs = jobs_for_constraints([(item_id, [constraint]) for item_id, constraint in items], n, seed)
    used = {"h": h_plugin, **({"relax": relax_plugin} if relax_plugin else {})}
    instances = [structure_generator, *([relaxer] if relaxer else [])]
    settings = {"input": str(input_path), "n": n, "h": h, "relax": relax, "format": structure_format,
                "skipped": len(skipped), "batch_size": batch_size, "h_options": parse_options(h_options) or {},
                "input_sha256": sha256_file(input_path)}
    summary = _generate(jobs, structure_generator, relaxer, used, instances, output, structure_format,
                        overwrite, resume, batch_size, seed, "generate", settings)
    _print_summary(summary, output)


def _generate(jobs: Sequence[StructureJob], structure_generator: Any, relaxer: Any,
              used: dict[str, RegisteredPlugin], instances: Sequence[Any], directory: Path, structure_format: str,
              overwrite: bool, resume: bool, batch_size: int, seed: int, command: str,
              settings: dict[str, Any]) -> GenerationSummary:
    """Run H over the jobs into ``directory``. The manifest says ``running`` until the run ends as
    ``complete``, ``failed`` (a plugin failed; the structures made so far stay) or ``interrupted`` (Ctrl-C,
    SIGTERM); one killed outright still says ``running``. With ``resume`` an unfinished run there is
    continued from the first batch ``results.jsonl`` does not hold completely, so the files end as those
    of an uninterrupted run."""
    versions = {role: _version(plugin) for role, plugin in used.items()}
    weights = [path for instance in instances for path in instance.weights_files()]
    manifest = new_manifest(command, seed, settings, {role: v.to_dict() for role, v in versions.items()}, weights)
    manifest["command_line"] = shlex.join(["crystalgf", *sys.argv[1:]])
    summary, start, created = GenerationSummary(), 0, not directory.exists()
    if resume and (directory / MANIFEST_FILE).is_file():
        previous = read_manifest(directory)
        _check_resumable(directory, previous, manifest)
        lines, records = read_results(directory)
        if previous.get("status") == "complete":
            stderr.print(f"{directory}: the run is complete; nothing to resume", highlight=False)
            return GenerationSummary(records, list(previous.get("failed", [])))
        start, kept = _resume_point(directory, jobs, records, batch_size)
        output = RunOutput(directory, structure_format, keep=(lines[:kept], records[:kept]))
        done = {record.id for record in records[:kept]}
        summary = GenerationSummary(records[:kept], [job.record_id for job in jobs[:start] if job.record_id not in done])
        found = "interrupted" if previous.get("status") == "running" else previous.get("status")
        manifest = {**manifest, "started": previous.get("started", manifest["started"]),
                    "resumed": [*previous.get("resumed", []), {"at": now(), "status": found, "kept": kept,
                                                               **({"error": previous["error"]} if "error" in previous else {})}]}
    else:
        output = RunOutput(directory, structure_format, overwrite)
    write_json(output.manifest_path, manifest)
    received: list[int] = []

    def interrupt(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    restore = signal.signal(signal.SIGTERM, interrupt) if threading.current_thread() is threading.main_thread() else None
    try:
        with progress_bar() as progress:
            task = progress.add_task(f"H {used['h'].name}", total=len(jobs), completed=start)
            made = build_structures(structure_generator, jobs[start:], output, versions, relaxer, batch_size,
                                    on_progress=lambda k: progress.advance(task, k))
    except BaseException as error:
        kept = _count_lines(output.results_path)
        interrupted = isinstance(error, KeyboardInterrupt)
        write_json(output.manifest_path, {**manifest, "status": "interrupted" if interrupted else "failed",
                                          "finished": now(), "structures": kept,
                                          "error": "interrupted" if interrupted else f"{type(error).__name__}: {error}"})
        if not kept and not resume:  # nothing made: leave nothing behind
            _remove_output(directory, created)
            where = "nothing was written"
        else:
            where = (f"{kept} structure(s) kept in {directory} (status {'interrupted' if interrupted else 'failed'}): "
                     "--resume continues, --overwrite starts over")
        if interrupted:
            click.echo(f"error: interrupted; {where}", err=True)
            raise click.exceptions.Exit(128 + (received[0] if received else signal.SIGINT)) from None
        if isinstance(error, CrystalGFError):
            raise GenerationError(f"{error}; {where}") from error
        raise
    finally:
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)
    summary.records += made.records
    summary.failed += made.failed
    summary.reasons.update(made.reasons)
    write_json(output.manifest_path, {**manifest, "status": "complete", "finished": now(),
                                      "structures": len(summary.records), "failed": summary.failed,
                                      "failed_reasons": summary.reasons})
    return summary


def _check_resume(overwrite: bool, resume: bool) -> None:
    if overwrite and resume:
        raise InvalidInputError("--resume and --overwrite exclude each other (continue the run, or start it over)")


def _check_resumable(directory: Path, previous: dict[str, Any], manifest: dict[str, Any]) -> None:
    """An unfinished run of the same command, settings, plugins and weights, no longer running."""
    if previous.get("command") != manifest["command"]:
        raise InvalidInputError(f"{directory} holds the output of `crystalgf {previous.get('command')}`, "
                                f"not of `crystalgf {manifest['command']}`; nothing to resume")
    pid = previous.get("pid")
    if previous.get("status") == "running" and previous.get("host") == platform.node() and isinstance(pid, int) \
            and pid != os.getpid() and _alive(pid):
        raise InvalidInputError(f"{directory} is still being written by process {pid}; resume it once that ends")
    now_settings = json.loads(json.dumps(manifest["settings"], default=str))
    before = previous.get("settings") if isinstance(previous.get("settings"), dict) else {}
    differ = [key for key in sorted(set(before) | set(now_settings))
              if key not in ("output", "input") and before.get(key) != now_settings.get(key)]
    differ = (["seed"] if previous.get("seed") != manifest["seed"] else []) + differ
    differ += [what for what in ("plugins", "weights") if previous.get(what) != manifest[what]]
    if differ:
        raise InvalidInputError(f"{directory} was made with other {', '.join(differ)}; --resume needs the same "
                                "command, plugins and weights (--overwrite starts over)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    return True


def _resume_point(directory: Path, jobs: Sequence[StructureJob], records: Sequence[GeneratedCrystal],
                  batch_size: int) -> tuple[int, int]:
    """Where to continue: the first job of the batch of the last record (that batch may be cut off), and
    how many records come before it."""
    index = {job.record_id: i for i, job in enumerate(jobs)}
    last = -1
    for record in records:
        i = index.get(record.id, -1)
        if i <= last or record.seed != jobs[i].seed or record.constraint.to_dict() != jobs[i].constraint.to_dict():
            raise InvalidInputError(f"{directory / RESULTS_FILE}: record {record.id!r} was not made by this command "
                                    "and settings; --overwrite starts over")
        last = i
    start = last // batch_size * batch_size if last >= 0 else 0
    return start, sum(index[record.id] < start for record in records)


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.endswith(b"\n"))
    except OSError:
        return 0


def _remove_output(directory: Path, created: bool) -> None:
    """Remove what a run wrote into ``directory`` (the directory too where the run created it)."""
    remove_own_files(directory, OWN_FILES)
    if created and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()


def _report_skipped(path: Path, skipped: list[tuple[str, str]]) -> None:
    if skipped:
        where, reason = skipped[0]
        click.echo(f"warning: skipped {len(skipped)} invalid row(s) of {path}; first, {where}: {reason}", err=True)


def _skipped_note(skipped: list[tuple[str, str]]) -> str:
    """Where every row was skipped: how many, and the first one's reason (the error's one line)."""
    return f" ({len(skipped)} invalid row(s) skipped; first, {skipped[0][0]}: {skipped[0][1]})" if skipped else ""


def _print_summary(summary: GenerationSummary, directory: Path) -> None:
    groups: dict[tuple[str, int, str], list] = {}
    for record in summary.records:
        c: Constraint = record.constraint
        groups.setdefault((c.cell_formula, c.space_group, c.wyckoff_text), []).append(record)
    table = Table(title=f"{len(summary.records)} structures in {directory}")
    for column in ("formula", "space group", "Wyckoff sites", "structures", "exact composition",
                   "space group @0.1", "@0.01"):
        table.add_column(column)
    for (formula, space_group, sites), records in groups.items():
        total = len(records)
        table.add_row(formula, f"{space_group} {space_group_symbol(space_group)}", sites, str(total),
                      f"{sum(r.composition_matches for r in records)}/{total}",
                      f"{sum(r.space_group_matches(0.1) for r in records)}/{total}",
                      f"{sum(r.space_group_matches(0.01) for r in records)}/{total}")
    stdout.print(table)
    if summary.failed:
        stdout.print(f"{len(summary.failed)} structure(s) could not be generated: {', '.join(summary.failed[:5])}")
        kinds: dict[str, int] = {}
        for reason in summary.reasons.values():  # "implausible: ...", "unreadable: ...", "H made no structure (...)"
            kind = reason.split(":")[0].split(" (")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        if kinds:
            stdout.print("why: " + ", ".join(f"{count} {kind}" for kind, count in kinds.items()) +
                         " (each one's reason: failed_reasons in manifest.json)")
