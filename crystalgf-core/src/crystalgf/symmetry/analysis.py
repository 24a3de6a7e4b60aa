"""A structure's space group and Wyckoff sites, found by spglib (the dataset side of G and H)."""

from __future__ import annotations

import numpy as np
import spglib
from pymatgen.core import Structure

from crystalgf.errors import InvalidInputError
from crystalgf.formula import format_formula
from crystalgf.schema import Constraint, PropertyTarget
from crystalgf.symmetry.wyckoff import WyckoffSite, wyckoff_positions

SYMPRECS: tuple[float, ...] = (0.1, 0.01)
"""Tolerances (Å) at which generated structures are checked by default."""


def _spglib_dataset(structure: Structure, symprec: float):
    cell = (
        np.asarray(structure.lattice.matrix),
        np.asarray(structure.frac_coords),
        np.asarray(structure.atomic_numbers),
    )
    return spglib.get_symmetry_dataset(cell, symprec=symprec)


def detect_space_group(structure: Structure, symprec: float = 0.1) -> int | None:
    """The international space-group number spglib finds at ``symprec`` (Å), or ``None``."""
    dataset = _spglib_dataset(structure, symprec)
    return None if dataset is None else int(dataset.number)


def detect_space_groups(structure: Structure, symprecs: tuple[float, ...] = SYMPRECS) -> dict[str, int | None]:
    """Space group per tolerance, keyed by the tolerance as text (``{"0.1": 221, "0.01": 221}``)."""
    return {str(symprec): detect_space_group(structure, symprec) for symprec in symprecs}


def constraint_from_structure(
    structure: Structure, symprec: float = 0.1, properties: dict[str, float] | None = None
) -> Constraint:
    """The constraint a structure satisfies: conventional-cell formula, space group, Wyckoff sites.

    Wyckoff letters are spglib's, in the standard setting (the one pyxtal uses); multiplicities
    are those of the conventional cell. Raises :class:`InvalidInputError` if spglib fails.
    """
    dataset = _spglib_dataset(structure, symprec)
    if dataset is None:
        raise InvalidInputError(f"spglib found no symmetry for {structure.composition.reduced_formula} at symprec={symprec}")
    space_group = int(dataset.number)
    multiplicity = {wp.letter: wp.multiplicity for wp in wyckoff_positions(space_group)}
    counts: dict[str, int] = {}
    sites: list[WyckoffSite] = []
    seen: set[int] = set()
    for index, orbit in enumerate(dataset.crystallographic_orbits):
        if orbit in seen:
            continue
        seen.add(orbit)
        element = structure[index].specie.symbol
        letter = dataset.wyckoffs[index]
        sites.append(WyckoffSite(element, f"{multiplicity[letter]}{letter}"))
        counts[element] = counts.get(element, 0) + multiplicity[letter]
    targets = {name: PropertyTarget(name=name, value=value) for name, value in (properties or {}).items()}
    return Constraint(formula=format_formula(counts), space_group=space_group, wyckoff=sites, properties=targets)
