"""Candidate composition ratios of an element set by analogy with known compounds (substitution).

A known compound with as many elements votes for its own ratio, carried over to the requested
elements element by element in order of electronegativity (NaMnO2 for {Li, Fe, O} proposes
LiFeO2). Its vote weighs 1 / (1 + d), where d is the L1 distance between the two element lists'
descriptors (group, period, electronegativity of :mod:`crystalgf_baselines.features`); the
``neighbours`` nearest compounds vote. Known compounds of the very same elements are at distance 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from crystalgf.formula import reduce_counts

from crystalgf_baselines.features import element_features


def by_electronegativity(elements: Sequence[str]) -> list[str]:
    """Elements from the least to the most electronegative (ties by symbol)."""
    return sorted(elements, key=lambda element: (element_features(element)[2], element))


def ratio_label(counts: Mapping[str, int]) -> str:
    """The reduced ratio of a composition, amounts in order of electronegativity: ``1-1-2`` for LiFeO2."""
    ratio = reduce_counts(dict(counts))[0]
    return "-".join(str(ratio[element]) for element in by_electronegativity(list(ratio)))


def ratio_from_label(label: str, elements: Sequence[str]) -> dict[str, int] | None:
    """The ratio of ``elements`` that a :func:`ratio_label` names (``None`` if the numbers of elements differ)."""
    amounts = [int(amount) for amount in label.split("-")]
    ordered = by_electronegativity(list(elements))
    return dict(zip(ordered, amounts)) if len(amounts) == len(ordered) else None


def _descriptor(elements: Sequence[str]) -> np.ndarray:
    return np.concatenate([element_features(element) for element in elements])


class SubstitutionRatios:
    """Ranks the reduced ratios of an element set by the votes of the nearest known compounds."""

    def __init__(self, compositions: Sequence[Mapping[str, int]], neighbours: int = 20):
        self.neighbours = neighbours
        known: dict[int, list[tuple[list[str], list[int]]]] = defaultdict(list)
        for counts in compositions:
            elements = by_electronegativity(list(counts))
            known[len(elements)].append((elements, [counts[e] for e in elements]))
        self._known = dict(known)
        self._descriptors = {n: np.array([_descriptor(elements) for elements, _ in rows]) for n, rows in known.items()}

    def shares(self, elements: Sequence[str]) -> list[tuple[dict[str, int], float]]:
        """Each proposed reduced ratio (element -> count) with its vote share, in order of first vote
        (shares sum to 1; empty without known compounds of as many elements)."""
        rows = self._known.get(len(elements), [])
        if not rows:
            return []
        ordered = by_electronegativity(elements)
        distances = np.abs(self._descriptors[len(ordered)] - _descriptor(ordered)).sum(axis=1)
        votes: dict[tuple[tuple[str, int], ...], float] = defaultdict(float)
        for i in np.argsort(distances, kind="stable")[: self.neighbours]:
            ratio = reduce_counts(dict(zip(ordered, rows[i][1])))[0]
            votes[tuple(ratio.items())] += 1.0 / (1.0 + distances[i])
        total = sum(votes.values())
        return [(dict(ratio), vote / total) for ratio, vote in votes.items()]
