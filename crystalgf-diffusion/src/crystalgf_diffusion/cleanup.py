"""A symmetric clean-up of sampled crystals: pushes apart atoms that are too close by moving only the
free Wyckoff parameters of their orbits and the lattice coefficients their crystal family leaves free,
then, where that is not enough, expands the lattice uniformly.

The space group, the Wyckoff sites and the composition stay exact: every atom is still x_j = A_j f + t_j
of its orbit, and the lattice keeps its family's constraints (only the free coefficients of k move).
Each pair closer than ``target`` x the sum of its covalent radii (periodic images and an orbit's own
atoms included; the radii and the plausibility criterion are :mod:`crystalgf.validity`'s) gives a
residual d - target (r_a + r_b); a damped Gauss-Newton step makes the smallest change that removes the
residuals to first order, in the metric of the atoms' squared displacements (lattice coefficients
weighted ``LATTICE_WEIGHT`` times more, so atoms move before the cell deforms). A few steps, with
the pair list refreshed each time, usually suffice. Numpy only (a neighbour search and a small linear
solve per step, about a millisecond).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.optimization.neighbors import find_points_in_spheres

from crystalgf.validity import PLAUSIBLE_RATIO, covalent_radius
from crystalgf_diffusion.lattice import BASIS
from crystalgf_diffusion.wyckoff import orbit_template

TARGET_RATIO = 0.75
"""Pairs are pushed apart to this fraction of their covalent radii sum (a margin above the criterion)."""
STEPS = 8
LATTICE_WEIGHT = 4.0
MAX_STEP = 0.5  # Å, the largest displacement of one step
MAX_EXPANSION = 1.1
"""The largest uniform expansion of the lattice (in length) allowed to reach the criterion at the end."""
EXPANSION_MARGIN = 1.01
_BASIS = BASIS.double().numpy()


@dataclass
class _Atoms:
    linear: np.ndarray  # (n, 3, 3)
    offset: np.ndarray  # (n, 3)
    orbit: np.ndarray  # (n,)
    radius: np.ndarray  # (n,)
    free: np.ndarray  # (orbits, 3)


def _atoms(space_group: int, orbits: list[tuple[str, str]]) -> _Atoms:
    linear, offset, orbit, radius, free = [], [], [], [], []
    for index, (element, label) in enumerate(orbits):
        template = orbit_template(space_group, label)
        linear.append(template.linear)
        offset.append(template.offset)
        orbit += [index] * template.multiplicity
        radius += [covalent_radius(element)] * template.multiplicity
        free.append(template.free)
    return _Atoms(np.concatenate(linear), np.concatenate(offset), np.array(orbit), np.array(radius), np.array(free))


def lattice_matrix(k: np.ndarray) -> np.ndarray:
    """exp(sum_i k_i B_i), as :func:`crystalgf_diffusion.lattice.k_to_lattice` (numpy, float64)."""
    values, vectors = np.linalg.eigh(np.einsum("k,kij->ij", k, _BASIS))
    return (vectors * np.exp(values)) @ vectors.T


def _positions(atoms: _Atoms, f: np.ndarray) -> np.ndarray:
    return np.mod(np.einsum("aij,aj->ai", atoms.linear, (f * atoms.free)[atoms.orbit]) + atoms.offset, 1.0)


def _close_pairs(atoms: _Atoms, lattice: np.ndarray, fractional: np.ndarray, ratio: float):
    """Each pair closer than ``ratio`` x its radii sum, once: centres, neighbours, fractional vectors from
    centre to neighbour (image included), distances, radii sums."""
    cartesian = np.ascontiguousarray(fractional @ lattice)
    cutoff = float(ratio * 2 * atoms.radius.max())
    centres, neighbours, images, distances = find_points_in_spheres(
        cartesian, cartesian, r=cutoff, pbc=np.array([1, 1, 1], dtype=np.int64),
        lattice=np.ascontiguousarray(lattice, dtype=float), tol=1e-8)
    centres, neighbours = centres.astype(int), neighbours.astype(int)
    # One of the two orders of a pair; of an atom and its own image, the image with positive first offset.
    first = images[:, 0] * 9 + images[:, 1] * 3 + images[:, 2]
    once = (centres < neighbours) | ((centres == neighbours) & (first > 0))
    sums = atoms.radius[centres] + atoms.radius[neighbours]
    keep = once & (distances < ratio * sums)
    vectors = fractional[neighbours[keep]] + images[keep] - fractional[centres[keep]]
    return centres[keep], neighbours[keep], vectors, distances[keep], sums[keep]


def min_ratio(atoms: _Atoms, lattice: np.ndarray, f: np.ndarray) -> float:
    """The smallest distance / radii sum of a crystal (at most 2, the search's reach)."""
    _, _, _, distances, sums = _close_pairs(atoms, lattice, _positions(atoms, f), 2.0)
    return float((distances / sums).min()) if len(distances) else 2.0


def relieve(space_group: int, orbits: list[tuple[str, str]], k: np.ndarray, f: np.ndarray, k_mask: np.ndarray,
            target: float = TARGET_RATIO, steps: int = STEPS, lattice_weight: float = LATTICE_WEIGHT,
            max_expansion: float = MAX_EXPANSION, seed: int = 0, final: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """Lattice coefficients and free parameters with too-close atoms pushed apart: (k, f, worst ratio after).

    ``k_mask`` marks the coefficients the crystal family leaves free. Returns the input unchanged where no
    pair is closer than ``target`` x its radii sum. A worst ratio still under the criterion after the steps
    is lifted to just above it by a uniform expansion of at most ``max_expansion``; a crystal that needs
    more keeps its size (and fails the criterion: the caller redraws it). With ``final`` false (steering
    during sampling) only the steps are taken: no expansion, and the worst ratio is not computed (nan).
    """
    atoms = _atoms(space_group, orbits)
    k, f = np.array(k, dtype=float), np.array(f, dtype=float)
    if not (np.isfinite(k).all() and np.isfinite(f).all()):
        return k, f, 0.0
    free_f = np.flatnonzero(atoms.free.ravel() > 0)
    free_k = np.flatnonzero(np.asarray(k_mask) > 0)
    random = np.random.default_rng(seed)
    for _ in range(steps):
        lattice = lattice_matrix(k)
        fractional = _positions(atoms, f)
        centres, neighbours, vectors, distances, sums = _close_pairs(atoms, lattice, fractional, target)
        if not len(centres):
            break
        cartesian = vectors @ lattice
        tiny = distances < 1e-6
        if tiny.any():  # coinciding atoms: an arbitrary direction to part them
            cartesian[tiny] = random.normal(size=(int(tiny.sum()), 3))
        units = cartesian / np.linalg.norm(cartesian, axis=1)[:, None]
        # d(distance)/d(fractional vector), then onto the free parameters of both atoms' orbits.
        along = units @ lattice.T
        per_orbit = np.zeros((len(centres), len(f), 3))
        rows = np.arange(len(centres))
        np.add.at(per_orbit, (rows, atoms.orbit[neighbours]), np.einsum("pij,pi->pj", atoms.linear[neighbours], along))
        np.add.at(per_orbit, (rows, atoms.orbit[centres]), -np.einsum("pij,pi->pj", atoms.linear[centres], along))
        jacobian_f = per_orbit.reshape(len(centres), -1)[:, free_f]
        # Lattice coefficients: d(distance)/dk_i = u . (vector @ dL/dk_i), dL/dk_i by central differences.
        derivatives = []
        for i in free_k:
            step = np.zeros(6)
            step[i] = 1e-5
            derivatives.append((lattice_matrix(k + step) - lattice_matrix(k - step)) / 2e-5)
        jacobian_k = np.stack([np.einsum("pi,ij,pj->p", vectors, d, units) for d in derivatives], axis=1) \
            if derivatives else np.zeros((len(centres), 0))
        jacobian = np.concatenate([jacobian_f, jacobian_k], axis=1)
        # Metric: squared displacement of all atoms per unit of each variable.
        displacement_f = np.einsum("aij,jk->aik", atoms.linear, lattice) ** 2  # (atoms, free param, xyz)
        weight_f = np.zeros((len(f), 3))
        np.add.at(weight_f, atoms.orbit, displacement_f.sum(axis=2))
        weights = np.concatenate([weight_f.ravel()[free_f],
                                  [lattice_weight * ((fractional @ d) ** 2).sum() for d in derivatives]])
        weights = np.maximum(weights, 1e-9)
        residuals = distances - target * sums
        # The smallest step in the weighted metric W that removes the residuals to first order,
        # W^-1 J^T (J W^-1 J^T + lambda)^-1 r, computed as (J^T J + lambda W)^-1 J^T r (a system of the size
        # of the variables, however many pairs clash).
        damping = 1e-6 * max(float((jacobian ** 2 / weights).sum()) / len(residuals), 1e-12)
        system = jacobian.T @ jacobian + damping * np.diag(weights)
        try:
            delta = -np.linalg.solve(system, jacobian.T @ residuals)
        except np.linalg.LinAlgError:
            delta = -np.linalg.lstsq(system, jacobian.T @ residuals, rcond=None)[0]
        largest = np.abs(jacobian @ delta).max()
        if largest > MAX_STEP:
            delta *= MAX_STEP / largest
        flat = f.ravel().copy()
        flat[free_f] += delta[:len(free_f)]
        f = np.mod(flat.reshape(f.shape), 1.0) * atoms.free
        k[free_k] += delta[len(free_f):]
    if not final:
        return k, f, float("nan")
    worst = min_ratio(atoms, lattice_matrix(k), f)
    if worst < PLAUSIBLE_RATIO:
        scale = PLAUSIBLE_RATIO * EXPANSION_MARGIN / max(worst, 1e-9)
        if scale <= max_expansion:
            k[5] += np.log(scale)  # the identity coefficient: a uniform expansion
            worst = min_ratio(atoms, lattice_matrix(k), f)
    return k, f, worst
