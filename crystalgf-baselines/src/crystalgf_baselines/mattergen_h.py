"""H ``mattergen``: structures from an external MatterGen installation (microsoft/mattergen).

MatterGen's pinned dependencies conflict with ours, so it runs in its own environment: ``command`` (or
``CRYSTALGF_MATTERGEN_COMMAND``) is that environment's ``mattergen-generate``. MatterGen takes no space
group, Wyckoff sites or atom counts: each constraint gives it a chemical system and property targets
(their centres), and its structures come back as drawn, whatever their composition and symmetry.
"""

from __future__ import annotations

import math
import re
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import ase.io
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from crystalgf.errors import GenerationError, InvalidInputError, check_number
from crystalgf.interfaces import StructureGenerator
from crystalgf.schema import Constraint

from crystalgf_baselines.external import executable, run_tool

COMMAND_VARIABLE = "CRYSTALGF_MATTERGEN_COMMAND"
CONDITIONS: dict[str, str] = {
    "chemical_system": "chemical_system",
    "band_gap": "dft_band_gap",
    "formation_energy_per_atom": "formation_energy_per_atom",
}
"""What we can condition on -> MatterGen's name (``PROPERTY_SOURCE_IDS``, mattergen/common/utils/globals.py)."""
EXTXYZ = "generated_crystals.extxyz"
CIF_ZIP = "generated_crystals_cif.zip"

Conditions = dict[str, str | float]


def conditions_for(constraint: Constraint, condition_on: Sequence[str]) -> Conditions:
    """MatterGen's ``properties_to_condition_on`` for a constraint: its chemical system (``"O-Sr-Ti"``) and
    the centres of its targets, for the names in ``condition_on``; targets it lacks stay unconditioned."""
    conditions: Conditions = {}
    for name in condition_on:
        if name == "chemical_system":
            conditions[CONDITIONS[name]] = "-".join(sorted(constraint.counts))
        elif name in constraint.properties:
            conditions[CONDITIONS[name]] = constraint.properties[name].center
    return conditions


def group_by_conditions(constraints: Sequence[Constraint],
                        condition_on: Sequence[str]) -> list[tuple[Conditions, list[int]]]:
    """The distinct conditionings, each with the indices of the constraints that share it (first-seen order)."""
    groups: dict[str, tuple[Conditions, list[int]]] = {}
    for index, constraint in enumerate(constraints):
        conditions = conditions_for(constraint, condition_on)
        groups.setdefault(repr(conditions), (conditions, []))[1].append(index)
    return list(groups.values())


def build_command(command: str, results: Path, checkpoint: str, conditions: Conditions, samples: int,
                  batch_size: int, guidance: float, seed: int) -> list[str]:
    """The ``mattergen-generate`` call drawing ``samples`` structures into ``results``.

    A ``checkpoint`` containing ``/`` is a model directory (``--model_path``), anything else a pretrained
    name (``--pretrained-name``). Trajectories are not recorded; ``--seed`` needs a MatterGen whose
    ``mattergen-generate`` takes it.
    """
    per_batch = min(batch_size, samples)
    source = f"--model_path={checkpoint}" if "/" in checkpoint else f"--pretrained-name={checkpoint}"
    line = [command, str(results), source, f"--batch_size={per_batch}",
            f"--num_batches={math.ceil(samples / per_batch)}"]
    if conditions:
        line += [f"--properties_to_condition_on={conditions!r}", f"--diffusion_guidance_factor={guidance}"]
    return [*line, "--record_trajectories=False", f"--seed={seed}"]


def read_output(results: Path) -> list[Structure]:
    """The structures MatterGen wrote into ``results``: the frames of ``generated_crystals.extxyz``, or else
    the ``gen_<i>.cif`` files of ``generated_crystals_cif.zip`` in the order of ``i``."""
    extxyz = results / EXTXYZ
    if extxyz.is_file():
        return [AseAtomsAdaptor.get_structure(atoms) for atoms in ase.io.read(extxyz, index=":", format="extxyz")]
    archive = results / CIF_ZIP
    if not archive.is_file():
        raise GenerationError(f"H mattergen: no {EXTXYZ} or {CIF_ZIP} in {results}")
    with zipfile.ZipFile(archive) as cifs, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = sorted((n for n in cifs.namelist() if n.endswith(".cif")), key=lambda n: int(re.findall(r"\d+", n)[-1]))
        return [Structure.from_str(cifs.read(name).decode(), fmt="cif") for name in names]


class MatterGenGenerator(StructureGenerator):
    """MatterGen, run once per distinct conditioning in a batch.

    ``checkpoint`` is a pretrained name (e.g. ``chemical_system``, ``dft_band_gap``,
    ``chemical_system_energy_above_hull``) or a model directory; ``condition_on`` (comma-separated or a
    list) picks from ``chemical_system``, ``band_gap`` (MatterGen's ``dft_band_gap``) and
    ``formation_energy_per_atom``, and must match what the checkpoint was trained on. A missing or wrong
    setting is a one-line error when the plugin is built, before anything runs. Each call is seeded with
    the first seed of its group, so a structure depends on the batch around it.
    """

    name = "mattergen"
    description = "MatterGen (external install) conditioned on chemical system and targets; no space group"

    def __init__(self, command: str | None = None, checkpoint: str | None = None, guidance: float = 2.0,
                 batch_size: int = 16, condition_on: str | Sequence[str] = "chemical_system"):
        check_number("H mattergen", "guidance", guidance, 0)
        check_number("H mattergen", "batch_size", batch_size, 1, integer=True)
        names = [n.strip() for n in condition_on.split(",")] if isinstance(condition_on, str) else list(condition_on)
        for name in names:
            if name not in CONDITIONS:
                raise InvalidInputError(f"H mattergen: MatterGen cannot condition on {name!r}; "
                                        f"choose from {', '.join(CONDITIONS)}")
        self.command = executable("mattergen", command, "command", COMMAND_VARIABLE, "the mattergen-generate command")
        if not checkpoint:
            raise InvalidInputError("H mattergen: no checkpoint; set --h-option checkpoint=NAME_OR_MODEL_DIR")
        self.checkpoint, self.guidance = checkpoint, float(guidance)
        self.batch_size, self.condition_on = batch_size, names

    def generate(self, constraints: Sequence[Constraint], seeds: Sequence[int]) -> list[Structure | None]:
        structures: list[Structure | None] = [None] * len(constraints)
        with tempfile.TemporaryDirectory(prefix="crystalgf-mattergen-") as temporary:
            for number, (conditions, indices) in enumerate(group_by_conditions(constraints, self.condition_on)):
                results = Path(temporary) / f"group{number}"
                run_tool("mattergen", build_command(self.command, results, self.checkpoint, conditions, len(indices),
                                                    self.batch_size, self.guidance, seeds[indices[0]]),
                         f"set --h-option command=... or {COMMAND_VARIABLE}")
                for index, structure in zip(indices, read_output(results)):
                    structures[index] = structure
        return structures
