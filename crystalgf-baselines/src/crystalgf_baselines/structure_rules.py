"""Textbook structure-type rules for ionic formulas: Pauling's radius ratios, Goldschmidt's tolerance factor.

For a formula whose elements all have a guessable oxidation state (pymatgen's ICSD-based guess) and a
Shannon ionic radius, the rules name the structure types a chemist expects (as labels of the AFLOW
prototype library):

- AB, one cation and one anion: r+/r- >= 0.732 CsCl, >= 0.414 rock salt, else zincblende and wurtzite
  (Pauling's first rule, radii at six-fold coordination);
- AB2 / A2B, one cation and one anion: with a polarisable anion (S, Se, Te, Br, I) the layered CdI2 type;
  otherwise r+/r- >= 0.732 fluorite (antifluorite when the cation is the majority), >= 0.414 rutile, else
  alpha-quartz;
- ABX3 with two cations and one anion: Goldschmidt's t = (rA + rX) / (sqrt(2) (rB + rX)) (A at twelve-fold,
  B at six-fold coordination, rounded to two decimals): t > 1 the tetragonal perovskite (P4mm), 0.9-1 the cubic perovskite, 0.71-0.9
  the orthorhombic perovskite (Pnma), below 0.71 ilmenite.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from functools import lru_cache
from typing import NamedTuple

from pymatgen.core import Composition, Species

POLARISABLE_ANIONS = frozenset({"S", "Se", "Te", "Br", "I"})


class Ion(NamedTuple):
    """An element of a formula as an ion: oxidation state and Shannon radius (Å) at a coordination."""

    element: str
    charge: float
    radius: float


def rule_types(ratio: Mapping[str, int]) -> list[str]:
    """AFLOW labels of the structure types the rules expect for a reduced formula ([] where none applies)."""
    ions = _ions(Composition(dict(ratio)).reduced_formula)
    if ions is None:
        return []
    cations = [i for i in ions.values() if i.charge > 0]
    anions = [i for i in ions.values() if i.charge < 0]
    if len(anions) != 1:
        return []
    anion = anions[0]
    amounts = {element: ratio[element] for element in ions}
    if len(cations) == 1:
        cation = cations[0]
        rho = cation.radius / anion.radius
        pair = sorted((amounts[cation.element], amounts[anion.element]))
        if pair == [1, 1]:
            return ["AB_cP2_221_b_a"] if rho >= 0.732 else ["AB_cF8_225_a_b"] if rho >= 0.414 else \
                ["AB_cF8_216_c_a", "AB_hP4_186_b_b"]
        if pair == [1, 2]:
            if anion.element in POLARISABLE_ANIONS and amounts[anion.element] == 2:
                return ["AB2_hP3_164_a_d"]
            return ["AB2_cF12_225_a_c"] if rho >= 0.732 or amounts[cation.element] == 2 else \
                ["A2B_tP6_136_f_a"] if rho >= 0.414 else ["A2B_hP9_152_c_a"]
        return []
    if len(cations) == 2 and sorted(amounts.values()) == [1, 1, 3] and amounts[anion.element] == 3:
        tolerance = _tolerance_factor(*sorted(cations, key=lambda i: -i.radius), anion)
        if tolerance is None:
            return []
        tolerance = round(tolerance, 2)  # t = 1.00 (SrTiO3) is cubic
        return ["A3BC_tP5_99_bc_a_b"] if tolerance > 1.0 else ["AB3C_cP5_221_a_c_b"] if tolerance >= 0.9 else \
            ["AB3C_oP20_62_c_cd_a"] if tolerance >= 0.71 else ["AB3C_hR10_148_c_f_c"]
    return []


def role_map(source: Mapping[str, int], target: Mapping[str, int]) -> dict[str, str] | None:
    """Elements of ``source`` (a structure type's compound) onto those of ``target`` with the same amounts
    in the reduced formulas: cation to cation and anion to anion (or the reverse, as antifluorite is
    fluorite with cations and anions exchanged), larger ion to larger ion among equal amounts; None where
    the ions do not pair up."""
    source_ratio, target_ratio = _reduced(source), _reduced(target)
    source_ions = _ions(Composition(source_ratio).reduced_formula)
    target_ions = _ions(Composition(target_ratio).reduced_formula)
    if source_ions is None or target_ions is None:
        return None
    for anti in (False, True):
        first = sorted(source_ions.values(), key=lambda i: ((i.charge > 0) != anti, source_ratio[i.element], -i.radius))
        second = sorted(target_ions.values(), key=lambda i: (i.charge > 0, target_ratio[i.element], -i.radius))
        if [((i.charge > 0) != anti, source_ratio[i.element]) for i in first] == \
                [(i.charge > 0, target_ratio[i.element]) for i in second]:
            return {a.element: b.element for a, b in zip(first, second)}
    return None


def _reduced(counts: Mapping[str, int]) -> dict[str, int]:
    divisor = math.gcd(*counts.values())
    return {element: n // divisor for element, n in counts.items()}


def _tolerance_factor(a: Ion, b: Ion, anion: Ion) -> float | None:
    twelve = _radius(a.element, a.charge, "XII")
    return None if twelve is None else (twelve + anion.radius) / (math.sqrt(2) * (b.radius + anion.radius))


@lru_cache(maxsize=8192)
def _ions(formula: str) -> dict[str, Ion] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guesses = Composition(formula).oxi_state_guesses(max_sites=-1)
    if not guesses:
        return None
    ions = {}
    for element, charge in guesses[0].items():
        radius = _radius(element, charge, "VI")
        if radius is None or charge == 0:
            return None
        ions[element] = Ion(element, charge, radius)
    return ions


@lru_cache(maxsize=4096)
def _radius(element: str, charge: float, coordination: str) -> float | None:
    """Shannon's ionic radius (high spin where it matters), or None where the table has none."""
    if charge != int(charge):
        return None
    species = Species(element, int(charge))
    for spin in ("", "High Spin"):
        try:
            return float(species.get_shannon_radius(coordination, spin=spin))
        except (KeyError, ValueError):
            continue
    return None
