"""G ``forest``: the prior's candidates re-ranked by a random forest that also reads the targets.

P(space group | composition, target properties) comes from a random forest (scikit-learn) over the
composition descriptors of :mod:`crystalgf_baselines.features`, the number of elements, the size
of the reduced formula and its largest fraction (formula mode only) and the given property values.
One forest is fitted per composition kind (formula or element set) and set of given properties, on
first use, from the training crystals stored in the prior's table (deterministic: fixed seed, one
job). It is mixed with the prior: log((1 - prior_share) P_forest + prior_share P_prior), so that
groups the forest never saw keep the prior's order. Wyckoff sites are chosen as by the prior.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from crystalgf.errors import InvalidInputError, check_number
from crystalgf.formula import parse_formula, reduce_counts, stoichiometry_pattern
from crystalgf.schema import Constraint, GenerationRequest

from crystalgf_baselines.features import composition_features
from crystalgf_baselines.prior import PriorGenerator

PROPERTIES = ("band_gap", "formation_energy_per_atom")
"""Properties the forest can read, in the order of its inputs (and of the table's crystal rows)."""


def forest_features(counts: Mapping[str, int], by_elements: bool, values: Sequence[float]) -> np.ndarray:
    """Input vector of one composition (a reduced formula, or an element set where ``by_elements``)."""
    if by_elements:
        shape = [len(counts)]
        counts = dict.fromkeys(counts, 1)
    else:
        shape = [len(counts), sum(counts.values()), max(counts.values()) / sum(counts.values())]
    return np.concatenate([composition_features(counts), shape, values])


class SpaceGroupForest:
    """Random forests over known crystals: ``log_probabilities`` of each space group they saw."""

    def __init__(self, crystals: Sequence[tuple[str, float | None, float | None, int]], trees: int = 300,
                 seed: int = 0):
        self.crystals = [(reduce_counts(parse_formula(formula))[0], values, group)
                         for formula, *values, group in crystals]
        self.trees, self.seed = trees, seed
        self._forests: dict[tuple[bool, tuple[str, ...]], RandomForestClassifier] = {}

    def log_probabilities(self, queries: Sequence[tuple[Mapping[str, int], bool, Mapping[str, float]]]
                          ) -> list[dict[int, float]]:
        """log P(group) of each (counts, by_elements, properties) query, for the groups with nonzero
        probability; properties the forest cannot read are ignored. One forest call per kind of query."""
        results: list[dict[int, float]] = [{} for _ in queries]
        batches: dict[tuple[bool, tuple[str, ...]], list[int]] = {}
        for i, (_, by_elements, properties) in enumerate(queries):
            batches.setdefault((by_elements, tuple(n for n in PROPERTIES if n in properties)), []).append(i)
        for (by_elements, names), members in batches.items():
            forest = self._forest(by_elements, names)
            x = np.array([forest_features(reduce_counts(dict(queries[i][0]))[0], by_elements,
                                          [queries[i][2][n] for n in names]) for i in members])
            for i, probabilities in zip(members, forest.predict_proba(x)):
                results[i] = {int(g): math.log(p) for g, p in zip(forest.classes_, probabilities) if p > 0}
        return results

    def _forest(self, by_elements: bool, names: tuple[str, ...]) -> RandomForestClassifier:
        key = (by_elements, names)
        if key not in self._forests:
            columns = [PROPERTIES.index(n) for n in names]
            rows = [(counts, [values[c] for c in columns], group) for counts, values, group in self.crystals
                    if all(values[c] is not None for c in columns)]
            x = np.array([forest_features(counts, by_elements, values) for counts, values, _ in rows])
            forest = RandomForestClassifier(n_estimators=self.trees, random_state=self.seed, n_jobs=1)
            self._forests[key] = forest.fit(x, [group for _, _, group in rows])
        return self._forests[key]


class ForestGenerator(PriorGenerator):
    """The prior's constraint search, with space groups ranked by the property-aware forest
    (deterministic; the seed is unused). ``prior_share`` is the prior's weight in the mixture."""

    name = "forest"
    description = "random forest on composition + target properties ranks the prior's space groups"

    def __init__(self, table: str | None = None, prior_share: float = 0.1, trees: int = 300, **options):
        check_number("G forest", "prior_share", prior_share, 0)
        check_number("G forest", "trees", trees, 1, integer=True)
        if prior_share > 1:
            raise InvalidInputError(f"G forest: prior_share must be <= 1 (got {prior_share!r})")
        super().__init__(table, **options)
        self.prior_share = prior_share
        self.forest = SpaceGroupForest(self.prior.crystals, trees)
        self._learned: dict[tuple, dict[int, float]] = {}

    def generate(self, requests: Sequence[GenerationRequest], top_k: int, seed: int) -> list[list[Constraint]]:
        queries = list(dict.fromkeys(_query(r) for r in requests if not r.space_group))
        found = self.forest.log_probabilities([(dict.fromkeys(key, 1) if by_elements else dict(key), by_elements,
                                                dict(properties)) for key, by_elements, properties in queries])
        self._learned = dict(zip(queries, found))
        return super().generate(requests, top_k, seed)

    def _group_scores(self, ratio: dict[str, int], request: GenerationRequest) -> dict[int, float]:
        query = _query(request)
        if query not in self._learned:  # a request with its space group given: the forest is not needed
            return super()._group_scores(ratio, request)
        return self._mixed_scores(query, stoichiometry_pattern(ratio), len(ratio))

    @lru_cache(maxsize=4096)
    def _mixed_scores(self, query: tuple, pattern: str, element_count: int) -> dict[int, float]:
        learned = self._learned[query]
        prior = self._pattern_scores(pattern, element_count)
        mixed = {g: (1 - self.prior_share) * math.exp(learned.get(g, -math.inf)) + self.prior_share * math.exp(s)
                 for g, s in prior.items()}
        return {g: math.log(p) if p > 0 else -math.inf for g, p in mixed.items()}


def _query(request: GenerationRequest) -> tuple[tuple, bool, tuple[tuple[str, float], ...]]:
    """Hashable forest query of a request: reduced formula items or element set, kind, properties."""
    by_elements = request.formula is None
    key = tuple(sorted(request.elements or ())) if by_elements else \
        tuple(sorted(reduce_counts(request.counts)[0].items()))
    return key, by_elements, tuple(sorted((name, t.center) for name, t in request.properties.items()))
