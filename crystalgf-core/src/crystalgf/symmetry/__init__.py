"""Crystallography on pyxtal, spglib and pymatgen: Wyckoff tables, assignments, structure analysis.

- :mod:`crystalgf.symmetry.wyckoff`: the Wyckoff positions of the 230 space groups (from pyxtal).
- :mod:`crystalgf.symmetry.assignment`: which Wyckoff assignments a cell composition has in a group.
- :mod:`crystalgf.symmetry.analysis`: a structure's space group and Wyckoff sites (spglib).
"""

from crystalgf.symmetry.assignment import (
    check_wyckoff_assignment,
    has_wyckoff_assignment,
    iter_wyckoff_assignments,
    realizes_space_group,
    same_wyckoff_sites,
    sample_wyckoff_assignment,
)
from crystalgf.symmetry.wyckoff import (
    WyckoffPosition,
    WyckoffSite,
    centring_factor,
    crystal_system,
    equivalent_letter_maps,
    space_group_symbol,
    wyckoff_position,
    wyckoff_positions,
)

__all__ = [
    "check_wyckoff_assignment",
    "WyckoffPosition",
    "WyckoffSite",
    "centring_factor",
    "crystal_system",
    "equivalent_letter_maps",
    "has_wyckoff_assignment",
    "iter_wyckoff_assignments",
    "realizes_space_group",
    "same_wyckoff_sites",
    "sample_wyckoff_assignment",
    "space_group_symbol",
    "wyckoff_position",
    "wyckoff_positions",
]
