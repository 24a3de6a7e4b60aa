"""Reference structures: what well-kept libraries know of famous crystals, for G to propose first.

The packaged table (``data/reference_structures.json``, built by ``scripts/build_reference_structures.py``)
holds the space group and Wyckoff sites of the elements in their reference states (ASE) and of the 288
structure types of the AFLOW prototype library (pymatgen). A request's reduced formula meets them in two
ways:

- **known**: a reference structure of the same reduced formula (Cu -> fcc, MgAl2O4 -> spinel);
- **analogue**: a structure type of the same stoichiometry whose compound's ions substitute for the
  request's (MgO into rock salt NaCl), scored by pymatgen's ICSD substitution probabilities between the
  most likely oxidation states of both; elements map onto the type's sites by amount and order of
  electronegativity, and only ionic formulas (with a guessable oxidation state for every element) have
  analogues.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import permutations
from pathlib import Path

from pymatgen.core import Composition, Species

from crystalgf.formula import parse_formula, reduce_counts, stoichiometry_pattern
from crystalgf.schema import parse_wyckoff_text
from crystalgf.symmetry import WyckoffSite

from crystalgf_baselines.structure_rules import formula_ions, role_map, rule_types

PACKAGED_REFERENCES = Path(__file__).parent / "data" / "reference_structures.json"


@dataclass(frozen=True)
class ReferenceStructure:
    """One reference crystal: conventional-cell counts, space group, Wyckoff sites, where it comes from
    (``ase:fcc``, ``aflow:AB_cF8_225_a_b``), its name (mineral or structure type) and the conditions it
    exists at (``ambient``, ``high pressure``, ``high temperature``)."""

    counts: tuple[tuple[str, int], ...]
    space_group: int
    sites: tuple[WyckoffSite, ...]
    source: str
    name: str
    conditions: str = "ambient"

    @property
    def ratio(self) -> dict[str, int]:
        return reduce_counts(dict(self.counts))[0]

    @property
    def ambient(self) -> bool:
        return self.conditions == "ambient"

    def substituted(self, mapping: Mapping[str, str]) -> ReferenceStructure:
        """The same structure type with its elements replaced (two may become one, as in Fe3O4's spinel)."""
        counts: dict[str, int] = {}
        for element, n in self.counts:
            counts[mapping[element]] = counts.get(mapping[element], 0) + n
        return ReferenceStructure(tuple(sorted(counts.items())), self.space_group,
                                  tuple(WyckoffSite(mapping[s.element], s.label) for s in self.sites),
                                  self.source, self.name, self.conditions)


class ReferenceStructures:
    """The reference table, looked up by reduced formula (``known``) or stoichiometry (``analogues``)."""

    def __init__(self, structures: Sequence[ReferenceStructure]):
        self.structures = list(structures)
        self._by_formula: dict[str, list[ReferenceStructure]] = {}
        self._by_pattern: dict[str, list[ReferenceStructure]] = {}
        self._by_source = {structure.source: structure for structure in self.structures}
        for structure in self.structures:
            self._by_formula.setdefault(_key(structure.ratio), []).append(structure)
            self._by_pattern.setdefault(stoichiometry_pattern(structure.ratio), []).append(structure)

    @classmethod
    def load(cls, path: Path = PACKAGED_REFERENCES) -> ReferenceStructures:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls([ReferenceStructure(tuple(sorted(parse_formula(item["formula"]).items())), int(item["space_group"]),
                                       parse_wyckoff_text(item["wyckoff"]), item["source"], item["name"],
                                       item.get("conditions", "ambient"))
                    for item in document["structures"]])

    def known(self, ratio: Mapping[str, int]) -> list[ReferenceStructure]:
        """Reference structures of this reduced formula."""
        return list(self._by_formula.get(_key(ratio), []))

    def by_rules(self, ratio: Mapping[str, int]) -> list[ReferenceStructure]:
        """The structure types the textbook rules (:mod:`crystalgf_baselines.structure_rules`) expect for
        the formula, with its elements."""
        found = []
        for source, mapping in rule_types(ratio):
            reference = self._by_source.get(source)
            if reference is not None:
                mapping = mapping or role_map(dict(reference.counts), ratio)
                if mapping:
                    found.append(reference.substituted(mapping))
        return found

    def analogues(self, ratio: Mapping[str, int]) -> list[tuple[float, ReferenceStructure]]:
        """(similarity in (0, 1], structure type with the request's elements) for every structure type of
        the same stoichiometry whose compound is a substitution analogue, best first."""
        ions = _ions(_key(ratio))
        if ions is None:
            return []
        found: dict[tuple, tuple[float, ReferenceStructure]] = {}
        for reference in self._by_pattern.get(stoichiometry_pattern(ratio), []):
            reference_ions = _ions(_key(reference.ratio))
            if reference_ions is None or set(reference_ions) == set(ions):
                continue
            for mapping in _role_maps(reference.ratio, ratio):
                similarity = _similarity(reference_ions, ions, mapping)
                if similarity > 0:
                    candidate = reference.substituted(mapping)
                    key = (candidate.space_group, candidate.counts, tuple(sorted(candidate.sites)))
                    if similarity > found.get(key, (0.0,))[0]:
                        found[key] = (similarity, candidate)
        return sorted(found.values(), key=lambda item: (-item[0], item[1].space_group, item[1].source))


def _key(ratio: Mapping[str, int]) -> str:
    return Composition(dict(ratio)).reduced_formula


def _role_maps(source: Mapping[str, int], target: Mapping[str, int]) -> list[dict[str, str]]:
    """Element maps from ``source`` onto ``target`` that keep every element's amount."""
    sources = sorted(source)
    return [dict(zip(sources, order)) for order in permutations(sorted(target))
            if all(source[s] == target[t] for s, t in zip(sources, order))]


def _ions(formula: str) -> dict[str, Species] | None:
    """The most likely oxidation state of each element, as pymatgen species, or None."""
    ions = formula_ions(formula)
    return None if ions is None else {element: Species(element, ion.charge) for element, ion in ions.items()}


def _similarity(source: Mapping[str, Species], target: Mapping[str, Species], mapping: Mapping[str, str]) -> float:
    """Geometric mean over the mapped pairs of P(target ion | source ion) relative to the target ion's
    own self-substitution probability (1 for the same ion)."""
    table, logs = _table(), []
    for element, replacement in mapping.items():
        ion, other = target[replacement], source[element]
        if table.get_px(ion) <= 0 or table.get_px(other) <= 0:
            return 0.0  # an ion the ICSD table does not know (e.g. a neutral atom)
        probability, own = table.cond_prob(ion, other), table.cond_prob(ion, ion)
        if probability <= 0 or own <= 0:
            return 0.0
        logs.append(math.log(min(probability / own, 1.0)))
    return math.exp(sum(logs) / len(logs))


@lru_cache(maxsize=1)
def _table():
    from pymatgen.analysis.structure_prediction.substitution_probability import SubstitutionProbability

    return SubstitutionProbability()
