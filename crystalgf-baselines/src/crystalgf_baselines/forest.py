"""G ``forest``: the prior's candidates re-ranked by a random forest that also reads the targets.

P(space group | composition, target properties) comes from a random forest (scikit-learn) over the
composition descriptors of :mod:`crystalgf_baselines.features`, the number of elements, the size
of the reduced formula and its largest fraction (formulas only), the number of formula units and
of atoms (exact cells only) and the given property values. One forest is fitted per composition
kind (:data:`KINDS`) and set of given properties, on first use, from the training crystals stored
in the prior's table (deterministic: fixed seed, one job). It is mixed with the prior:
log((1 - prior_share) P_forest + prior_share P_prior), so that groups the forest never saw keep the
prior's order. For an exact cell the forest has read the number of formula units, so the prior's
P(formula units | group) is not added again. For a reduced formula the cell size is unknown: a forest
of the same kind predicts the number of formula units Z, and P(group | formula) = sum over Z of
P(Z | formula) P(group | cell of Z formula units), the cell forest's answer; the cell is then chosen by
P(Z | group, formula) from the same sum. An element set's candidate ratios come from a forest
of the same kind over the ratios of known compounds (amounts in order of electronegativity, e.g.
1-1-2 for LiFeO2), which reads the target properties too. Wyckoff sites are chosen as by the prior.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from crystalgf.errors import InvalidInputError, check_number
from crystalgf.formula import parse_formula, reduce_counts, stoichiometry_pattern
from crystalgf.schema import MAX_CELL_ATOMS, Constraint, GenerationRequest
from crystalgf.symmetry import has_wyckoff_assignment
from crystalgf.symmetry.wyckoff import CENTRING_FACTORS, centring_factor

from crystalgf_baselines.features import composition_features
from crystalgf_baselines.prior import PriorGenerator
from crystalgf_baselines.substitution import ratio_from_label, ratio_label

PROPERTIES = ("band_gap", "formation_energy_per_atom")
"""Properties the forest can read, in the order of its inputs (and of the table's crystal rows)."""
KINDS = ("elements", "formula", "cell")
"""What a query tells of the composition: the element set, the reduced formula, or the exact cell."""
TARGETS = ("space_group", "ratio", "formula_units")
"""What a forest predicts: the space group, the reduced ratio (:func:`ratio_label`), or the number of
formula units in the cell (meant for reduced formulas)."""
_UNIFORM_Z_SHARE = 0.05
"""Share of a uniform distribution over the feasible cell sizes in P(Z | formula), so that a size the
forest never predicts stays possible."""
_FLOOR = math.log(1e-6)
"""log-score of a cell size whose cell the cell forest gives no probability for a group."""


def _label(counts: Mapping[str, int], group: int, target: str) -> int | str:
    """What a forest of ``target`` learns from a crystal of these cell counts and space group."""
    if target == "space_group":
        return group
    return ratio_label(counts) if target == "ratio" else reduce_counts(dict(counts))[1]


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


class ForestQuery(NamedTuple):
    """What the forest is asked for one request (hashable): composition items (an element set: count 1
    each), composition kind (:data:`KINDS`), target properties, and for a reduced formula the most atoms
    per cell (which bounds its cell sizes)."""

    composition: tuple[tuple[str, int], ...]
    kind: str
    properties: tuple[tuple[str, float], ...]
    max_atoms: int | None

    @classmethod
    def of(cls, request: GenerationRequest) -> ForestQuery:
        """The query of a request (its space group, if given, plays no part)."""
        if request.formula is None:
            composition, kind = tuple((element, 1) for element in sorted(request.elements or ())), "elements"
        elif request.exact_cell:
            composition, kind = tuple(sorted(request.counts.items())), "cell"
        else:
            composition, kind = tuple(sorted(reduce_counts(request.counts)[0].items())), "formula"
        properties = tuple(sorted((name, target.center) for name, target in request.properties.items()))
        return cls(composition, kind, properties, request.max_atoms if kind == "formula" else None)

    def plain(self) -> tuple[dict[str, int], str, dict[str, float]]:
        """The (counts, kind, properties) form that :meth:`CrystalForest.log_probabilities` reads."""
        return dict(self.composition), self.kind, dict(self.properties)


class CompactForest:
    """What a fitted scikit-learn random forest needs to predict: each tree's split nodes and its leaves'
    nonzero class fractions. scikit-learn keeps a row over every class at every node (0.6-1.8 GB for
    each forest here, 127-333 classes); this keeps a few percent of that and predicts the same numbers
    (the same float32 comparisons, missing values, and summation order)."""

    def __init__(self, forest: RandomForestClassifier):
        self.classes_ = forest.classes_
        self._trees = [_CompactTree(estimator.tree_) for estimator in forest.estimators_]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32).astype(np.float64)  # scikit-learn compares float32 inputs
        probabilities = np.zeros((len(x), len(self.classes_)))
        for tree in self._trees:
            tree.add_leaf_fractions(x, probabilities)
        probabilities /= len(self._trees)
        return probabilities


class _CompactTree:
    """One fitted tree: split nodes (``left`` is -1 at a leaf) and each node's nonzero class fractions
    (``fractions[starts[n]:starts[n + 1]]`` of ``classes[...]``)."""

    def __init__(self, tree):
        self.left, self.right = tree.children_left.astype(np.int32), tree.children_right.astype(np.int32)
        self.feature, self.threshold = tree.feature.astype(np.int32), tree.threshold.copy()  # not a view of the tree
        self.missing_left = tree.missing_go_to_left.astype(bool)
        leaf = self.left < 0
        values = tree.value[:, 0, :]
        nodes, self.classes = np.nonzero(values * leaf[:, None])
        self.fractions = values[nodes, self.classes]
        self.starts = np.searchsorted(nodes, np.arange(len(leaf) + 1))

    def add_leaf_fractions(self, x: np.ndarray, probabilities: np.ndarray) -> None:
        """Add the class fractions of each row's leaf to its row of ``probabilities``."""
        rows = np.arange(len(x))
        node = np.zeros(len(x), dtype=np.int64)
        while (inner := self.left[node] >= 0).any():
            at, split = rows[inner], node[inner]
            value = x[at, self.feature[split]]
            goes_left = np.where(np.isnan(value), self.missing_left[split], value <= self.threshold[split])
            node[inner] = np.where(goes_left, self.left[split], self.right[split])
        first, counts = self.starts[node], self.starts[node + 1] - self.starts[node]
        ends = np.cumsum(counts)
        entries = np.arange(counts.sum()) - np.repeat(ends - counts - first, counts)  # each row's leaf span
        probabilities[np.repeat(rows, counts), self.classes[entries]] += self.fractions[entries]


class CrystalForest:
    """Random forests over known crystals: ``log_probabilities`` of each space group (or ratio, or number
    of formula units) they saw."""

    def __init__(self, crystals: Sequence[tuple[str, float | None, float | None, int]], trees: int = 300,
                 seed: int = 0):
        self.crystals = [(parse_formula(formula), values, group) for formula, *values, group in crystals]
        self.trees, self.seed = trees, seed
        self._forests: dict[tuple[str, tuple[str, ...], str], CompactForest] = {}

    def log_probabilities(self, queries: Sequence[tuple[Mapping[str, int], str, Mapping[str, float]]],
                          target: str = "space_group") -> list[dict[int | str, float]]:
        """log P(label) of each (counts, kind, properties) query, for the labels (space groups, ratios:
        :func:`ratio_label`, or numbers of formula units) with nonzero probability; properties the forest cannot read are
        ignored. One forest call per kind of query."""
        if target not in TARGETS:
            raise InvalidInputError(f"G forest: unknown target {target!r} (choose from {', '.join(TARGETS)})")
        results: list[dict[int | str, float]] = [{} for _ in queries]
        batches: dict[tuple[str, tuple[str, ...]], list[int]] = {}
        for i, (_, kind, properties) in enumerate(queries):
            if kind not in KINDS:
                raise InvalidInputError(f"G forest: unknown composition kind {kind!r} (choose from {', '.join(KINDS)})")
            batches.setdefault((kind, tuple(n for n in PROPERTIES if n in properties)), []).append(i)
        label = str if target == "ratio" else int
        for (kind, names), members in batches.items():
            forest = self._forest(kind, names, target)
            x = np.array([forest_features(queries[i][0], kind, [queries[i][2][n] for n in names]) for i in members])
            for i, probabilities in zip(members, forest.predict_proba(x)):
                results[i] = {label(c): math.log(p) for c, p in zip(forest.classes_, probabilities) if p > 0}
        return results

    def _forest(self, kind: str, names: tuple[str, ...], target: str) -> CompactForest:
        key = (kind, names, target)
        if key not in self._forests:
            columns = [PROPERTIES.index(n) for n in names]
            rows = [(counts, [values[c] for c in columns], group) for counts, values, group in self.crystals
                    if all(values[c] is not None for c in columns)]
            x = np.array([forest_features(counts, kind, values) for counts, values, _ in rows])
            labels = [_label(counts, group, target) for counts, _, group in rows]
            forest = RandomForestClassifier(n_estimators=self.trees, random_state=self.seed, n_jobs=1)
            self._forests[key] = CompactForest(forest.fit(x, labels))
        return self._forests[key]


class ForestGenerator(PriorGenerator):
    """The prior's constraint search, with space groups ranked by the property-aware forest
    (deterministic; the seed is unused). ``prior_share`` is the prior's weight in the mixture."""

    name = "forest"
    description = "random forest on composition + target properties ranks the prior's space groups"

    def __init__(self, table: str | None = None, prior_share: float = 0.1, trees: int = 300,
                 primitive_share: float = 0.5, groups_per_request: int = 6, assignments_per_group: int = 40,
                 compositions_per_request: int = 3, per_group: int | None = None, patterns: str | None = None,
                 known_share: float = 0.6, rule_share: float = 0.6, analogue_share: float = 0.0):
        check_number("G forest", "prior_share", prior_share, 0)
        check_number("G forest", "primitive_share", primitive_share, 0)
        check_number("G forest", "trees", trees, 1, integer=True)
        for name, share in (("prior_share", prior_share), ("primitive_share", primitive_share)):
            if share > 1:
                raise InvalidInputError(f"G forest: {name} must be <= 1 (got {share!r})")
        super().__init__(table, groups_per_request, assignments_per_group, compositions_per_request, per_group,
                         patterns, known_share, rule_share, analogue_share)
        self.prior_share, self.primitive_share = prior_share, primitive_share
        self.forest = CrystalForest(self.prior.crystals, trees)
        self._learned: dict[tuple, dict[int, float]] = {}
        self._learned_ratios: dict[tuple, dict[str, float]] = {}
        self._cell_sizes: dict[tuple, dict[int, dict[int, float]]] = {}
        self._mixed_scores = lru_cache(maxsize=4096)(self._mixed_scores)  # per instance: freed with it

    def generate(self, requests: Sequence[GenerationRequest], top_k: int, seed: int) -> list[list[Constraint]]:
        asked = [(request, ForestQuery.of(request)) for request in requests]
        self._cell_sizes = {}
        direct = list(dict.fromkeys(q for r, q in asked if not r.space_group and q.kind == "elements"))
        self._learned = dict(zip(direct, self.forest.log_probabilities([q.plain() for q in direct])))
        # exact cells also where the group is given: the same reading of the cell as without it
        self._learn_over_cell_readings(list(dict.fromkeys(q for _, q in asked if q.kind == "cell")))
        # reduced formulas also where the group is given (the LLM G's stage 2): the same cell sizes as without it
        self._learn_over_cell_sizes(list(dict.fromkeys(q for _, q in asked if q.kind == "formula")))
        # ratios also where the group is given (the LLM G's stage 2): the same ratios as without it
        sets = list(dict.fromkeys(q for _, q in asked if q.kind == "elements"))
        self._learned_ratios = dict(zip(sets, self.forest.log_probabilities([q.plain() for q in sets], "ratio")))
        return super().generate(requests, top_k, seed)

    def _request_ratios(self, request: GenerationRequest) -> list[tuple[dict[str, int], float]]:
        """The forest's most probable ratios of the element set (the prior's where it knows none)."""
        learned = self._learned_ratios.get(ForestQuery.of(request), {})
        found = []
        for label, log_p in sorted(learned.items(), key=lambda item: (-item[1], item[0])):
            ratio = ratio_from_label(label, request.elements or ())
            if ratio is not None and sum(ratio.values()) <= request.max_atoms:
                found.append((ratio, log_p))
        return found[:self.compositions_per_request] or super()._request_ratios(request)

    def _group_scores(self, ratio: dict[str, int], request: GenerationRequest) -> dict[int, float]:
        if request.space_group is not None:  # the group is given: the forest's ranking is not needed
            return super()._group_scores(ratio, request)
        return self._mixed_scores(ForestQuery.of(request), stoichiometry_pattern(ratio), len(ratio))

    def _formula_units_score(self, group: int, formula_units: int, request: GenerationRequest) -> float:
        posterior = self._cell_sizes.get(ForestQuery.of(request), {}).get(group)
        if posterior is not None:
            return posterior.get(formula_units, _FLOOR)
        return super()._formula_units_score(group, formula_units, request)

    def _learn_over_cell_readings(self, queries: Sequence[ForestQuery]) -> None:
        """For exact cells C, which the user holds as the primitive cell with probability s
        (``primitive_share``) or else as the conventional one: in a primitive group both readings are C; in
        a centred group with factor f, C is its conventional cell (where C has a Wyckoff assignment in it)
        or f C is. With the cell forest's P(group | conventional cell) as the evidence of each reading,
        P(group) is proportional to (1 - s + s [group primitive]) P(group | C) [C feasible] + s [group
        centred] P(group | f C). log P(group) into ``_learned`` and log P(reading | group), by the
        reading's number of formula units, into ``_cell_sizes``."""
        multiples = sorted(set(CENTRING_FACTORS.values()) - {1})
        by_cell = iter(self.forest.log_probabilities([
            ({element: n * m for element, n in q.composition}, "cell", dict(q.properties))
            for q in queries for m in (1, *multiples)]))
        share = self.primitive_share
        for query in queries:
            readings = {m: next(by_cell) for m in (1, *multiples)}
            counts, z = dict(query.composition), reduce_counts(dict(query.composition))[1]
            joint: dict[int, dict[int, float]] = {}
            for group in set().union(*readings.values()):
                centring = centring_factor(group)
                options = {}
                if group in readings[1] and (centring == 1 or has_wyckoff_assignment(counts, group)):
                    options[z] = math.log(1.0 if centring == 1 else 1 - share) + readings[1][group]
                if centring > 1 and share > 0 and group in readings[centring]:
                    options[z * centring] = math.log(share) + readings[centring][group]
                options = {size: score for size, score in options.items() if score > -math.inf}
                if options:
                    joint[group] = options
            marginal = {group: _log_sum_exp(by_size.values()) for group, by_size in joint.items()}
            total = _log_sum_exp(marginal.values())
            self._learned[query] = {group: score - total for group, score in marginal.items()}
            self._cell_sizes[query] = {group: {size: score - marginal[group] for size, score in by_size.items()}
                                       for group, by_size in joint.items()}

    def _learn_over_cell_sizes(self, queries: Sequence[ForestQuery]) -> None:
        """For reduced formulas: log P(group | formula) = log sum over Z of P(Z | formula) P(group | cell
        of Z formula units) into ``_learned``, and log P(Z | group, formula) into ``_cell_sizes``."""
        largest = max(CENTRING_FACTORS.values())
        sizes = {q: range(1, min(largest * q.max_atoms, MAX_CELL_ATOMS) // sum(dict(q.composition).values()) + 1)
                 for q in queries}
        predicted = self.forest.log_probabilities([q.plain() for q in queries], "formula_units")
        by_cell = iter(self.forest.log_probabilities([
            ({element: n * z for element, n in q.composition}, "cell", dict(q.properties))
            for q in queries for z in sizes[q]]))
        for query, size_scores in zip(queries, predicted):
            feasible = {z: math.exp(size_scores.get(z, -math.inf)) for z in sizes[query]}
            total = sum(feasible.values())  # the forest's P(Z) given that the cell fits
            joint: dict[int, dict[int, float]] = {}
            for z, p in feasible.items():
                log_p_size = math.log((1 - _UNIFORM_Z_SHARE) * (p / total if total else 1 / len(feasible))
                                      + _UNIFORM_Z_SHARE / len(feasible))
                atoms = z * sum(dict(query.composition).values())
                for group, log_p in next(by_cell).items():
                    if atoms <= centring_factor(group) * query.max_atoms:  # the primitive cell fits
                        joint.setdefault(group, {})[z] = log_p_size + log_p
            marginal = {group: _log_sum_exp(by_size.values()) for group, by_size in joint.items()}
            total = _log_sum_exp(marginal.values())  # the cells whose primitive cell fits
            self._learned[query] = {group: score - total for group, score in marginal.items()}
            self._cell_sizes[query] = {group: {z: score - marginal[group] for z, score in by_size.items()}
                                       for group, by_size in joint.items()}

    def _mixed_scores(self, query: ForestQuery, pattern: str, element_count: int) -> dict[int, float]:
        learned = self._learned[query]
        prior = self._pattern_scores(pattern, element_count)
        mixed = {g: (1 - self.prior_share) * math.exp(learned.get(g, -math.inf)) + self.prior_share * math.exp(s)
                 for g, s in prior.items()}
        return {g: math.log(p) if p > 0 else -math.inf for g, p in mixed.items()}


def _log_sum_exp(values: Iterable[float]) -> float:
    """log(sum(exp(v))) without overflow (-inf where every value is -inf)."""
    values = list(values)
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))

