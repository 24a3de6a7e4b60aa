"""Build the reference structures of G ``prior``/``forest`` from the libraries that ship them.

    python crystalgf-baselines/scripts/build_reference_structures.py

writes ``crystalgf-baselines/src/crystalgf_baselines/data/reference_structures.json``: the space group and
Wyckoff sites (spglib, conventional standard cell) of
- every element ASE can build in its reference state (``ase.build.bulk(symbol)``, from
  ``ase.data.reference_states``: fcc Cu, bcc Fe, hcp Mg, diamond Si, A7 Bi, ...);
- every prototype of the AFLOW library that pymatgen ships (``AFLOW_PROTOTYPE_LIBRARY``, 288 structure
  types, each with the compound that names it: rock salt NaCl, rutile TiO2, spinel MgAl2O4, ...);
- olivine (Pnma), which the AFLOW library lacks, from the literature.
Deterministic: the same library versions give the same file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import ase
import pymatgen.core
from ase.build import bulk
from ase.data import chemical_symbols, reference_states
from pymatgen.analysis.prototypes import AFLOW_PROTOTYPE_LIBRARY
from pymatgen.io.ase import AseAtomsAdaptor

from crystalgf.errors import InvalidInputError
from crystalgf.symmetry.analysis import constraint_from_structure
from crystalgf_baselines.reference_structures import PACKAGED_REFERENCES

SYMPREC = 0.01
"""spglib tolerance (Å): the library structures are ideal."""


def element_entries() -> list[dict]:
    entries = []
    for number, state in enumerate(reference_states):
        symbol = chemical_symbols[number]
        if not state or state.get("symmetry") in ("atom", "diatom"):
            continue
        try:
            structure = AseAtomsAdaptor.get_structure(bulk(symbol))
        except (ValueError, KeyError, NotImplementedError, TypeError, RuntimeError):
            continue  # a reference state ASE cannot build (e.g. monoclinic Pu)
        entries.append(_entry(structure, f"ase:{state['symmetry']}", state["symmetry"]))
    return entries


NOT_AMBIENT = {
    "AB_oI4_44_a_b": "high pressure",  # GaAs-II (Weir et al., Phys. Rev. B 39, 1280 (1989))
    "AB_oP2_25_b_a": "high pressure",  # CdTe (Hu, Solid State Commun. 63, 471 (1987))
    "AB_cP16_205_c_c": "high pressure",  # SC16 CuCl, 5 GPa
    "A2B_mC48_15_ae3f_2f": "high pressure",  # coesite
    "A_mP4_4_2a": "high pressure",  # Te, 4-7 GPa
    "A_aP4_2_aci": "high pressure",  # Cf
    "A_cI16_220_c": "high pressure",  # Li, 38.9 GPa
    "A3B_cI8_229_b_a": "high pressure",  # H3S, the superconductor of ~150 GPa
    "A2B_hP9_180_j_c": "high temperature",  # beta-quartz
    "A2B_hP12_194_cg_f": "high temperature",  # beta-tridymite
    "A2B_oC24_20_abc_c": "high temperature",  # high (orthorhombic) tridymite
    "A2B_cF24_227_c_a": "high temperature",  # beta-cristobalite
    "AB_tP8_136_g_f": "high temperature",  # beta-BeO
}
"""Prototypes of the library that exist only under pressure or when hot (from each entry's name and the
paper it cites): known structures of their compounds, but not what the compound forms at ambient conditions."""


def prototype_entries() -> list[dict]:
    entries = []
    for item in AFLOW_PROTOTYPE_LIBRARY:
        tags = item["tags"]
        name = tags.get("mineral") or tags.get("strukturbericht") or tags["aflow"]
        try:
            entry = _entry(item["snl"].structure, f"aflow:{tags['aflow']}", name)
        except InvalidInputError:
            continue  # spglib found no symmetry
        if tags["aflow"] in NOT_AMBIENT:
            entry["conditions"] = NOT_AMBIENT[tags["aflow"]]
        entries.append(entry)
    return entries


def textbook_entries() -> list[dict]:
    """Structure types the libraries above lack, from the crystallographic literature."""
    return [{"formula": "Mg8Si4O16", "space_group": 62, "wyckoff": "Mg[4a] Mg[4c] Si[4c] O[4c] O[4c] O[8d]",
             "source": "textbook:olivine", "name": "Olivine (forsterite; Birle et al., Am. Mineral. 53, 807 (1968))"},
            {"formula": "Li4Fe4P4O16", "space_group": 62, "wyckoff": "Li[4a] Fe[4c] P[4c] O[4c] O[4c] O[8d]",
             "source": "textbook:triphylite", "name": "Olivine (triphylite LiFePO4; Streltsov et al., Acta Cryst. B 49, 147 (1993))"}]


def _entry(structure, source: str, name: str) -> dict:
    constraint = constraint_from_structure(structure, SYMPREC)
    return {"formula": constraint.cell_formula, "space_group": constraint.space_group,
            "wyckoff": constraint.wyckoff_text, "source": source, "name": name}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=PACKAGED_REFERENCES)
    args = parser.parse_args()
    entries = element_entries() + prototype_entries() + textbook_entries()
    document = {"source": {"ase": ase.__version__, "pymatgen": pymatgen.core.__version__, "symprec": SYMPREC},
                "structures": entries}
    args.output.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.output}: {len(entries)} reference structures")


if __name__ == "__main__":
    main()
