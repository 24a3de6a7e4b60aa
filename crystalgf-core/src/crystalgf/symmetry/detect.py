"""Space-group detection with spglib."""

from __future__ import annotations

import warnings

import numpy as np
import spglib
from spglib.error import SpglibError
from pymatgen.core import Structure

SYMPRECS: tuple[float, ...] = (0.1, 0.01)
"""Tolerances (Å) at which generated structures are checked by default."""


def spglib_dataset(structure: Structure, symprec: float):
    """spglib's symmetry dataset of a pymatgen structure (``None`` where spglib fails)."""
    return cell_dataset(structure.lattice.matrix, structure.frac_coords, structure.atomic_numbers, symprec)


def cell_dataset(lattice: np.ndarray, frac_coords: np.ndarray, species: np.ndarray, symprec: float):
    """spglib's symmetry dataset of a cell given as lattice rows, fractional coordinates and species
    numbers (any integers that tell the species apart), or ``None`` where spglib fails."""
    cell = (np.asarray(lattice), np.asarray(frac_coords), np.asarray(species))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # spglib's notice about its error handling
        try:
            return spglib.get_symmetry_dataset(cell, symprec=symprec)
        except SpglibError:  # raised instead of None once a library switches spglib's new error handling on
            return None


def detect_space_group(structure: Structure, symprec: float = 0.1) -> int | None:
    """The international space-group number spglib finds at ``symprec`` (Å), or ``None``."""
    dataset = spglib_dataset(structure, symprec)
    return None if dataset is None else int(dataset.number)


def detect_space_groups(structure: Structure, symprecs: tuple[float, ...] = SYMPRECS) -> dict[str, int | None]:
    """Space group per tolerance, keyed by the tolerance as text (``{"0.1": 221, "0.01": 221}``)."""
    return {str(symprec): detect_space_group(structure, symprec) for symprec in symprecs}
