"""G ``forest``: the prior's candidates re-ranked by a random forest that also reads the targets.

P(space group | composition, target properties) comes from a random forest (scikit-learn) over the
composition descriptors of :mod:`crystalgf_baselines.features`, the number of elements, the size
of the reduced formula and its largest fraction (formulas only), the number of formula units and
of atoms (exact cells only) and the given property values. One forest is fitted per composition
kind (:data:`KINDS`) and set of given properties, on first use, from the training crystals stored
in the prior's table (deterministic: fixed seed, one job). It is mixed with the prior:
log((1 - prior_share) P_forest + prior_share P_prior), so that groups the forest never saw keep the
prior's order. For an exact cell the forest has read the number of formula units, so the prior's
P(formula units | group) is not added again. Wyckoff sites are chosen as by the prior.
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
KINDS = ("elements", "formula", "cell")
"""What a query tells of the composition: the element set, the reduced formula, or the exact cell."""


def forest_features(counts: Mapping[str, int], kind: str, values: Sequence[float]) -> np.ndarray:
    """Input vector of one composition of a kind (:data:`KINDS`): ``counts`` are the cell's (or any
    multiple of the formula; only the elements count for an element set)."""
    if kind == "elements":
        return np.concatenate([composition_features(dict.fromkeys(counts, 1)), [len(counts)], values])
    ratio, formula_units = reduce_counts(dict(counts))
    atoms = sum(ratio.values())
    shape = [len(ratio), atoms, max(ratio.values()) / atoms]
    if kind == "cell":
        shape += [formula_units, formula_units * atoms]
    return np.concatenate([composition_features(ratio), shape, values])


class SpaceGroupForest:
    """Random forests over known crystals: ``log_probabilities`` of each space group they saw."""

    def __init__(self, crystals: Sequence[tuple[str, float | None, float | None, int]], trees: int = 300,
                 seed: int = 0):
        self.crystals = [(parse_formula(formula), values, group) for formula, *values, group in crystals]
        self.trees, self.seed = trees, seed
        self._forests: dict[tuple[str, tuple[str, ...]], RandomForestClassifier] = {}

    def log_probabilities(self, queries: Sequence[tuple[Mapping[str, int], str, Mapping[str, float]]]
                          ) -> list[dict[int, float]]:
        """log P(group) of each (counts, kind, properties) query, for the groups with nonzero
        probability; properties the forest cannot read are ignored. One forest call per kind of query."""
        results: list[dict[int, float]] = [{} for _ in queries]
        batches: dict[tuple[str, tuple[str, ...]], list[int]] = {}
        for i, (_, kind, properties) in enumerate(queries):
            if kind not in KINDS:
                raise InvalidInputError(f"G forest: unknown composition kind {kind!r} (choose from {', '.join(KINDS)})")
            batches.setdefault((kind, tuple(n for n in PROPERTIES if n in properties)), []).append(i)
        for (kind, names), members in batches.items():
            forest = self._forest(kind, names)
            x = np.array([forest_features(queries[i][0], kind, [queries[i][2][n] for n in names]) for i in members])
            for i, probabilities in zip(members, forest.predict_proba(x)):
                results[i] = {int(g): math.log(p) for g, p in zip(forest.classes_, probabilities) if p > 0}
        return results

    def _forest(self, kind: str, names: tuple[str, ...]) -> RandomForestClassifier:
        key = (kind, names)
        if key not in self._forests:
            columns = [PROPERTIES.index(n) for n in names]
            rows = [(counts, [values[c] for c in columns], group) for counts, values, group in self.crystals
                    if all(values[c] is not None for c in columns)]
            x = np.array([forest_features(counts, kind, values) for counts, values, _ in rows])
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
        found = self.forest.log_probabilities([(dict(key), kind, dict(properties)) for key, kind, properties in queries])
        self._learned = dict(zip(queries, found))
        return super().generate(requests, top_k, seed)

    def _group_scores(self, ratio: dict[str, int], request: GenerationRequest) -> dict[int, float]:
        query = _query(request)
        if query not in self._learned:  # a request with its space group given: the forest is not needed
            return super()._group_scores(ratio, request)
        return self._mixed_scores(query, stoichiometry_pattern(ratio), len(ratio))

    def _formula_units_score(self, group: int, formula_units: int, request: GenerationRequest) -> float:
        if request.exact_cell and _query(request) in self._learned:
            return 0.0  # the forest has read the number of formula units
        return super()._formula_units_score(group, formula_units, request)

    @lru_cache(maxsize=4096)
    def _mixed_scores(self, query: tuple, pattern: str, element_count: int) -> dict[int, float]:
        learned = self._learned[query]
        prior = self._pattern_scores(pattern, element_count)
        mixed = {g: (1 - self.prior_share) * math.exp(learned.get(g, -math.inf)) + self.prior_share * math.exp(s)
                 for g, s in prior.items()}
        return {g: math.log(p) if p > 0 else -math.inf for g, p in mixed.items()}


def _query(request: GenerationRequest) -> tuple[tuple, str, tuple[tuple[str, float], ...]]:
    """Hashable forest query of a request: composition items (an element set: count 1 each), kind,
    properties."""
    if request.formula is None:
        key, kind = tuple((element, 1) for element in sorted(request.elements or ())), "elements"
    elif request.exact_cell:
        key, kind = tuple(sorted(request.counts.items())), "cell"
    else:
        key, kind = tuple(sorted(reduce_counts(request.counts)[0].items())), "formula"
    return key, kind, tuple(sorted((name, t.center) for name, t in request.properties.items()))
