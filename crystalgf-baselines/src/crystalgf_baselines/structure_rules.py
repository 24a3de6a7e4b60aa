"""Textbook structure-type rules for ionic formulas: Pauling's radius ratios, Goldschmidt's tolerance factor.

For a formula whose elements all have a guessable oxidation state (pymatgen's ICSD-based guess) and,
where a rule compares radii, a Shannon ionic radius, the rules name the structure types a chemist expects (as labels of the AFLOW
prototype library):

- AB, one cation and one anion: covalent (electronegativity difference below 1, cation not Sn or Pb),
  Be, Zn, or a group-13 cation with a group-15 anion: zincblende and wurtzite; otherwise the smaller
  over the larger radius >= 0.414 rock salt (CsCl only for the Cs and Tl halides), else zincblende and
  wurtzite (Pauling's first rule, radii at six-fold coordination); wurtzite first for oxides, nitrides
  and from an electronegativity difference of 1;
- AB2, one cation and one anion: with a polarisable anion (S, Se, Te, Br, I) the layered CdI2 type
  (molybdenite for the trigonal-prismatic Mo, W, Nb, Ta); lanthanide and actinide dioxides fluorite,
  ZrO2 and HfO2 baddeleyite; otherwise r+/r- >= 0.732 fluorite, >= 0.414 rutile, else alpha-quartz
  (rutile for d-block cations, which prefer octahedra); A2B of an alkali metal antifluorite;
- A2B3: with a polarisable anion tetradymite (Bi2Te3), else r+/r- < 0.6 corundum; A3B4 (one element on both cation sites) and AB2X4: spinel, unless the
  single cation is tetrahedral (r+/r- < 0.414: Si, Ge), which makes the olivine A2BX4, or the double cation
  is too large for octahedra (radius >= 1 Å: Sr2RuO4, La2CuO4), which makes K2NiF4; ABCX4 with a
  tetrahedral cation (LiFePO4): olivine, the higher-charged octahedral cation on M2;
- ABX3 with two cations and one anion: Goldschmidt's t = (rA + rX) / (sqrt(2) (rB + rX)) (A at twelve-fold,
  B at six-fold coordination, rounded to two decimals): t > 1 the tetragonal perovskite (P4mm), 0.99-1 the cubic
  perovskite, 0.9-0.98 the orthorhombic (tilted, GdFeO3) perovskite then the cubic one, 0.71-0.9 the
  orthorhombic perovskite, below 0.71 ilmenite.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from functools import lru_cache
from typing import NamedTuple

from pymatgen.core import Composition, Element, Species

POLARISABLE_ANIONS = frozenset({"S", "Se", "Te", "Br", "I"})
TETRAHEDRAL_CATIONS = frozenset({"Be", "Zn"})
"""Cations that take tetrahedral sites in AB compounds whatever the radius ratio says (ZnO, BeO, ZnS)."""
TRIGONAL_PRISMATIC_CATIONS = frozenset({"Mo", "W", "Nb", "Ta"})
"""d1/d2 cations of layered dichalcogenides that sit in trigonal prisms: the molybdenite (2H) type."""


class Ion(NamedTuple):
    """An element of a formula as an ion: oxidation state and Shannon radius (Å) at a coordination."""

    element: str
    charge: float
    radius: float


def rule_types(ratio: Mapping[str, int]) -> list[tuple[str, dict[str, str] | None]]:
    """The structure types the rules expect for a reduced formula ([] where none applies): source keys of
    the reference table (``aflow:AB_cF8_225_a_b``), each with the map of its compound's elements onto the
    formula's where the rule fixes it (None: by :func:`role_map`)."""
    ratio = _reduced(ratio)
    ions = formula_ions(Composition(ratio).reduced_formula)
    if ions is None:
        return []
    cations = sorted((i for i in ions.values() if i.charge > 0), key=lambda i: (ratio[i.element], -i.radius))
    anions = [i for i in ions.values() if i.charge < 0]
    if len(anions) != 1:
        return []
    anion = anions[0]
    amounts = [ratio[i.element] for i in cations] + [ratio[anion.element]]
    if len(cations) == 1:
        return [(f"aflow:{label}", None) for label in _binary_types(cations[0], anion, amounts)]
    if any(math.isnan(i.radius) for i in ions.values()):
        return []
    if len(cations) == 3 and amounts == [1, 1, 1, 4]:  # LiFePO4: M1 (4a), M2 (4c) and T (4c) of olivine
        tetrahedral, *octahedral = sorted(cations, key=lambda i: i.radius)
        if tetrahedral.radius / anion.radius < 0.414:
            m2, m1 = sorted(octahedral, key=lambda i: i.charge)[::-1]
            return [("textbook:triphylite", {"Li": m1.element, "Fe": m2.element, "P": tetrahedral.element,
                                             "O": anion.element})]
        return []
    if len(cations) == 2 and amounts == [1, 1, 3]:
        tolerance = _tolerance_factor(cations[0], cations[1], anion)
        if tolerance is None:
            return []
        tolerance = round(tolerance, 2)  # t = 1.00 (SrTiO3) is cubic
        cubic, orthorhombic = "aflow:AB3C_cP5_221_a_c_b", "aflow:AB3C_oP20_62_c_cd_a"
        if 0.9 <= tolerance < 0.99:  # octahedra tilt below t = 1 (CaTiO3), the cubic cell stays close
            return [(orthorhombic, None), (cubic, None)]
        label = "aflow:A3BC_tP5_99_bc_a_b" if tolerance > 1.0 else cubic if tolerance >= 0.9 else \
            orthorhombic if tolerance >= 0.71 else "aflow:AB3C_hR10_148_c_f_c"
        return [(label, None)]
    if len(cations) == 2 and amounts == [1, 2, 4]:
        small, large = cations
        if small.radius / anion.radius < 0.414:  # a tetrahedral cation, twice as many octahedral ones: olivine
            return [("textbook:olivine", {"Si": small.element, "Mg": large.element, "O": anion.element})]
        if large.radius >= 1.0:  # too large for the spinel's octahedra: nine-fold in rock-salt layers
            return [("aflow:AB2C4_tI14_139_a_e_ce", {"Cu": small.element, "La": large.element, "O": anion.element})]
        return [("aflow:A2BC4_cF56_227_d_a_e", {"Mg": small.element, "Al": large.element, "O": anion.element})]
    return []


def _binary_types(cation: Ion, anion: Ion, amounts: list[int]) -> list[str]:
    """AFLOW labels for one cation and one anion in these amounts (cation's first)."""
    rho = min(cation.radius, anion.radius) / max(cation.radius, anion.radius)
    if amounts == [1, 1]:
        difference = _electronegativity(anion.element) - _electronegativity(cation.element)
        wurtzite_first = difference >= 1.0 or anion.element in ("O", "N")
        tetrahedral = ["AB_hP4_186_b_b", "AB_cF8_216_c_a"] if wurtzite_first else ["AB_cF8_216_c_a", "AB_hP4_186_b_b"]
        group = Element(cation.element).group
        if (difference < 1.0 and cation.element not in ("Sn", "Pb")) or cation.element in TETRAHEDRAL_CATIONS or \
                (group == 13 and Element(anion.element).group == 15):
            return tetrahedral  # sp3 bonds whatever the radii (GaAs, CdTe, SiC, GaN, ZnO, BeO; not PbS)
    if math.isnan(rho):
        return []
    if amounts == [1, 1]:
        if rho >= 0.732 and cation.element in ("Cs", "Tl") and anion.element in ("Cl", "Br", "I"):
            return ["AB_cP2_221_b_a"]
        return ["AB_cF8_225_a_b"] if rho >= 0.414 else tetrahedral
    if amounts == [1, 2]:
        if anion.element in POLARISABLE_ANIONS:
            return ["AB2_hP6_194_c_f"] if cation.element in TRIGONAL_PRISMATIC_CATIONS else ["AB2_hP3_164_a_d"]
        if rho < 0.414 and Element(cation.element).block == "d":
            return ["A2B_tP6_136_f_a"]  # ligand-field preference for octahedra (MnO2, CrO2)
        if anion.element == "O" and Element(cation.element).block == "f":
            return ["AB2_cF12_225_a_c"]  # the lanthanide and actinide dioxides (CeO2, ThO2, UO2, PuO2)
        if anion.element == "O" and cation.element in ("Zr", "Hf"):
            return ["A2B_mP12_14_2e_e"]  # baddeleyite: seven-fold Zr, Hf
        return ["AB2_cF12_225_a_c"] if rho >= 0.732 else ["A2B_tP6_136_f_a"] if rho >= 0.414 else ["A2B_hP9_152_c_a"]
    if amounts == [2, 1]:
        return ["AB2_cF12_225_a_c"] if Element(cation.element).group == 1 else []  # antifluorite (Li2O; not Cu2O)
    if amounts == [2, 3]:
        if anion.element in POLARISABLE_ANIONS:
            return ["A2B3_hR5_166_c_ac"]  # tetradymite (Bi2Te3)
        return ["A2B3_hR10_167_c_e"] if rho < 0.6 else []
    if amounts == [3, 4]:
        return ["A2BC4_cF56_227_d_a_e"]  # a spinel of one element on both cation sites (Fe3O4)
    return []


def role_map(source: Mapping[str, int], target: Mapping[str, int]) -> dict[str, str] | None:
    """Elements of ``source`` (a structure type's compound) onto those of ``target`` with the same amounts
    in the reduced formulas: cation to cation and anion to anion (or the reverse, as antifluorite is
    fluorite with cations and anions exchanged), larger ion to larger ion among equal amounts; None where
    the ions do not pair up."""
    source_ratio, target_ratio = _reduced(source), _reduced(target)
    source_ions = formula_ions(Composition(source_ratio).reduced_formula)
    target_ions = formula_ions(Composition(target_ratio).reduced_formula)
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
def formula_ions(formula: str) -> dict[str, Ion] | None:
    """The ions of a reduced formula by pymatgen's most likely oxidation states (ICSD-based guess; None where
    there is none or an element would be neutral), with Shannon radii at six-fold coordination (nan where
    the table has none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guesses = Composition(formula).oxi_state_guesses(max_sites=-1)
    if not guesses:
        return None
    ions = {}
    for element, charge in guesses[0].items():
        if charge == 0:
            return None
        radius = _radius(element, charge, "VI")
        ions[element] = Ion(element, charge, math.nan if radius is None else radius)  # nan: no Shannon radius
    return ions


@lru_cache(maxsize=None)
def _electronegativity(element: str) -> float:
    x = Element(element).X
    return x if x == x else 2.0


@lru_cache(maxsize=4096)
def _radius(element: str, charge: float, coordination: str) -> float | None:
    """Shannon's ionic radius (high spin where it matters), or None where the table has none."""
    if charge != int(charge):
        return None
    species = Species(element, int(charge))
    for spin in ("", "High Spin"):
        try:
            with warnings.catch_warnings():  # pymatgen warns where the table holds one spin state only
                warnings.simplefilter("ignore")
                return float(species.get_shannon_radius(coordination, spin=spin))
        except (KeyError, ValueError):
            continue
    return None
