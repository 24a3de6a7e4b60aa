"""A structure's space group and Wyckoff sites, found by spglib (the dataset side of G and H)."""

from __future__ import annotations

from pymatgen.core import Structure

from crystalgf.errors import InvalidInputError
from crystalgf.formula import format_formula
from crystalgf.interfaces import DatasetEntry
from crystalgf.schema import Constraint, PropertyTarget
from crystalgf.symmetry.detect import spglib_dataset
from crystalgf.symmetry.wyckoff import WyckoffSite, wyckoff_positions

def constraint_from_structure(
    structure: Structure, symprec: float = 0.1, properties: dict[str, float] | None = None
) -> Constraint:
    """The constraint a structure satisfies: conventional-cell formula, space group, Wyckoff sites.

    Wyckoff letters are spglib's, in the standard setting (the one pyxtal uses); multiplicities
    are those of the conventional cell. Raises :class:`InvalidInputError` if spglib fails.
    """
    dataset = spglib_dataset(structure, symprec)
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


def entry_constraint(entry: DatasetEntry, symprec: float = 0.1) -> Constraint | None:
    """A dataset entry's constraint: its own, or its structure's carrying the entry's properties
    (None where spglib finds no symmetry)."""
    if entry.constraint is not None:
        return entry.constraint
    try:
        return constraint_from_structure(entry.structure, symprec, entry.properties)
    except InvalidInputError:
        return None
