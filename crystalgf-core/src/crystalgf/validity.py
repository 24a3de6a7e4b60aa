"""Structural validity as in CDVAE: no two atoms closer than 0.5 Å, a cell of positive volume."""

from __future__ import annotations

import numpy as np
from pymatgen.core import Structure

MIN_DISTANCE = 0.5  # Å
MIN_VOLUME = 0.1  # Å^3


def structure_valid(structure: Structure) -> bool:
    """Every interatomic distance (periodic images included, self-images excluded) > 0.5 Å and volume > 0.1 Å^3."""
    if structure.volume <= MIN_VOLUME:
        return False
    if len(structure) == 1:
        return True
    distances = structure.distance_matrix + np.eye(len(structure)) * (MIN_DISTANCE + 10.0)
    return bool(distances.min() > MIN_DISTANCE)
