"""The Wyckoff positions of the 230 space groups, read from pyxtal's tables (standard settings)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import NamedTuple

from pyxtal.symmetry import Group

from crystalgf.errors import InvalidInputError

_LABEL = re.compile(r"(\d+)([a-zA-Z])")


class WyckoffSite(NamedTuple):
    """One Wyckoff orbit occupied by one element, e.g. ``WyckoffSite("Ti", "1b")``."""

    element: str
    label: str

    @property
    def multiplicity(self) -> int:
        return split_label(self.label)[0]

    @property
    def letter(self) -> str:
        return split_label(self.label)[1]


@dataclass(frozen=True)
class WyckoffPosition:
    """A Wyckoff position of a space group (conventional cell multiplicity)."""

    space_group: int
    multiplicity: int
    letter: str
    site_symmetry: str
    degrees_of_freedom: int

    @cached_property
    def label(self) -> str:
        return f"{self.multiplicity}{self.letter}"


@lru_cache(maxsize=4096)
def split_label(label: str) -> tuple[int, str]:
    """``"2c"`` -> ``(2, "c")``; raises :class:`InvalidInputError` for anything else."""
    match = _LABEL.fullmatch(label.strip())
    if not match:
        raise InvalidInputError(f"malformed Wyckoff label {label!r}: expected multiplicity and letter, e.g. 2c")
    return int(match.group(1)), match.group(2)


def check_space_group(space_group: int) -> int:
    """Return ``space_group`` if it is an integer in 1-230, else raise :class:`InvalidInputError`."""
    if isinstance(space_group, bool) or not isinstance(space_group, int):
        raise InvalidInputError(f"space group {space_group!r} must be an integer from 1 to 230")
    if not 1 <= space_group <= 230:
        raise InvalidInputError(f"space group {space_group!r} is outside 1-230")
    return space_group


@lru_cache(maxsize=None)
def pyxtal_group(space_group: int) -> Group:
    """PyXtal's group object (cached), for what this module does not wrap."""
    return Group(check_space_group(space_group))


def space_group_symbol(space_group: int) -> str:
    """Hermann-Mauguin symbol, e.g. 221 -> ``Pm-3m``."""
    return pyxtal_group(space_group).symbol


CENTRING_FACTORS = {"P": 1, "A": 2, "B": 2, "C": 2, "I": 2, "F": 4, "R": 3}
"""Lattice points per conventional cell by centring letter (R: the hexagonal axes pyxtal's tables use)."""


def centring_factor(space_group: int) -> int:
    """How many primitive cells the group's conventional cell holds: 1 (P), 2 (A, B, C, I), 3 (R), 4 (F)."""
    return CENTRING_FACTORS[space_group_symbol(space_group)[0]]


def crystal_system(space_group: int) -> str:
    """Crystal system: triclinic, monoclinic, orthorhombic, tetragonal, trigonal, hexagonal or cubic."""
    return pyxtal_group(space_group).lattice_type


@lru_cache(maxsize=None)
def wyckoff_positions(space_group: int) -> tuple[WyckoffPosition, ...]:
    """All Wyckoff positions of a group, general position first (pyxtal's order)."""
    group = pyxtal_group(space_group)
    return tuple(
        WyckoffPosition(
            space_group=space_group,
            multiplicity=int(wp.multiplicity),
            letter=wp.letter,
            site_symmetry=wp.get_site_symmetry_object().name,
            degrees_of_freedom=int(wp.get_dof()),
        )
        for wp in group.Wyckoff_positions
    )


def wyckoff_position(space_group: int, label: str) -> WyckoffPosition:
    """The position with this label (``"2c"``) in the group; the error names the valid labels."""
    multiplicity, letter = split_label(label)
    positions = {wp.letter: wp for wp in wyckoff_positions(space_group)}
    symbol = space_group_symbol(space_group)
    if letter not in positions:
        letters = "".join(sorted(positions))
        raise InvalidInputError(
            f"Wyckoff letter {letter!r} is not in space group {space_group} ({symbol}); its letters are {letters}"
        )
    position = positions[letter]
    if position.multiplicity != multiplicity:
        raise InvalidInputError(
            f"Wyckoff position {letter} of space group {space_group} ({symbol}) has multiplicity "
            f"{position.multiplicity}, not {multiplicity}"
        )
    return position


@lru_cache(maxsize=None)
def equivalent_letter_maps(space_group: int) -> tuple[dict[str, str], ...]:
    """Letter permutations under which Wyckoff sites describe the same structure (e.g. an origin
    shift swaps 1a and 1b in Pm-3m); from pyxtal's table of Euclidean-normalizer cosets."""
    group = pyxtal_group(space_group)
    letters = [wp.letter for wp in reversed(group.Wyckoff_positions)]  # a, b, ..., z, A: pyxtal's table order
    maps = [dict(zip(letters, row.split())) for row in group.get_alternatives()["Transformed WP"]]
    return tuple(m for m in maps if len(m) == len(letters)) or ({letter: letter for letter in letters},)
