"""G ``prior``: ranked constraints from space-group statistics of known crystals.

For a formula, candidate space groups are ranked by their frequency among training crystals of
the same stoichiometry pattern (e.g. ABC3), backed off to crystals with the same number of
elements and to all crystals; within a group, the number of formula units is chosen by how often it occurs in that group and the
Wyckoff sites by the joint model of whole assignments (:mod:`crystalgf_baselines.wyckoff_model`). Element sets first get candidate
ratios: those of analogous known compounds (:mod:`crystalgf_baselines.substitution`), then
frequent stoichiometry patterns that are charge balanced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property, lru_cache
from itertools import islice, permutations
from pathlib import Path

from pymatgen.core import Composition

from crystalgf.errors import InvalidInputError, NoWyckoffAssignmentError, check_number
from crystalgf.formula import format_formula, parse_formula, reduce_counts, stoichiometry_pattern
from crystalgf.interfaces import CandidateProposer
from crystalgf.schema import Constraint, GenerationRequest
from crystalgf.symmetry import WyckoffSite, centring_factor, realizes_space_group, space_group_symbol
from crystalgf.weights import locate, places_to_look

from crystalgf_baselines.prior_table import PriorTable
from crystalgf_baselines.reference_structures import PACKAGED_REFERENCES, ReferenceStructure, ReferenceStructures
from crystalgf_baselines.substitution import SubstitutionRatios
from crystalgf_baselines.wyckoff_model import (
    DEFAULT_WEIGHTS,
    PATTERNS_ENVIRONMENT_VARIABLE,
    WyckoffModel,
    canonical,
    packaged_patterns_file,
    read_pattern_counts,
)

PACKAGED_TABLE = Path(__file__).parent / "data" / "prior.json"
TABLE_ENVIRONMENT_VARIABLE = "CRYSTALGF_PRIOR_TABLE"
_SMOOTHING = 5.0
_CELLS_PER_GROUP = 3
"""Cell sizes of a group whose Wyckoff assignments are searched: the most probable ones ..."""
_CELL_MARGIN = math.log(1e3)
"""... within this log-score of the best."""
_MOST_REFERENCE_SHARE = 0.95
"""Most probability the reference structures of a formula take together; the rest follows the statistics."""
_ELEMENT_STATE_WEIGHT = 20.0
"""An element's reference state (ASE) outweighs the library's other structures of that element this much."""
_NON_AMBIENT_WEIGHT = 0.1
"""A phase of high pressure or temperature (AFLOW's high-pressure CdTe, beta-quartz) against an ambient one."""


class PriorGenerator(CandidateProposer):
    """Data-driven prior over space groups and Wyckoff sites (deterministic; the seed is unused).

    ``per_group`` caps the constraints returned per space group (1: the top-k are distinct groups).
    """

    name = "prior"
    description = "space-group frequency by stoichiometry pattern, then a frequent valid Wyckoff assignment"

    def __init__(self, table: str | None = None, groups_per_request: int = 6, assignments_per_group: int = 40,
                 compositions_per_request: int = 3, per_group: int | None = None, patterns: str | None = None,
                 known_share: float = 0.6, rule_share: float = 0.6, analogue_share: float = 0.0):
        for option, value in (("known_share", known_share), ("rule_share", rule_share), ("analogue_share", analogue_share)):
            check_number(f"G {self.name}", option, value, 0)
            if value > 1:
                raise InvalidInputError(f"G {self.name}: {option} must be <= 1 (got {value!r})")
        self.table_path = locate(
            f"G {self.name}", places_to_look(table, TABLE_ENVIRONMENT_VARIABLE, [PACKAGED_TABLE]),
            f"pass --g-option table=PATH or set {TABLE_ENVIRONMENT_VARIABLE}; re-create the table with "
            "python crystalgf-baselines/scripts/fit_prior.py --data constraints.csv",
        )
        self.prior = PriorTable.load(self.table_path)
        # an input file like any other: a missing one is reported when it is read
        self.patterns_path = places_to_look(patterns, PATTERNS_ENVIRONMENT_VARIABLE, [packaged_patterns_file()])[0]
        self.wyckoff_model = WyckoffModel(self.prior.known_crystals(), read_pattern_counts(self.patterns_path),
                                          self.prior.wyckoff_weights or DEFAULT_WEIGHTS)
        self.references = ReferenceStructures.load()
        self.known_share, self.rule_share, self.analogue_share = known_share, rule_share, analogue_share
        self.groups_per_request = groups_per_request
        self.assignments_per_group = assignments_per_group
        self.compositions_per_request = compositions_per_request
        self.per_group = per_group
        for name in ("_pattern_scores", "_log_p_group", "_log_p_formula_units"):  # per instance: freed with it
            setattr(self, name, lru_cache(maxsize=None)(getattr(self, name)))

    @classmethod
    def as_candidates(cls, groups_per_request: int | None = None, per_group: int | None = None,
                      assignments_per_group: int | None = None) -> PriorGenerator:
        bounds = {"groups_per_request": groups_per_request, "per_group": per_group,
                  "assignments_per_group": assignments_per_group}
        return cls(**{name: value for name, value in bounds.items() if value is not None})

    def weights_files(self) -> list[Path]:
        return [self.table_path, self.patterns_path, PACKAGED_REFERENCES]

    def generate(self, requests: Sequence[GenerationRequest], top_k: int, seed: int) -> list[list[Constraint]]:
        return [self._rank(request, top_k) for request in requests]

    def _rank(self, request: GenerationRequest, top_k: int) -> list[Constraint]:
        if request.formula is not None:
            ratios = [(request.counts if request.exact_cell else reduce_counts(request.counts)[0], 0.0)]
        else:
            ratios = self._request_ratios(request)
        scored: list[tuple[float, float, Constraint]] = []
        for ratio, ratio_score in ratios:
            for score, site_score, constraint in self._rank_formula(ratio, request, top_k):
                scored.append((score + ratio_score, site_score, constraint))
        if not scored:
            where = f" in space group {request.space_group} ({space_group_symbol(request.space_group)})" \
                if request.space_group else ""
            raise NoWyckoffAssignmentError(
                f"{request.composition_text} has no Wyckoff assignment{where} with at most {request.max_atoms} atoms "
                "per primitive cell"
            )
        scored.sort(key=lambda item: (-item[0], -item[1]))
        unique: dict[tuple, Constraint] = {}
        in_group: dict[int, int] = {}
        for score, _, constraint in scored:
            key = _constraint_key(constraint.counts, constraint.space_group, constraint.wyckoff_sites)
            if key in unique or in_group.get(constraint.space_group, 0) >= (self.per_group or top_k):
                continue
            in_group[constraint.space_group] = in_group.get(constraint.space_group, 0) + 1
            unique[key] = constraint.model_copy(update={"score": round(score, 4)})
        return list(unique.values())[:top_k]

    def _rank_formula(self, ratio: dict[str, int], request: GenerationRequest,
                      top_k: int) -> list[tuple[float, float, Constraint]]:
        """(log P(group, cell), log P(sites | group), constraint) for the best assignments of the most
        likely groups: groups are ranked by their own probability, sites only order within a group."""
        references = self._references(ratio, request)
        group_scores = dict(self._group_scores(ratio, request))
        if references:  # a mixture: the references' shares, the rest by the statistics
            rest = 1.0 - sum(share for found in references.values() for share, _, _ in found)
            shares = {group: sum(share for share, _, _ in found) for group, found in references.items()}
            mixed = {group: rest * math.exp(group_scores.get(group, -math.inf)) + shares.get(group, 0.0)
                     for group in set(group_scores) | set(shares)}
            group_scores = {group: math.log(p) if p > 0 else -math.inf for group, p in mixed.items()}
        groups = [request.space_group] if request.space_group else \
            sorted(group_scores, key=lambda g: (-group_scores[g], g))
        found: list[tuple[float, float, Constraint]] = []
        feasible_groups, per_group = 0, min(top_k, self.per_group or top_k)
        for group in groups:
            if len(found) >= top_k and group_scores[group] < sorted(item[0] for item in found)[-top_k]:
                break  # an option's score is at most its group's: no later group can enter the top k
            options = []
            preference = self.prior.letter_preference(group)
            cells = [(group_scores[group] + self._formula_units_score(group, reduce_counts(counts)[1], request), counts)
                     for counts in request.cell_options(ratio, centring_factor(group))]
            cells = sorted(cells, key=lambda item: -item[0])[:_CELLS_PER_GROUP]
            for score, counts in (cell for cell in cells if cell[0] > cells[0][0] - _CELL_MARGIN):
                for site_score, sites in self.wyckoff_model.rank(counts, group, preference)[:self.assignments_per_group]:
                    options.append((score, site_score, counts, sites))
            best = max((score for score, *_ in options), default=-math.inf)
            for share, counts, sites in references.get(group, ()):  # a reference's own cell and sites lead its group
                score = group_scores[group] + self._formula_units_score(group, reduce_counts(counts)[1], request)
                options.append((max(score, best, math.log(share)), math.inf, counts, sites))  # its share is its cell's
            distinct: dict[tuple, tuple] = {}
            for option in sorted(options, key=lambda item: (-item[0], -item[1])):  # the best of equals stays
                distinct.setdefault(_constraint_key(option[2], group, option[3]), option)
            options = list(distinct.values())
            # the symmetry check (spglib) is the expensive part: only as far down the order as needed
            in_group = [(score, site_score, Constraint(formula=format_formula(counts), space_group=group, wyckoff=sites,
                                                       properties=request.properties, generator=self.name))
                        for score, site_score, counts, sites in islice(
                            (o for o in options if realizes_space_group(o[2], group, o[3])), per_group)]
            if in_group:
                found.extend(in_group)
                feasible_groups += 1
                if feasible_groups >= max(self.groups_per_request, top_k):
                    break
        return found

    def _references(self, ratio: dict[str, int], request: GenerationRequest
                    ) -> dict[int, list[tuple[float, dict[str, int], tuple]]]:
        """Group -> (probability share, cell counts, sites) of the reference structures of the ratio whose
        cells the request allows. Each kind of reference (known structures of the formula, the textbook
        rules' structure types, substitution analogues) holds its option's share of the probability
        (together at most :data:`_MOST_REFERENCE_SHARE`), split among its structures by weight: an
        element's reference state (ASE) outweighs the library's other structures of it, a rule's first
        type its second, an analogue counts by its similarity; a phase of high pressure or temperature counts
        a tenth of an ambient one."""
        kinds = [(self.known_share, [(_known_weight(r), r) for r in self.references.known(ratio)]),
                 (self.rule_share, [(0.5 ** i, r) for i, r in enumerate(self.references.by_rules(ratio))]),
                 (self.analogue_share, [(similarity, r) for similarity, r in self.references.analogues(ratio)]
                  if self.analogue_share else [])]
        kinds = [(share, [(w, r) for w, r in weighted if request.allows_cell(dict(r.counts), r.space_group)])
                 for share, weighted in kinds]
        kinds = [(share, weighted) for share, weighted in kinds if share and weighted]
        scale = min(1.0, _MOST_REFERENCE_SHARE / sum(share for share, _ in kinds)) if kinds else 1.0
        found: dict[int, list[tuple[float, dict[str, int], tuple]]] = {}
        for share, weighted in kinds:
            total = max(sum(w for w, _ in weighted), 1.0)  # a lone high-pressure phase keeps a tenth
            for weight, reference in weighted:
                counts = dict(reference.counts)
                found.setdefault(reference.space_group, []).append(
                    (scale * share * weight / total, {element: counts[element] for element in ratio}, reference.sites))
        return found

    def _group_scores(self, ratio: dict[str, int], request: GenerationRequest) -> dict[int, float]:
        """log-score of every space group for a ratio of a request: here P(group | stoichiometry pattern)."""
        return self._pattern_scores(stoichiometry_pattern(ratio), len(ratio))

    def _pattern_scores(self, pattern: str, element_count: int) -> dict[int, float]:
        return {g: self._log_p_group(pattern, element_count, g) for g in range(1, 231)}

    def _log_p_group(self, pattern: str, element_count: int, group: int) -> float:
        prior = self.prior
        total = sum(prior.space_groups.values())
        p_all = (prior.space_groups[group] + 1.0) / (total + 230.0)
        by_count = prior.space_groups_by_element_count.get(element_count, {})
        p_count = (by_count.get(group, 0) + _SMOOTHING * p_all) / (sum(by_count.values()) + _SMOOTHING)
        by_pattern = prior.space_groups_by_pattern.get(pattern, {})
        return math.log((by_pattern.get(group, 0) + _SMOOTHING * p_count) / (sum(by_pattern.values()) + _SMOOTHING))

    def _formula_units_score(self, group: int, formula_units: int, request: GenerationRequest) -> float:
        """log-score of a cell with that many formula units in a group: here P(formula units | group)."""
        return self._log_p_formula_units(group, formula_units)

    def _log_p_formula_units(self, group: int, z: int) -> float:
        observed = self.prior.formula_units_by_space_group.get(group, {})
        return math.log((observed.get(z, 0) + 1.0 / z) / (sum(observed.values()) + 1.0))

    @cached_property
    def _pattern_totals(self) -> dict[int, int]:
        return {n: sum(c.values()) for n, c in self.prior.patterns_by_element_count.items()}

    @cached_property
    def _substitution(self) -> SubstitutionRatios:
        return SubstitutionRatios([parse_formula(formula) for formula, *_ in self.prior.crystals])

    def _request_ratios(self, request: GenerationRequest) -> list[tuple[dict[str, int], float]]:
        """Candidate reduced ratios of an element-set request with log-scores, best first."""
        return self._ratios(request.elements or (), request.max_atoms)

    def _ratios(self, elements: Sequence[str], max_atoms: int) -> list[tuple[dict[str, int], float]]:
        """Candidate reduced ratios for an element set with log-scores, best first: those of analogous
        known compounds (substitution), then frequent stoichiometry patterns, charge balanced first."""
        scored: dict[str, float] = {}
        for ratio, share in self._substitution.shares(elements):
            if sum(ratio.values()) <= max_atoms:
                scored[_canonical(ratio)] = math.log(0.9 * share)
        analogues = bool(scored)
        patterns = self.prior.patterns_by_element_count.get(len(elements), {})
        total = self._pattern_totals.get(len(elements), 0)
        for pattern, count in sorted(patterns.items(), key=lambda item: -item[1])[:12]:
            amounts = [int(a) for a in pattern.split("-")]
            if sum(amounts) > max_atoms:
                continue
            for order in set(permutations(amounts)):
                formula = _canonical(dict(zip(elements, order)))
                if formula in scored:
                    continue
                balance = 0.0 if _charge_balanced(formula) else math.log(0.05)
                scored[formula] = math.log((0.1 if analogues else 1.0) * count / total) + balance
        best = sorted(scored.items(), key=lambda item: -item[1])[: self.compositions_per_request]
        return [(parse_formula(formula), score) for formula, score in best]


def _constraint_key(counts: dict[str, int], group: int, sites: Sequence[WyckoffSite]) -> tuple:
    """One key per constraint up to element order and the group's equivalent relabellings."""
    return tuple(sorted(counts.items())), group, canonical(group, tuple(sites))


def _canonical(ratio: dict[str, int]) -> str:
    """One spelling per ratio: pymatgen's formula (elements by electronegativity), e.g. ``Li1Fe1O2``."""
    return Composition(ratio).formula.replace(" ", "")


def _known_weight(reference: ReferenceStructure) -> float:
    """Weight of a known structure of a formula among the others: an element's reference state (ASE)
    outweighs the library's other structures of it, a non-ambient phase counts a tenth."""
    if reference.source.startswith("ase:"):
        return _ELEMENT_STATE_WEIGHT
    return 1.0 if reference.ambient else _NON_AMBIENT_WEIGHT


@lru_cache(maxsize=4096)
def _charge_balanced(formula: str) -> bool:
    """Whether the reduced formula can be neutral with pymatgen's ICSD (else common) oxidation states,
    mixed valence allowed: what ``Composition.oxi_state_guesses(max_sites=-1)`` decides, without
    scoring every guess; always true for intermetallics."""
    composition = Composition(formula)
    if all(element.is_metal for element in composition.elements):
        return True
    totals = {0}
    for element, amount in composition.reduced_composition.items():
        states = element.icsd_oxidation_states or element.common_oxidation_states
        for _ in range(int(amount)):
            totals = {total + state for total in totals for state in states}
    return 0 in totals
