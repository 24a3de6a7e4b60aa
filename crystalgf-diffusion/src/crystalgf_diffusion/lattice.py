"""The O(3)-invariant log-space lattice representation of DiffCSP++ with crystal-family constraints.

A lattice with metric G = L L^T is represented by k in R^6 with S = 1/2 log G = sum_i k_i B_i over
the symmetric basis B_1..B_6 (three off-diagonal, two traceless diagonal, identity). A crystal
family fixes some k_i (mask 0, value ``bias``), so every lattice built from masked k obeys the
family's constraints exactly; exp(S) is a lattice matrix with metric G.
"""

from __future__ import annotations

import math

import torch

BASIS = torch.tensor([
    [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
    [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]],
    [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]],
    [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 0.0]],
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -2.0]],
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
])
FAMILIES = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "hexagonal", "cubic")
"""Crystal families; trigonal groups (in their hexagonal setting) belong to the hexagonal family."""

MASKS = torch.tensor([
    [1, 1, 1, 1, 1, 1],
    [0, 1, 0, 1, 1, 1],  # unique axis b: only a-c may couple
    [0, 0, 0, 1, 1, 1],
    [0, 0, 0, 0, 1, 1],
    [0, 0, 0, 0, 1, 1],
    [0, 0, 0, 0, 0, 1],
], dtype=torch.float32)
BIASES = torch.zeros(6, 6)
BIASES[4, 0] = -math.log(3.0) / 4.0  # gamma = 120 degrees


def family_index(crystal_system: str) -> int:
    """Index into :data:`FAMILIES` of a crystal system name (trigonal -> hexagonal)."""
    return FAMILIES.index("hexagonal" if crystal_system == "trigonal" else crystal_system)


def _symmetric_function(matrix: torch.Tensor, function) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag_embed(function(values)) @ vectors.transpose(-1, -2)


def lattice_to_k(lattice: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) lattice matrices (rows a, b, c) -> (B, 6) coefficients k."""
    metric = lattice @ lattice.transpose(-1, -2)
    log_stretch = 0.5 * _symmetric_function(metric, torch.log)
    basis = BASIS.to(lattice)
    return torch.einsum("bij,kij->bk", log_stretch, basis) / torch.einsum("kij,kij->k", basis, basis)


def k_to_lattice(k: torch.Tensor) -> torch.Tensor:
    """(B, 6) coefficients -> (B, 3, 3) symmetric lattice matrices exp(S)."""
    log_stretch = torch.einsum("bk,kij->bij", k, BASIS.to(k))
    return _symmetric_function(log_stretch, torch.exp)


def constrain_k(k: torch.Tensor, family: torch.Tensor) -> torch.Tensor:
    """Apply each crystal's family constraint: free coefficients kept, fixed ones set to their value."""
    mask, bias = MASKS.to(k)[family], BIASES.to(k)[family]
    return k * mask + bias
