"""Wyckoff assignments: ways to place a cell composition on the Wyckoff positions of a space group.

A position without free parameters (e.g. ``1a`` at the origin) holds at most one orbit in the
whole cell; a position with free parameters (e.g. ``1d`` (0,0,z) in Pmm2) may hold several
orbits at different parameter values, of the same or of different elements.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from itertools import islice

import numpy as np
from pymatgen.core import Lattice

from crystalgf.errors import InvalidInputError
from crystalgf.symmetry.detect import cell_dataset
from crystalgf.symmetry.wyckoff import (
    WyckoffPosition,
    WyckoffSite,
    crystal_system,
    equivalent_letter_maps,
    pyxtal_group,
    space_group_symbol,
    wyckoff_position,
    wyckoff_positions,
)

Assignment = tuple[WyckoffSite, ...]


def iter_wyckoff_assignments(
    counts: Mapping[str, int],
    space_group: int,
    *,
    preference: Mapping[str, float] | None = None,
    limit: int | None = None,
) -> Iterator[Assignment]:
    """Yield distinct Wyckoff assignments of ``counts`` (element -> atoms per conventional cell).

    Positions are tried in order of decreasing ``preference`` (letter -> weight; ties keep
    pyxtal's order, general position first), so the first assignments use preferred and
    high-multiplicity positions. ``limit`` caps how many are yielded.
    """
    positions = list(wyckoff_positions(space_group))
    if preference:
        positions.sort(key=lambda wp: -preference.get(wp.letter, 0.0))
    return islice(_search(counts, positions), limit)


def has_wyckoff_assignment(counts: Mapping[str, int], space_group: int) -> bool:
    """Whether ``counts`` has at least one Wyckoff assignment in the group."""
    return next(iter_wyckoff_assignments(counts, space_group), None) is not None


def sample_wyckoff_assignment(
    counts: Mapping[str, int], space_group: int, rng: np.random.Generator
) -> Assignment | None:
    """A random Wyckoff assignment of ``counts`` in the group, or ``None`` if there is none."""
    positions = list(wyckoff_positions(space_group))
    order = rng.permutation(len(positions))
    return next(_search(counts, [positions[i] for i in order]), None)


def _search(counts: Mapping[str, int], positions: Sequence[WyckoffPosition]) -> Iterator[Assignment]:
    """Depth-first search over elements, then over non-decreasing position indices per element."""
    elements = list(counts)

    @lru_cache(maxsize=None)
    def can_fill(remaining: int, start: int, used: frozenset[str]) -> bool:
        if remaining == 0:
            return True
        for i in range(start, len(positions)):
            wp = positions[i]
            if wp.multiplicity > remaining:
                continue
            if wp.degrees_of_freedom == 0:
                if wp.letter not in used and can_fill(remaining - wp.multiplicity, i + 1, used | {wp.letter}):
                    return True
            elif can_fill(remaining - wp.multiplicity, i, used):
                return True
        return False

    def fill(remaining: int, start: int, used: frozenset[str]) -> Iterator[tuple[list[WyckoffPosition], frozenset[str]]]:
        if remaining == 0:
            yield [], used
            return
        for i in range(start, len(positions)):
            wp = positions[i]
            if wp.multiplicity > remaining:
                continue
            fixed = wp.degrees_of_freedom == 0
            if fixed and wp.letter in used:
                continue
            next_used = used | {wp.letter} if fixed else used
            next_start = i + 1 if fixed else i
            if not can_fill(remaining - wp.multiplicity, next_start, next_used):
                continue
            for rest, final_used in fill(remaining - wp.multiplicity, next_start, next_used):
                yield [wp, *rest], final_used

    def place(index: int, used: frozenset[str]) -> Iterator[Assignment]:
        if index == len(elements):
            yield ()
            return
        element = elements[index]
        for chosen, next_used in fill(counts[element], 0, used):
            sites = tuple(WyckoffSite(element, wp.label) for wp in chosen)
            for rest in place(index + 1, next_used):
                yield sites + rest

    return place(0, frozenset())


def check_wyckoff_assignment(counts: Mapping[str, int], space_group: int, sites: Sequence[WyckoffSite]) -> None:
    """Raise :class:`InvalidInputError` unless ``sites`` is a valid assignment of ``counts`` in the group.

    Valid means: every label exists in the group with its multiplicity, every element of the
    composition (and no other) has sites, each element's multiplicities sum to its count, and no
    position without free parameters is occupied twice.
    """
    totals: dict[str, int] = {}
    fixed_used: set[str] = set()
    for site in sites:
        position = wyckoff_position(space_group, site.label)
        if site.element not in counts:
            raise InvalidInputError(f"Wyckoff site {site.element}[{site.label}] names an element not in the formula")
        if position.degrees_of_freedom == 0:
            if position.letter in fixed_used:
                raise InvalidInputError(
                    f"Wyckoff position {site.label} of space group {space_group} ({space_group_symbol(space_group)}) "
                    "has no free parameter and can hold only one orbit"
                )
            fixed_used.add(position.letter)
        totals[site.element] = totals.get(site.element, 0) + position.multiplicity
    for element, count in counts.items():
        if totals.get(element, 0) != count:
            raise InvalidInputError(
                f"Wyckoff multiplicities of {element} sum to {totals.get(element, 0)}, but the formula has {count}"
            )


def realizes_space_group(counts: Mapping[str, int], space_group: int, sites: Sequence[WyckoffSite]) -> bool:
    """Whether structures with these sites can have exactly this space group, not a higher one.

    Some assignments force extra symmetry whatever the parameters: ``Na[8c] Cl[2a] Cl[6b]`` in
    Im-3m is CsCl in a doubled cell (Pm-3m), and a single orbit in a polar group such as Pm gains
    a mirror. The sites are placed once on a generic lattice of the crystal family, free
    parameters at generic values, and spglib must find exactly the group.
    """
    labels_by_element: dict[str, list[str]] = {}
    for site in sites:
        labels_by_element.setdefault(site.element, []).append(site.label)
    # which element sits where does not change the symmetry: cache by the pattern of species
    pattern = tuple(sorted(tuple(sorted(labels)) for labels in labels_by_element.values()))
    return _pattern_realizes(space_group, pattern)


_GENERIC_CELL = {  # lattice parameters without accidental symmetry, per crystal system
    "triclinic": (4.1, 4.7, 5.3, 79.0, 83.0, 87.0),
    "monoclinic": (4.1, 4.7, 5.3, 90.0, 97.0, 90.0),
    "orthorhombic": (4.1, 4.7, 5.3, 90.0, 90.0, 90.0),
    "tetragonal": (4.1, 4.1, 5.3, 90.0, 90.0, 90.0),
    "trigonal": (4.1, 4.1, 5.3, 90.0, 90.0, 120.0),
    "hexagonal": (4.1, 4.1, 5.3, 90.0, 90.0, 120.0),
    "cubic": (4.1, 4.1, 4.1, 90.0, 90.0, 90.0),
}


@lru_cache(maxsize=16384)
def _pattern_realizes(space_group: int, species_labels: tuple[tuple[str, ...], ...]) -> bool:
    """``realizes_space_group`` for sites given as the Wyckoff labels of each species."""
    group = pyxtal_group(space_group)
    lattice = Lattice.from_parameters(*_GENERIC_CELL[crystal_system(space_group)]).matrix
    generic = np.random.default_rng(20240229)  # the same generic values every time
    species, coordinates = [], []
    for number, labels in enumerate(species_labels):
        for label in labels:
            position = group.get_wyckoff_position(label)
            representative = position.ops[0].operate(generic.random(3))
            orbit = np.mod([op.operate(representative) for op in position.ops], 1.0)
            species += [number] * len(orbit)
            coordinates += list(orbit)
    dataset = cell_dataset(lattice, coordinates, species, symprec=1e-3)
    return dataset is not None and int(dataset.number) == space_group


def same_wyckoff_sites(space_group: int, first: Sequence[WyckoffSite], second: Sequence[WyckoffSite]) -> bool:
    """Whether two site lists are the same multiset of (element, label), up to the group's
    equivalent relabellings (:func:`~crystalgf.symmetry.wyckoff.equivalent_letter_maps`)."""
    target = Counter(second)
    for mapping in equivalent_letter_maps(space_group):
        relabelled = Counter(WyckoffSite(s.element, f"{s.multiplicity}{mapping[s.letter]}") for s in first)
        if relabelled == target:
            return True
    return False
