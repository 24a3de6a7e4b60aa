"""H ``diffusion``: structures for constraints from the trained diffusion model."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Structure

from crystalgf.errors import InvalidInputError, check_device, check_number
from crystalgf.interfaces import StructureGenerator
from crystalgf.schema import Constraint
from crystalgf.symmetry.detect import detect_space_group
from crystalgf.validity import structure_plausible
from crystalgf_diffusion.batch import to_device
from crystalgf_diffusion.cleanup import STEPS as CLEANUP_STEPS
from crystalgf_diffusion.cleanup import relieve
from crystalgf_diffusion.checkpoint import WEIGHTS_FILE, checkpoint_directory, read_config, sampling_settings
from crystalgf_diffusion.data import collate, decode, encode_constraint
from crystalgf_diffusion.diffusion import prepare, sample
from crystalgf_diffusion.model import Denoiser

STEER_STEPS = 1
"""Gauss-Newton steps of the clean-up per sampling step while steering (the final clean-up takes up to 8)."""


class DiffusionGenerator(StructureGenerator):
    """Samples lattice and Wyckoff free parameters with predictor-corrector steps, then expands the
    orbits: composition and space group hold by construction. Target properties of the constraint
    condition the model; ``guidance`` > 1 strengthens them (classifier-free guidance). ``noise`` scales
    the noise of each sampling step (0: only the start is random; 1: DiffCSP++'s sampler); by default the
    level stored in the checkpoint's ``config.json`` (``sampling.noise``), else 0; ``steps`` likewise
    (``sampling.steps``), else 100. With ``cleanup`` (default on) atoms closer than 0.75 x the sum of their
    covalent radii are pushed apart symmetrically, by moving only the free Wyckoff parameters and the free
    lattice coefficients (:mod:`crystalgf_diffusion.cleanup`): once per sampling step from t = ``steer_from``
    on (default 1: the whole trajectory; one Gauss-Newton step on the predicted clean lattice and the
    current parameters, so the model goes on denoising from a clash-free state; 0 switches this off), then
    fully on the final sample, with a uniform expansion of at most 10 % as the last resort. ``retries``
    (default 2) redraws a structure that fails the plausibility criterion of :mod:`crystalgf.validity`
    (a pair closer than 0.7 x its covalent radii sum) or hides its group at 0.1 Å; a constraint without a
    plausible draw gets no structure (None).
    ``checkpoint`` is a directory or the name of a shipped one (``general-small``, the default, trained on
    Perov-5, the MP-20 sample and Carbon-24; ``perov5-small``; ``mp20-sample-small``)."""

    name = "diffusion"
    description = "symmetry-constrained, property-conditioned diffusion (DiffCSP++-style), shipped checkpoint"
    conditional = True

    def __init__(self, checkpoint: str | None = None, steps: int | None = None, guidance: float = 1.0,
                 noise: float | None = None, batch_size: int = 256, retries: int = 2, device: str = "auto",
                 cleanup: bool = True, steer_from: float = 1.0):
        self.checkpoint = checkpoint_directory(checkpoint, f"H {self.name}")
        noise, steps = sampling_settings(read_config(self.checkpoint), noise, steps)
        for name, value, minimum, integer in (("noise", noise, 0, False), ("guidance", guidance, 0, False),
                                              ("steps", steps, 1, True), ("batch_size", batch_size, 1, True),
                                              ("retries", retries, 0, True)):
            check_number(f"H {self.name}", name, value, minimum, integer=integer)
        self.steps, self.guidance, self.noise, self.batch_size = steps, guidance, noise, batch_size
        self.retries = retries
        if not isinstance(cleanup, bool):
            raise InvalidInputError(f"H {self.name}: cleanup must be true or false, not {cleanup!r}")
        self.cleanup = cleanup
        check_number(f"H {self.name}", "steer_from", steer_from, 0)
        self.steer_from = float(steer_from)
        self.steer_steps = STEER_STEPS
        self.device = check_device(device, torch.cuda.is_available())
        self._model  # noqa: B018 - load and check the checkpoint now, before anything is written

    @cached_property
    def _model(self):
        return Denoiser.from_checkpoint(self.checkpoint, self.device)

    def weights_files(self) -> list[Path]:
        return [self.checkpoint / WEIGHTS_FILE]

    def generate(self, constraints: Sequence[Constraint], seeds: Sequence[int]) -> list[Structure | None]:
        """One structure per constraint; a structure that fails the plausibility criterion
        (:func:`crystalgf.validity.structure_plausible`) or in which spglib (0.1 Å) finds another group than
        requested is drawn again from a seed derived from its own, up to ``retries`` times, keeping the first
        acceptable draw, else the first plausible one (its group exact, only hidden at 0.1 Å), else None."""
        structures = self._draw(constraints, seeds)
        plausible = [s if s is not None and structure_plausible(s) else None for s in structures]
        pending = [i for i, (c, s) in enumerate(zip(constraints, plausible)) if not _shows_group(s, c)]
        for attempt in range(1, self.retries + 1):
            if not pending:
                break
            redrawn = self._draw([constraints[i] for i in pending], [_retry_seed(seeds[i], attempt) for i in pending])
            accepted = set()
            for i, structure in zip(pending, redrawn):
                if structure is None or not structure_plausible(structure):
                    continue
                if _shows_group(structure, constraints[i]):
                    plausible[i] = structure
                    accepted.add(i)
                elif plausible[i] is None:
                    plausible[i] = structure
            pending = [i for i in pending if i not in accepted]
        return plausible

    def _draw(self, constraints: Sequence[Constraint], seeds: Sequence[int]) -> list[Structure | None]:
        structures: list[Structure | None] = []
        for first in range(0, len(constraints), self.batch_size):
            samples = [encode_constraint(c) for c in constraints[first:first + self.batch_size]]
            if not self.conditional:
                for item in samples:
                    item.properties = {}
            batch = to_device(prepare(collate(samples)), self.device)
            masks = batch["k_mask"].cpu().numpy()

            def steer(k: torch.Tensor, f: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
                k2, f2 = _relieve_all(samples, k.cpu().numpy(), f.cpu().numpy(), masks, self.steer_steps, final=False)
                return torch.tensor(k2, dtype=k.dtype, device=k.device), torch.tensor(f2, dtype=f.dtype, device=f.device)

            k, f = sample(self._model, batch, seeds[first:first + self.batch_size], self.steps, self.guidance,
                          self.noise, steer=steer if self.cleanup and self.steer_from > 0 else None,
                          steer_from=self.steer_from)
            k, f = k.cpu().numpy().astype(float), f.cpu().numpy().astype(float)
            if self.cleanup:
                k, f = _relieve_all(samples, k, f, masks)
            offset = 0
            for index, item in enumerate(samples):
                count = len(item.orbits)
                structures.append(decode(item, k[index], f[offset:offset + count]))
                offset += count
        return structures


def _relieve_all(samples, k: np.ndarray, f: np.ndarray, masks: np.ndarray, steps: int = CLEANUP_STEPS,
                 final: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The symmetric clean-up of every crystal of a batch: lattice coefficients (B, 6), free parameters (orbits, 3)."""
    k, f = k.astype(float).copy(), f.astype(float).copy()
    offset = 0
    for index, item in enumerate(samples):
        count = len(item.orbits)
        k[index], f[offset:offset + count], _ = relieve(item.space_group, item.orbits, k[index],
                                                        f[offset:offset + count], masks[index], steps=steps,
                                                        final=final)
        offset += count
    return k, f


def _shows_group(structure: Structure | None, constraint: Constraint) -> bool:
    """A structure (not None) in which spglib finds the requested group at 0.1 Å."""
    return structure is not None and detect_space_group(structure, 0.1) == constraint.space_group


def _retry_seed(seed: int, attempt: int) -> int:
    """A seed for the ``attempt``-th redraw that depends only on the crystal's own seed."""
    return int(np.random.SeedSequence([int(seed), attempt]).generate_state(1)[0])


class UnconditionedDiffusionGenerator(DiffusionGenerator):
    """The same model with property conditioning switched off (the DiffCSP++ setting)."""

    name = "diffusion-unconditioned"
    description = "the diffusion H without property conditioning (DiffCSP++ setting)"
    conditional = False

    def __init__(self, checkpoint: str | None = None, steps: int | None = None, noise: float | None = None,
                 batch_size: int = 256, retries: int = 2, device: str = "auto", cleanup: bool = True,
                 steer_from: float = 1.0):
        super().__init__(checkpoint, steps, 1.0, noise, batch_size, retries, device, cleanup, steer_from)
