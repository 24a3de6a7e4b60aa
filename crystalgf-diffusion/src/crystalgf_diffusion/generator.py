"""H ``diffusion``: structures for constraints from the trained diffusion model."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Structure

from crystalgf.errors import MissingWeightsError, check_device, check_number
from crystalgf.interfaces import StructureGenerator
from crystalgf.schema import Constraint
from crystalgf.symmetry.detect import detect_space_group
from crystalgf.validity import structure_valid
from crystalgf_diffusion.batch import to_device
from crystalgf_diffusion.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, read_config, sampling_settings
from crystalgf_diffusion.data import collate, decode, encode_constraint
from crystalgf_diffusion.diffusion import prepare, sample

SHIPPED = Path(__file__).parent / "weights"
PACKAGED_CHECKPOINT = SHIPPED / "general-small"
ENVIRONMENT_VARIABLE = "CRYSTALGF_DIFFUSION_CHECKPOINT"


def shipped_checkpoint(path: Path) -> Path:
    """``path``, or the shipped checkpoint of that name (e.g. ``mp20-sample-small``) where no such folder exists."""
    return SHIPPED / path.name if not path.exists() and len(path.parts) == 1 and (SHIPPED / path.name).is_dir() else path


class DiffusionGenerator(StructureGenerator):
    """Samples lattice and Wyckoff free parameters with predictor-corrector steps, then expands the
    orbits: composition and space group hold by construction. Target properties of the constraint
    condition the model; ``guidance`` > 1 strengthens them (classifier-free guidance). ``noise`` scales
    the noise of each sampling step (0: only the start is random; 1: DiffCSP++'s sampler); by default the
    level stored in the checkpoint's ``config.json`` (``sampling.noise``), else 0; ``steps`` likewise
    (``sampling.steps``), else 100. ``retries`` (default 2)
    redraws a structure that has two atoms closer than 0.5 Å or hides its group at 0.1 Å.
    ``checkpoint`` is a directory or the name of a shipped one (``general-small``, the default, trained on
    Perov-5, the MP-20 sample and Carbon-24; ``perov5-small``; ``mp20-sample-small``)."""

    name = "diffusion"
    description = "symmetry-constrained, property-conditioned diffusion (DiffCSP++-style), shipped checkpoint"
    conditional = True

    def __init__(self, checkpoint: str | None = None, steps: int | None = None, guidance: float = 1.0,
                 noise: float | None = None, batch_size: int = 256, retries: int = 2, device: str = "auto"):
        candidates = [Path(p) for p in (checkpoint, os.environ.get(ENVIRONMENT_VARIABLE)) if p] or [PACKAGED_CHECKPOINT]
        self.checkpoint = shipped_checkpoint(candidates[0])
        if not (self.checkpoint / WEIGHTS_FILE).is_file() or not (self.checkpoint / CONFIG_FILE).is_file():
            raise MissingWeightsError(
                f"H {self.name}", [self.checkpoint],
                f"pass --h-option checkpoint=DIR (with {WEIGHTS_FILE} and {CONFIG_FILE}) or set {ENVIRONMENT_VARIABLE}; "
                "train one with crystalgf train h",
            )
        noise, steps = sampling_settings(read_config(self.checkpoint), noise, steps)
        for name, value, minimum, integer in (("noise", noise, 0, False), ("guidance", guidance, 0, False),
                                              ("steps", steps, 1, True), ("batch_size", batch_size, 1, True),
                                              ("retries", retries, 0, True)):
            check_number(f"H {self.name}", name, value, minimum, integer=integer)
        self.steps, self.guidance, self.noise, self.batch_size = steps, guidance, noise, batch_size
        self.retries = retries
        self.device = check_device(device, torch.cuda.is_available())
        self._model  # noqa: B018 - load and check the checkpoint now, before anything is written

    @cached_property
    def _model(self):
        return load_checkpoint(self.checkpoint, self.device)[0]

    def weights_files(self) -> list[Path]:
        return [self.checkpoint / WEIGHTS_FILE]

    def generate(self, constraints: Sequence[Constraint], seeds: Sequence[int]) -> list[Structure | None]:
        """One structure per constraint; with ``retries`` > 0 a structure with two atoms closer than 0.5 Å
        or in which spglib (0.1 Å) finds another group than requested is drawn again from a seed derived
        from its own, up to ``retries`` times, keeping the first acceptable draw (else the first draw)."""
        structures = self._draw(constraints, seeds)
        pending = [i for i, (c, s) in enumerate(zip(constraints, structures)) if not _acceptable(s, c)] \
            if self.retries else []
        for attempt in range(1, self.retries + 1):
            if not pending:
                break
            redrawn = self._draw([constraints[i] for i in pending], [_retry_seed(seeds[i], attempt) for i in pending])
            accepted = {i for i, structure in zip(pending, redrawn) if _acceptable(structure, constraints[i])}
            for i, structure in zip(pending, redrawn):
                if i in accepted:
                    structures[i] = structure
            pending = [i for i in pending if i not in accepted]
        return structures

    def _draw(self, constraints: Sequence[Constraint], seeds: Sequence[int]) -> list[Structure | None]:
        structures: list[Structure | None] = []
        for first in range(0, len(constraints), self.batch_size):
            samples = [encode_constraint(c) for c in constraints[first:first + self.batch_size]]
            if not self.conditional:
                for item in samples:
                    item.properties = {}
            batch = to_device(prepare(collate(samples)), self.device)
            k, f = sample(self._model, batch, seeds[first:first + self.batch_size], self.steps, self.guidance,
                          self.noise)
            k, f = k.cpu(), f.cpu()
            offset = 0
            for index, item in enumerate(samples):
                count = len(item.orbits)
                structures.append(decode(item, k[index].numpy(), f[offset:offset + count].numpy()))
                offset += count
        return structures


def _acceptable(structure: Structure | None, constraint: Constraint) -> bool:
    """Valid (no two atoms closer than 0.5 Å) and showing the requested group at 0.1 Å."""
    return structure is not None and structure_valid(structure) and \
        detect_space_group(structure, 0.1) == constraint.space_group


def _retry_seed(seed: int, attempt: int) -> int:
    """A seed for the ``attempt``-th redraw that depends only on the crystal's own seed."""
    return int(np.random.SeedSequence([int(seed), attempt]).generate_state(1)[0])


class UnconditionedDiffusionGenerator(DiffusionGenerator):
    """The same model with property conditioning switched off (the DiffCSP++ setting)."""

    name = "diffusion-unconditioned"
    description = "the diffusion H without property conditioning (DiffCSP++ setting)"
    conditional = False

    def __init__(self, checkpoint: str | None = None, steps: int | None = None, noise: float | None = None,
                 batch_size: int = 256, retries: int = 2, device: str = "auto"):
        super().__init__(checkpoint, steps, 1.0, noise, batch_size, retries, device)
