"""Batches of crystals as plain tensors (torch only, no structure libraries): orbit expansion,
pull-back of atom vectors onto free parameters, and sub-batches of a collated data set, so a data
set is collated once and trained on any device."""

from __future__ import annotations

import torch

PROPERTIES = ("band_gap", "formation_energy_per_atom")
"""Conditioning properties, in the order of the model's property inputs."""

PER_CRYSTAL = ("k", "family", "properties", "has_property")
PER_ORBIT = ("f", "free", "orbit_crystal")
PER_ATOM = ("atom_type", "atom_orbit", "atom_crystal", "linear", "offset")
COLLATED = PER_CRYSTAL + PER_ORBIT + PER_ATOM
"""The tensors of a collated batch (see :func:`crystalgf_diffusion.data.collate`)."""


def expand(batch: dict[str, torch.Tensor], f: torch.Tensor) -> torch.Tensor:
    """(orbits, 3) free parameters -> (atoms, 3) fractional coordinates in [0, 1)."""
    free = (f * batch["free"])[batch["atom_orbit"]]
    return torch.remainder(torch.einsum("aij,aj->ai", batch["linear"], free) + batch["offset"], 1.0)


def pull_back(batch: dict[str, torch.Tensor], atom_vectors: torch.Tensor) -> torch.Tensor:
    """Per-atom vectors in fractional space -> per-orbit vectors on the free parameters (sum of A_j^T v_j)."""
    per_atom = torch.einsum("aij,ai->aj", batch["linear"], atom_vectors)
    orbits = torch.zeros(len(batch["f"]), 3, dtype=atom_vectors.dtype, device=atom_vectors.device)
    orbits.index_add_(0, batch["atom_orbit"], per_atom)
    return orbits * batch["free"]


def select(batch: dict[str, torch.Tensor], crystals: torch.Tensor) -> dict[str, torch.Tensor]:
    """The sub-batch of the given crystals, in that order: the same tensors as collating those crystals.

    Orbits and atoms of a collated batch are contiguous per crystal; their indices are renumbered.
    """
    crystals = crystals.to(batch["k"].device)
    count = len(batch["k"])
    orbit_counts = torch.bincount(batch["orbit_crystal"], minlength=count)
    atom_counts = torch.bincount(batch["atom_crystal"], minlength=count)
    orbits = _ranges(_starts(orbit_counts)[crystals], orbit_counts[crystals])
    atoms = _ranges(_starts(atom_counts)[crystals], atom_counts[crystals])
    positions = torch.arange(len(crystals), device=crystals.device)
    new_orbit_crystal = torch.repeat_interleave(positions, orbit_counts[crystals])
    new_atom_crystal = torch.repeat_interleave(positions, atom_counts[crystals])
    old_orbit = batch["atom_orbit"][atoms]
    first_orbit = _starts(orbit_counts[crystals])[new_atom_crystal]
    sub = {name: batch[name][crystals] for name in PER_CRYSTAL}
    sub.update({name: batch[name][orbits] for name in ("f", "free")})
    sub.update({name: batch[name][atoms] for name in ("atom_type", "linear", "offset")})
    sub["orbit_crystal"] = new_orbit_crystal
    sub["atom_crystal"] = new_atom_crystal
    sub["atom_orbit"] = old_orbit - _starts(orbit_counts)[batch["orbit_crystal"][old_orbit]] + first_orbit
    return sub


def to_device(batch: dict[str, torch.Tensor], device: str | torch.device) -> dict[str, torch.Tensor]:
    """Every tensor of a batch on ``device``."""
    return {name: tensor.to(device) for name, tensor in batch.items()}


def _starts(counts: torch.Tensor) -> torch.Tensor:
    """Exclusive cumulative sum: where each group of a contiguous layout begins."""
    return torch.cumsum(counts, 0) - counts


def _ranges(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The concatenation of range(start, start + length) for each pair."""
    offsets = torch.repeat_interleave(starts - _starts(lengths), lengths)
    return offsets + torch.arange(int(lengths.sum()), device=starts.device)
