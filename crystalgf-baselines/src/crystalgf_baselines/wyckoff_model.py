"""A joint model of the Wyckoff stage: the whole assignment of a cell composition in a space group.

Scoring sites one by one favours few orbits and cannot learn the site patterns real structures
share (O[4c] + O[8d] in Pnma perovskites, not O[4c] three times). This model scores each candidate
assignment as a whole, log-linearly (a conditional logit fitted on known crystals), from:

- ``template``: how many known crystals of the same group and the same cell counts (up to the
  elements) have this assignment once their elements are mapped onto the request's (by count, then
  electronegativity): structure types of the training data;
- ``pattern``: how many Materials Project structures (88,678, the statistics pyxtal ships) have this
  multiset of Wyckoff positions in the group, whatever the elements;
- ``letters``: the frequency of each position in the group among known crystals (the old score);
- ``anion``: how often the most electronegative element sits on each of its positions in that group;
- ``orbits``: the number of orbits.

Candidates are the assignments an exhaustive search yields first plus those the templates and the
patterns propose, so a frequent pattern is found even when the search would reach it late.
"""

from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from itertools import islice
from pathlib import Path

import numpy as np
from pymatgen.core import Element

from crystalgf.datasets import read_text
from crystalgf.errors import InvalidInputError
from crystalgf.symmetry import equivalent_letter_maps, iter_wyckoff_assignments, wyckoff_positions
from crystalgf.symmetry.assignment import Assignment
from crystalgf.symmetry.wyckoff import WyckoffSite, pyxtal_group

FEATURES = ("template", "template_pattern", "pattern", "letters", "anion", "orbits", "fixed")
"""The model's inputs, in the order of its weights."""
DEFAULT_WEIGHTS = (2.0, 0.5, 0.8, 0.2, 0.6, 0.4, 0.0)
"""Weights used before a fit (the packaged table stores fitted ones)."""
SEARCHED = 60
"""Assignments taken from the exhaustive search per (group, cell)."""
PATTERNS_TRIED = 40
"""Most frequent Materials Project patterns of the cell's size whose orbits are shared out among the elements."""
SHARES_PER_PATTERN = 12
"""Most ways to share one pattern's orbits among the elements."""
_RANKED_KEPT = 20000
"""Most rankings kept for reuse (a batch asks the same cell and group often)."""

Known = tuple[Mapping[str, int], int, Assignment]
"""A known crystal: cell counts, space group, Wyckoff sites."""


PATTERNS_ENVIRONMENT_VARIABLE = "CRYSTALGF_WYCKOFF_PATTERNS"


def packaged_patterns_file() -> Path:
    """pyxtal's statistics of Materials Project structures: ``spg_num_wps_mp.csv``."""
    import pyxtal

    return Path(pyxtal.__file__).parent / "database" / "spg_num_wps_mp.csv"


def read_pattern_counts(path: Path) -> Counter:
    """(group, sorted Wyckoff labels) -> number of structures, from a CSV in pyxtal's layout (columns
    ``spg``, ``wps``: pyxtal's position indices joined by ``-``, and ``count``)."""
    counts: Counter = Counter()
    for line, row in enumerate(csv.DictReader(read_text(Path(path)).splitlines()), start=2):
        try:
            group = int(row["spg"])
            positions = pyxtal_group(group).Wyckoff_positions
            labels = tuple(sorted(f"{positions[int(i)].multiplicity}{positions[int(i)].letter}"
                                  for i in row["wps"].split("-")))
            counts[group, labels] += int(row["count"])
        except (KeyError, ValueError, IndexError, TypeError, InvalidInputError):
            raise InvalidInputError(f"{path} line {line}: not a Wyckoff pattern row (spg, wps, count)") from None
    return counts


def write_pattern_counts(counts: Mapping[tuple[int, tuple[str, ...]], int], path: Path) -> None:
    """Write counts in the layout :func:`read_pattern_counts` reads."""
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["spg", "wps", "count"])
        for (group, labels), number in sorted(counts.items()):
            index = {f"{wp.multiplicity}{wp.letter}": i for i, wp in enumerate(pyxtal_group(group).Wyckoff_positions)}
            writer.writerow([group, "-".join(str(index[label]) for label in labels), number])


def pattern_of(group: int, sites: Iterable[WyckoffSite]) -> tuple[int, tuple[str, ...]]:
    """The key of an assignment in :func:`mp_pattern_counts`: its group and sorted labels."""
    return group, tuple(sorted(site.label for site in sites))


@lru_cache(maxsize=65536)
def canonical(group: int, sites: Assignment) -> Assignment:
    """One spelling of an assignment up to the group's equivalent relabellings and site order."""
    best = min(tuple(sorted((element, mapping[label]) for element, label in sites)) for mapping in _label_maps(group))
    return tuple(WyckoffSite(element, label) for element, label in best)


@lru_cache(maxsize=None)
def _label_maps(group: int) -> tuple[dict[str, str], ...]:
    """The group's distinct equivalent relabellings, as label -> label (``"4c"`` -> ``"4d"``)."""
    multiplicity = {wp.letter: wp.multiplicity for wp in wyckoff_positions(group)}
    distinct = sorted({tuple(sorted(mapping.items())) for mapping in equivalent_letter_maps(group)})
    return tuple({f"{multiplicity[a]}{a}": f"{multiplicity[b]}{b}" for a, b in mapping} for mapping in distinct)


@lru_cache(maxsize=None)
def _mendeleev(symbol: str) -> int:
    """Pettifor's Mendeleev number: the order of the structure maps (metals low, anions high)."""
    return Element(symbol).mendeleev_no


def role_order(counts: Mapping[str, int]) -> list[str]:
    """Elements by count, then electronegativity: how a template's elements map onto a request's."""
    return sorted(counts, key=lambda element: (counts[element], _mendeleev(element), element))


def _count_key(group: int, counts: Mapping[str, int]) -> tuple[int, tuple[int, ...]]:
    return group, tuple(sorted(counts.values()))


class WyckoffModel:
    """Scores whole Wyckoff assignments (see the module docstring); ``rank`` lists the best first."""

    def __init__(self, known: Sequence[Known], patterns: Mapping[tuple[int, tuple[str, ...]], int],
                 weights: Sequence[float] = DEFAULT_WEIGHTS):
        self.known = list(known)
        self.patterns = Counter(patterns)
        self.weights = np.asarray(weights, dtype=float)
        self._by_size: dict[tuple[int, int], list[tuple[int, tuple[str, ...]]]] = defaultdict(list)
        for (group, labels), number in sorted(self.patterns.items(), key=lambda item: (-item[1], item[0])):
            self._by_size[group, sum(int(label[:-1]) for label in labels)].append((number, labels))
        self._templates: dict[tuple, list[int]] = defaultdict(list)
        self._ranked: dict[tuple, list[tuple[float, Assignment]]] = {}  # by cell, group and preference
        self.letters: dict[int, Counter] = defaultdict(Counter)
        self.anion_letters: dict[int, Counter] = defaultdict(Counter)
        for index, (counts, group, sites) in enumerate(self.known):
            self._templates[_count_key(group, counts)].append(index)
            self.letters[group].update(site.letter for site in sites)
            anion = max(counts, key=_mendeleev)
            self.anion_letters[group].update(site.letter for site in sites if site.element == anion)

    def rank(self, counts: Mapping[str, int], group: int, preference: Mapping[str, float] | None = None,
             exclude: Iterable[int] = ()) -> list[tuple[float, Assignment]]:
        """(score, assignment) of every candidate, best first; ``exclude``: indices of known crystals
        that may not vote (used when fitting)."""
        exclude = frozenset(exclude)
        key = (tuple(sorted(counts.items())), group, tuple(sorted((preference or {}).items())))
        if not exclude and key in self._ranked:
            return self._ranked[key]
        votes = self.template_votes(counts, group, exclude)
        candidates = {canonical(group, a): None for a in votes}
        for sites in islice(iter_wyckoff_assignments(counts, group, preference=preference), SEARCHED):
            candidates.setdefault(canonical(group, sites), None)
        for sites in self.pattern_candidates(counts, group):
            candidates.setdefault(canonical(group, sites), None)
        if not candidates:
            return []
        features = np.array([self.features(counts, group, sites, votes) for sites in candidates])
        scores = features @ self.weights
        ranked = sorted(zip(scores.tolist(), candidates), key=lambda item: (-item[0], item[1]))
        if not exclude:
            if len(self._ranked) >= _RANKED_KEPT:
                self._ranked.clear()
            self._ranked[key] = ranked
        return ranked

    def pattern_candidates(self, counts: Mapping[str, int], group: int) -> Iterable[Assignment]:
        """Assignments that share out the orbits of the group's most frequent Materials Project patterns
        of this cell size among the elements (each element's multiplicities summing to its count)."""
        size = sum(counts.values())
        for number, labels in islice((p for p in self._by_size.get((group, size), ()) if p[0] > 0), PATTERNS_TRIED):
            yield from islice(_share_out(labels, dict(counts)), SHARES_PER_PATTERN)

    def template_votes(self, counts: Mapping[str, int], group: int, exclude: frozenset[int] = frozenset()) -> Counter:
        """Canonical assignment -> number of known crystals of the same group and cell counts that
        have it once their elements are mapped onto ``counts``."""
        votes: Counter = Counter()
        target = role_order(counts)
        for index in self._templates.get(_count_key(group, counts), ()):
            if index in exclude:
                continue
            source_counts, _, sites = self.known[index]
            mapping = dict(zip(role_order(source_counts), target))
            votes[canonical(group, tuple(WyckoffSite(mapping[s.element], s.label) for s in sites))] += 1
        return votes

    def features(self, counts: Mapping[str, int], group: int, sites: Assignment, votes: Mapping) -> list[float]:
        """The :data:`FEATURES` of one canonical assignment."""
        letters, anion_letters = self.letters.get(group, Counter()), self.anion_letters.get(group, Counter())
        size = len(wyckoff_positions(group))
        letter_total = sum(letters.values())
        anion = max(counts, key=_mendeleev)
        positions = {wp.letter: wp for wp in wyckoff_positions(group)}
        template_patterns = Counter()
        for assignment, number in votes.items():
            template_patterns[pattern_of(group, assignment)] += number
        letter_score = sum(math.log((letters[s.letter] + 0.5) / (letter_total + 0.5 * size)) for s in sites)
        anion_score = sum(math.log((anion_letters[s.letter] + 0.5) / (letters[s.letter] + 1.0))
                          for s in sites if s.element == anion)
        pattern = pattern_of(group, sites)
        return [math.log1p(votes.get(sites, 0)), math.log1p(template_patterns[pattern]),
                math.log1p(self.patterns.get(pattern, 0)), letter_score, anion_score, float(len(sites)),
                float(sum(positions[s.letter].degrees_of_freedom == 0 for s in sites))]


def _share_out(labels: Sequence[str], remaining: dict[str, int]) -> Iterable[Assignment]:
    """Every way to give each orbit (label) to an element so that the multiplicities of each element
    sum to its count (orbits of the same label are interchangeable: element order non-decreasing)."""
    elements = sorted(remaining)

    def place(index: int, floor: int) -> Iterable[Assignment]:
        if index == len(labels):
            yield ()
            return
        label = labels[index]
        multiplicity = int(label[:-1])
        start = floor if index and labels[index - 1] == label else 0
        for position in range(start, len(elements)):
            element = elements[position]
            if remaining[element] >= multiplicity:
                remaining[element] -= multiplicity
                for rest in place(index + 1, position):
                    yield (WyckoffSite(element, label), *rest)
                remaining[element] += multiplicity

    return place(0, 0)


def fit_weights(model: WyckoffModel, groups: Sequence[str], l2: float = 0.01) -> tuple[float, ...]:
    """Weights of ``model`` fitted as a conditional logit on its own known crystals, each scored as if
    unknown: crystals of the same ``groups`` entry (e.g. reduced formula) do not vote, and its own
    Materials Project pattern is counted once less. Crystals whose assignment is not among the
    candidates, or that have a single candidate, teach nothing and are skipped."""
    from scipy.optimize import minimize

    members: dict[str, set[int]] = defaultdict(set)
    for index, group_name in enumerate(groups):
        members[group_name].add(index)
    examples: list[tuple[np.ndarray, int]] = []
    for index, (counts, group, sites) in enumerate(model.known):
        key = pattern_of(group, sites)
        own = int(model.patterns[key] > 0)
        model.patterns[key] -= own
        exclude = frozenset(members[groups[index]])
        votes = model.template_votes(counts, group, exclude)
        candidates = [assignment for _, assignment in model.rank(counts, group, exclude=exclude)]
        truth = canonical(group, sites)
        if truth in candidates and len(candidates) > 1:
            features = np.array([model.features(counts, group, a, votes) for a in candidates])
            examples.append((features, candidates.index(truth)))
        model.patterns[key] += own

    def loss(weights: np.ndarray) -> tuple[float, np.ndarray]:
        total, gradient = l2 * weights @ weights, 2 * l2 * weights
        for features, truth in examples:
            scores = features @ weights
            p = np.exp(scores - scores.max())
            p /= p.sum()
            total -= math.log(p[truth] + 1e-300)
            gradient -= features[truth] - p @ features
        return total, gradient

    fitted = minimize(loss, np.asarray(DEFAULT_WEIGHTS, dtype=float), jac=True, method="L-BFGS-B").x
    return tuple(round(float(w), 4) for w in fitted)
