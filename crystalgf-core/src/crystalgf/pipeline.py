"""The two stages of a run as a Python API: G proposes constraints, H builds structures.

The CLI (:mod:`crystalgf.cli`) is a thin layer over these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymatgen.core import Structure

from crystalgf.errors import CrystalGFError, GenerationError, PluginFailedError
from crystalgf.interfaces import ConstraintGenerator, Relaxer, StructureGenerator
from crystalgf.output import RunOutput, UnreadableStructureError
from crystalgf.schema import Constraint, GeneratedCrystal, GenerationRequest, PluginVersion
from crystalgf.symmetry.detect import detect_space_groups
from crystalgf.validity import PLAUSIBLE_RATIO, plausibility


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed for one item, derived from the run seed and the item's position."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def propose_constraints(
    generator: ConstraintGenerator, requests: Sequence[GenerationRequest], top_k: int, seed: int
) -> list[list[Constraint]]:
    """Run G and check that every answer honours its request (ratio or element set, group, size); G
    raising anything but a :class:`CrystalGFError` is a :class:`PluginFailedError` naming it."""
    answers = _call(f"G {generator.name!r}", "while proposing constraints", generator.generate, requests, top_k, seed)
    if len(answers) != len(requests):
        raise GenerationError(f"G {generator.name!r} answered {len(answers)} of {len(requests)} requests")
    for request, constraints in zip(requests, answers):
        if not constraints:
            raise GenerationError(f"G {generator.name!r} proposed no constraint for {request.composition_text}")
        for constraint in constraints:
            problem = request.why_not_honoured_by(constraint)
            if problem:
                raise GenerationError(f"G {generator.name!r} proposed {constraint.cell_formula} in "
                                      f"space group {constraint.space_group}, but {problem}")
    return answers


def _call(plugin: str, doing: str, function: Callable[..., Any], *arguments: Any) -> Any:
    """``function(*arguments)``, a plugin's method: its own failure becomes one line naming it."""
    try:
        return function(*arguments)
    except CrystalGFError:
        raise
    except (Exception, SystemExit) as error:  # noqa: BLE001 - whatever the plugin raised, named
        raise PluginFailedError(plugin, doing, error) from error


@dataclass
class StructureJob:
    """One structure to build: its record id, the request or item it answers, constraint and seed."""

    record_id: str
    request_id: str
    constraint: Constraint
    seed: int
    request: GenerationRequest | None = None


@dataclass
class GenerationSummary:
    """What a generation pass produced: the records written, the ids of the structures that were not, and
    why (``reasons``: id -> one line)."""

    records: list[GeneratedCrystal] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)

    def fail(self, record_id: str, reason: str) -> None:
        self.failed.append(record_id)
        self.reasons[record_id] = reason


def build_structures(
    generator: StructureGenerator,
    jobs: Sequence[StructureJob],
    output: RunOutput,
    generators: dict[str, PluginVersion],
    relaxer: Relaxer | None = None,
    batch_size: int = 16,
    on_progress: Callable[[int], None] | None = None,
) -> GenerationSummary:
    """Run H (and optionally a symmetry-preserving relaxation) in batches, writing each result as it comes.

    Jobs are cut into batches from the first job on, so a run resumed at a batch boundary (``jobs`` the
    rest of the jobs from there) builds the same batches. H or the relaxer raising anything but a
    :class:`CrystalGFError`, or answering with the wrong number of structures, is a
    :class:`GenerationError` naming the plugin; what was written before stays.
    """
    summary = GenerationSummary()
    for start in range(0, len(jobs), batch_size):
        batch = list(jobs[start:start + batch_size])
        name = f"H {generator.name!r}"
        structures = _call(name, "while generating", generator.generate, [job.constraint for job in batch],
                           [job.seed for job in batch])
        if not isinstance(structures, (list, tuple)) or len(structures) != len(batch):
            count = len(structures) if isinstance(structures, (list, tuple)) else type(structures).__name__
            raise GenerationError(f"{name} answered {count} for {len(batch)} constraints")
        if any(s is not None and not isinstance(s, Structure) for s in structures):
            raise GenerationError(f"{name} answered something other than a pymatgen Structure or None")
        structures = list(structures)
        energies: list[float | None] = [None] * len(batch)
        if relaxer is not None:
            made = [i for i, structure in enumerate(structures) if structure is not None]
            relaxations = _call(f"relaxer {relaxer.name!r}", "while relaxing",
                                lambda: relaxer.relax([structures[i] for i in made], fix_symmetry=True))
            if not isinstance(relaxations, (list, tuple)) or len(relaxations) != len(made):
                raise GenerationError(f"relaxer {relaxer.name!r} did not answer one relaxation per structure")
            for i, relaxation in zip(made, relaxations):
                structures[i], energies[i] = relaxation.structure, relaxation.energy_per_atom
        for job, structure, energy in zip(batch, structures, energies):
            if structure is None:
                summary.fail(job.record_id, "H made no structure (no draw it accepted, e.g. none plausible within its redraws)")
                continue
            check = plausibility(structure)
            if not check.plausible:
                summary.fail(job.record_id, f"implausible: {'-'.join(check.elements)} at {check.distance:.2f} Å, "
                                            f"{check.ratio:.2f} x the covalent radii sum (at least {PLAUSIBLE_RATIO})")
                continue
            try:
                structure_file, index = output.write_structure(job.record_id, structure, job.constraint)
            except UnreadableStructureError as error:
                summary.fail(job.record_id, f"unreadable: {error}")
                continue
            composition = structure.composition
            record = GeneratedCrystal(
                id=job.record_id,
                request_id=job.request_id,
                request=job.request,
                constraint=job.constraint,
                structure_file=structure_file,
                structure_index=index,
                formula=composition.formula.replace(" ", ""),
                reduced_formula=composition.reduced_formula,
                space_group_by_symprec=detect_space_groups(structure),
                seed=job.seed,
                generators=generators,
                energy_per_atom=energy,
                plausible=check.plausible,
                min_distance_ratio=round(check.ratio, 4),
                closest_pair="-".join(check.elements),
                min_distance=round(check.distance, 4),
            )
            output.append_record(record)
            summary.records.append(record)
        if on_progress is not None:
            on_progress(len(batch))
    return summary


def jobs_for_constraints(
    items: Sequence[tuple[str, Sequence[Constraint]]], per_item: int, seed: int,
    requests: Sequence[GenerationRequest] | None = None,
) -> list[StructureJob]:
    """``per_item`` structures for each (id, ranked constraints), spread round-robin over the ranks."""
    jobs = []
    for item_index, (item_id, constraints) in enumerate(items):
        request = requests[item_index] if requests else None
        for k in range(per_item):
            constraint = constraints[k % len(constraints)]
            jobs.append(StructureJob(f"{item_id}-{k:04d}", item_id, constraint, derive_seed(seed, item_index, k), request))
    return jobs

