"""Nearest known compounds, written into the prompt with their space groups (retrieval).

Compounds are compared by their composition descriptors (``crystalgf_baselines.features``).
In formula mode compounds with the same stoichiometry pattern come first; in element mode
only the element set is known, so every element counts equally.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pymatgen.core import Composition

from crystalgf.formula import reduce_counts, stoichiometry_pattern
from crystalgf.schema import Constraint
from crystalgf_baselines.features import composition_features

_PATTERN_MISMATCH = 1.0


@dataclass(frozen=True)
class KnownCompound:
    """A training crystal: its reduced formula, stoichiometry pattern and space group."""

    reduced_formula: str
    pattern: str
    space_group: int
    elements: tuple[str, ...]
    ratio: tuple[int, ...]


class NeighbourIndex:
    """The known compounds of a training set, searchable by composition."""

    def __init__(self, compounds: Sequence[KnownCompound]):
        self.compounds = list(compounds)
        self._formula_features = np.array([composition_features(dict(zip(c.elements, c.ratio))) for c in self.compounds])
        self._element_features = np.array([composition_features(dict.fromkeys(c.elements, 1)) for c in self.compounds])
        self._patterns = np.array([c.pattern for c in self.compounds])
        self._reduced = np.array([c.reduced_formula for c in self.compounds])
        self._element_sets = np.array(["-".join(sorted(c.elements)) for c in self.compounds])

    @classmethod
    def fit(cls, constraints: Iterable[Constraint]) -> NeighbourIndex:
        """One entry per (reduced formula, space group)."""
        seen: dict[tuple[str, int], KnownCompound] = {}
        for constraint in constraints:
            ratio = reduce_counts(constraint.counts)[0]
            reduced = Composition(ratio).reduced_formula
            seen.setdefault((reduced, constraint.space_group), KnownCompound(
                reduced, stoichiometry_pattern(ratio), constraint.space_group, tuple(ratio), tuple(ratio.values())))
        return cls(list(seen.values()))

    def nearest(self, composition: Mapping[str, int] | Sequence[str], k: int,
                exclude: str | None = None) -> list[KnownCompound]:
        """The ``k`` nearest compounds to a formula (counts) or an element set, never of the
        reduced formula ``exclude`` (nor, for an element set, of that same element set)."""
        if k <= 0 or not self.compounds:
            return []
        if isinstance(composition, Mapping):
            distance = np.linalg.norm(self._formula_features - composition_features(composition), axis=1)
            distance = distance + _PATTERN_MISMATCH * (self._patterns != stoichiometry_pattern(composition))
            if exclude is not None:
                distance[self._reduced == exclude] = np.inf
        else:
            distance = np.linalg.norm(self._element_features - composition_features(dict.fromkeys(composition, 1)), axis=1)
            if exclude is not None:
                distance[self._element_sets == "-".join(sorted(composition))] = np.inf
        order = np.argsort(distance, kind="stable")[:k]
        return [self.compounds[i] for i in order if np.isfinite(distance[i])]

    def save(self, path: Path) -> None:
        rows = [[c.reduced_formula, c.pattern, c.space_group, list(c.elements), list(c.ratio)] for c in self.compounds]
        Path(path).write_text(json.dumps({"compounds": rows}, separators=(",", ":")) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> NeighbourIndex:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))["compounds"]
        return cls([KnownCompound(f, p, g, tuple(e), tuple(r)) for f, p, g, e, r in rows])
