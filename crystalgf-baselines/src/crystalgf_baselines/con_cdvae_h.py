"""H ``con-cdvae``: structures from an external Con-CDVAE checkout (cyye001/Con-CDVAE, ``scripts/gen_crystal.py``).

Con-CDVAE's pinned dependencies conflict with ours, so it runs with that environment's interpreter
(``python`` or ``CRYSTALGF_CONCDVAE_PYTHON``) in the checkout named by ``checkout`` (or
``CRYSTALGF_CONCDVAE_CHECKOUT``). It takes no space group, Wyckoff sites or formula: each constraint
gives it the centres of its property targets and ``n_atom`` (atoms per cell), and ``gen_crystal.py``
keeps the columns its prior was trained on (the shipped ``mp20_format`` default prior:
``formation_energy_per_atom``; its full prior also ``band_gap`` and ``n_atom``). Structures come back as drawn.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pymatgen.core import Lattice, Structure

from crystalgf.errors import GenerationError, InvalidInputError, check_number
from crystalgf.interfaces import StructureGenerator
from crystalgf.schema import Constraint

from crystalgf_baselines.external import executable, run_tool, setting

CHECKOUT_VARIABLE = "CRYSTALGF_CONCDVAE_CHECKOUT"
PYTHON_VARIABLE = "CRYSTALGF_CONCDVAE_PYTHON"
SCRIPT = Path("scripts") / "gen_crystal.py"
DEFAULT_MODEL = Path("src") / "model" / "mp20_format"
"""The pretrained model shipped in the checkout (formation-energy conditioned, trained on MP-20)."""
DEFAULT_REFDATA = Path("data") / "mp4conz" / "train.csv"
"""Where the prior draws the conditions a row lacks (as in the checkout's conf/gen/default.yaml)."""

Row = dict[str, float]


def condition_row(constraint: Constraint) -> Row:
    """A row of gen_crystal.py's condition CSV: ``n_atom`` and the centre of each property target."""
    targets = {name: target.center for name, target in sorted(constraint.properties.items())}
    return {"n_atom": sum(constraint.counts.values()), **targets}


def plan_calls(constraints: Sequence[Constraint]) -> list[list[tuple[Row, list[int]]]]:
    """Constraints grouped by their row, and the groups by their columns: one call per column set, holding
    one CSV row per group (with the indices of its constraints)."""
    calls: dict[tuple[str, ...], dict[tuple[float, ...], tuple[Row, list[int]]]] = {}
    for index, constraint in enumerate(constraints):
        row = condition_row(constraint)
        calls.setdefault(tuple(row), {}).setdefault(tuple(row.values()), (row, []))[1].append(index)
    return [list(groups.values()) for groups in calls.values()]


def write_conditions(path: Path, rows: Sequence[Row]) -> None:
    """The condition CSV (``label`` then the condition columns); row ``i`` is labelled ``g<i>``."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["label", *rows[0]])
        for number, row in enumerate(rows):
            writer.writerow([f"g{number}", *row.values()])


def build_config(model_path: Path, conditions: Path, refdata: Path, seed: int, samples: int, batch_size: int,
                 model_file: str | None, prior: str, prior_file: str | None) -> dict[str, Any]:
    """gen_crystal.py's config (the keys of the checkout's conf/gen/default.yaml) drawing at least
    ``samples`` structures per condition row; ``None`` files mean the latest checkpoint."""
    per_batch = min(batch_size, samples)
    return {
        "model_path": str(model_path), "prior_path": None, "model_file": model_file, "prior_file": prior_file,
        "prior_label": prior, "label": "", "deterministic": True, "seed": seed, "batch_size": per_batch,
        "down_sample": 1, "num_batches_to_samples": math.ceil(samples / per_batch), "save_traj": False,
        "down_sample_traj_step": 10, "num_samples_per_z": 1, "use_one": True, "input_path": str(conditions),
        "refdata_path": str(refdata), "disable_bar": True, "min_sigma": 0.0, "step_lr": 1e-4, "n_step_each": 100,
    }


def build_command(python: str, checkout: Path, config: Path) -> list[str]:
    """The gen_crystal.py call."""
    return [python, str(checkout / SCRIPT), "--config", str(config)]


def read_output(path: Path) -> list[Structure]:
    """The structures of a gen_crystal.py output ``eval_gen_<label>.pt``, read as its scripts/pt2cif.py does:
    for each set of samples (first axis), crystals of ``num_atoms`` atoms cut in order from
    ``frac_coords``/``atom_types``, cells from ``lengths``/``angles``. Imports torch here, not at import time."""
    if not path.is_file():
        raise GenerationError(f"H con-cdvae: gen_crystal.py wrote no {path.name}")
    try:
        import torch
    except ImportError:
        raise InvalidInputError("H con-cdvae: reading its output needs torch; "
                                "install torch (e.g. the CPU build: pip install torch==2.13.0)") from None
    with torch.serialization.safe_globals([argparse.Namespace]):  # its 'eval_setting' is the script's args
        data = torch.load(path, map_location="cpu", weights_only=True)
    structures = []
    for sample, counts in enumerate(data["num_atoms"].tolist()):
        start = 0
        for crystal, count in enumerate(counts):
            lattice = Lattice.from_parameters(*data["lengths"][sample][crystal].tolist(),
                                              *data["angles"][sample][crystal].tolist())
            atoms = slice(start, start + count)
            structures.append(Structure(lattice, data["atom_types"][sample][atoms].tolist(),
                                        data["frac_coords"][sample][atoms].tolist(), to_unit_cell=True))
            start += count
    return structures


class ConCdvaeGenerator(StructureGenerator):
    """Con-CDVAE, run once per set of condition columns in a batch (one CSV row per distinct conditioning).

    ``model_path`` (default: the checkout's src/model/mp20_format) holds ``hparams.yaml`` and the
    checkpoints; ``model_file``/``prior_file`` pick checkpoints (default: the latest), ``prior`` is the
    prior's label. Constraints must carry the targets the model was trained on. A missing or wrong setting
    is a one-line error when the plugin is built, before anything runs. Each call is seeded with the first
    seed of its constraints, so a structure depends on the batch around it.
    """

    name = "con-cdvae"
    description = "Con-CDVAE (external checkout) conditioned on targets and atom count; no space group"

    def __init__(self, checkout: str | None = None, python: str | None = None, model_path: str | None = None,
                 model_file: str | None = None, prior: str = "prior_default", prior_file: str | None = None,
                 refdata: str | None = None, batch_size: int = 20):
        check_number("H con-cdvae", "batch_size", batch_size, 1, integer=True)
        checkout = setting("con-cdvae", checkout, "checkout", CHECKOUT_VARIABLE, "the Con-CDVAE checkout")
        self.checkout = Path(checkout).resolve()  # the tool runs there: every path we give it is absolute
        if not self.checkout.is_dir():
            raise InvalidInputError(f"H con-cdvae: checkout {self.checkout} not found; "
                                    f"set --h-option checkout=... or {CHECKOUT_VARIABLE}")
        self.python = executable("con-cdvae", python, "python", PYTHON_VARIABLE, "the Con-CDVAE environment's python")
        self.model = Path(model_path).resolve() if model_path else self.checkout / DEFAULT_MODEL
        if not self.model.is_dir():
            raise InvalidInputError(f"H con-cdvae: model directory {self.model} not found; "
                                    "set --h-option model_path=...")
        self.refdata = Path(refdata).resolve() if refdata else self.checkout / DEFAULT_REFDATA
        self.model_file, self.prior, self.prior_file, self.batch_size = model_file, prior, prior_file, batch_size

    def generate(self, constraints: Sequence[Constraint], seeds: Sequence[int]) -> list[Structure | None]:
        structures: list[Structure | None] = [None] * len(constraints)
        with tempfile.TemporaryDirectory(prefix="crystalgf-concdvae-") as temporary:
            for number, groups in enumerate(plan_calls(constraints)):
                work = Path(temporary) / f"call{number}"
                mirror = work / "model"  # gen_crystal.py writes eval_gen_<label>.pt next to the model: link it here
                mirror.mkdir(parents=True)
                for entry in self.model.iterdir():
                    if not entry.name.startswith("eval_gen_"):
                        (mirror / entry.name).symlink_to(entry)
                write_conditions(work / "conditions.csv", [row for row, _ in groups])
                samples = max(len(indices) for _, indices in groups)
                config = build_config(mirror, work / "conditions.csv", self.refdata, seeds[groups[0][1][0]], samples,
                                      self.batch_size, self.model_file, self.prior, self.prior_file)
                (work / "gen.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
                run_tool("con-cdvae", build_command(self.python, self.checkout, work / "gen.yaml"),
                         f"set --h-option python=... or {PYTHON_VARIABLE}", cwd=self.checkout,
                         env={**os.environ, "PROJECT_ROOT": str(self.checkout)})
                for label, (_, indices) in enumerate(groups):
                    for index, structure in zip(indices, read_output(mirror / f"eval_gen_g{label}.pt")):
                        structures[index] = structure
        return structures
