"""Structural validity and physical plausibility of a structure.

Two criteria live here, each with a single definition that H's redraws, the run records and eval share:

* :func:`structure_valid`, CDVAE's structural validity (no two atoms closer than 0.5 Å, a cell of positive
  volume): kept for comparison with the literature's tables; it lets through clearly unphysical crystals
  (a Ti-O distance of 0.54 Å passes).
* :func:`plausibility` / :func:`structure_plausible`, the criterion of CrystalGF: every pair of atoms
  (periodic images and an atom's own images included) at least ``PLAUSIBLE_RATIO`` = 0.7 times the sum of
  the two elements' covalent radii apart. The radii are pymatgen's ``CovalentRadius.radius`` table (Cordero
  et al., Dalton Trans. 2008, 2832-2838: 96 elements up to Cm; ``FALLBACK_RADIUS`` for the rest). Real
  crystals pass: all 430 of the MP-20 sample (worst ratio 0.73, V-O in VOF3; 1 % of crystals under 0.75)
  and all 2,032 of Carbon-24 val (worst 0.83); of the 3,785 Perov-5 test crystals, 12 hypothetical caesium
  nitride perovskites (Cs-N 2.12-2.17 Å, ratio 0.67-0.69) fall under it. Two atoms squeezed to well
  under a bond length fail it, as do the overlapping samples that the 0.5 Å rule let through.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pymatgen.core import Structure

MIN_DISTANCE = 0.5  # Å
MIN_VOLUME = 0.1  # Å^3
PLAUSIBLE_RATIO = 0.7
"""A pair closer than this fraction of the sum of the two covalent radii is implausible."""
FALLBACK_RADIUS = 1.7  # Å, elements beyond Cm (about the radius of the late actinides in the table)


def structure_valid(structure: Structure) -> bool:
    """Every interatomic distance (periodic images included, self-images excluded) > 0.5 Å and volume > 0.1 Å^3."""
    if structure.volume <= MIN_VOLUME:
        return False
    if len(structure) == 1:
        return True
    distances = structure.distance_matrix + np.eye(len(structure)) * (MIN_DISTANCE + 10.0)
    return bool(distances.min() > MIN_DISTANCE)


@lru_cache(maxsize=None)
def covalent_radius(element: str) -> float:
    """Covalent radius (Å) of an element symbol (Cordero et al. 2008, via pymatgen), ``FALLBACK_RADIUS`` where
    the table has none."""
    from pymatgen.analysis.molecule_structure_comparator import CovalentRadius

    return float(CovalentRadius.radius.get(element, FALLBACK_RADIUS))


def _radii(structure: Structure) -> np.ndarray:
    return np.array([covalent_radius(site.specie.symbol) for site in structure])


@dataclass(frozen=True)
class Plausibility:
    """The closest pair of a structure relative to its covalent radii: ``ratio`` = distance / (r_a + r_b)
    of the worst pair (``elements``, ``distance`` in Å); ``plausible`` when ``ratio`` >= ``PLAUSIBLE_RATIO``
    and the cell has a volume."""

    plausible: bool
    ratio: float
    distance: float
    elements: tuple[str, str]

    def to_dict(self) -> dict:
        return {"plausible": self.plausible, "min_distance_ratio": round(self.ratio, 4),
                "min_distance": round(self.distance, 4), "closest_pair": "-".join(self.elements)}


def pair_ratios(structure: Structure, cutoff_ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i, j, periodic image included) closer than ``cutoff_ratio`` x (r_i + r_j): indices i, j,
    distances and ratios. An atom's own periodic images count; a pair appears in both orders."""
    radii = _radii(structure)
    cutoff = float(cutoff_ratio * 2 * radii.max())
    centres, neighbours, _, distances = structure.get_neighbor_list(cutoff, exclude_self=True)
    ratios = distances / (radii[centres] + radii[neighbours])
    keep = ratios < cutoff_ratio
    return centres[keep], neighbours[keep], distances[keep], ratios[keep]


def plausibility(structure: Structure, ratio: float = PLAUSIBLE_RATIO) -> Plausibility:
    """The worst pair of ``structure`` and whether it is at least ``ratio`` x the sum of its covalent radii
    apart (see the module's docstring)."""
    if _without_cell(structure):
        return Plausibility(False, 0.0, 0.0, (structure[0].specie.symbol,) * 2)
    cutoff = max(1.5, ratio * 1.5)
    while True:  # widen until the nearest pair of the cell is found (every atom has its own images)
        i, j, distances, ratios = pair_ratios(structure, cutoff)
        if len(ratios):
            worst = int(np.argmin(ratios))
            pair = tuple(sorted((structure[int(i[worst])].specie.symbol, structure[int(j[worst])].specie.symbol)))
            value = float(ratios[worst])
            return Plausibility(value >= ratio, value, float(distances[worst]), pair)  # type: ignore[arg-type]
        cutoff *= 2


def structure_plausible(structure: Structure, ratio: float = PLAUSIBLE_RATIO) -> bool:
    """``plausibility(structure, ratio).plausible`` without looking for the worst pair (the quick check of
    redraw loops): every pair of atoms at least ``ratio`` x the sum of their covalent radii apart."""
    return not _without_cell(structure) and not len(pair_ratios(structure, ratio)[3])


def _without_cell(structure: Structure) -> bool:
    """A lattice without volume or with non-finite vectors: no distance in it means anything."""
    return structure.volume <= MIN_VOLUME or not np.isfinite(structure.lattice.matrix).all()
