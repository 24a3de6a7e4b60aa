"""DFT hand-off: VASP inputs for chosen structures (the method's PBE, 520 eV) and reading results back."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pymatgen.core import Structure
from pymatgen.entries.compatibility import MaterialsProject2020Compatibility
from pymatgen.io.vasp.outputs import Vasprun
from pymatgen.io.vasp.sets import MPRelaxSet

from crystalgf.output import safe_name

INCAR_SETTINGS = {"ENCUT": 520, "GGA": "PE"}
"""The method's DFT settings on top of pymatgen's MPRelaxSet: PBE, 520 eV plane-wave cutoff."""


def export_vasp_inputs(ids: Sequence[str], structures: Sequence[Structure], directory: Path) -> list[Path]:
    """One folder per structure with INCAR, KPOINTS, POSCAR and POTCAR.spec (POTCARs are licensed:
    VASP users add them, e.g. with pymatgen's ``PMG_VASP_PSP_DIR``)."""
    folders = []
    for item_id, structure in zip(ids, structures):
        folder = directory / safe_name(item_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            MPRelaxSet(structure, user_incar_settings=INCAR_SETTINGS).write_input(folder, potcar_spec=True)
        folders.append(folder)
    return folders


def read_vasp_results(directory: Path, elemental_energies: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Band gap (eV) and formation energy (eV/atom) of every ``<id>/vasprun.xml`` below ``directory``.

    The final energy gets the Materials Project 2020 corrections (as the elemental reference
    energies have), then the elemental energies per atom are subtracted. Unreadable runs are
    reported with their error."""
    results: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*/vasprun.xml")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run = Vasprun(str(path), parse_potcar_file=False)
            structure = run.final_structure
            corrected = MaterialsProject2020Compatibility(check_potcar=False).process_entry(
                run.get_computed_entry(inc_structure=True))
            if corrected is None:
                raise ValueError("the run is not compatible with the MP2020 correction scheme")
            energy = corrected.energy
            reference = sum(elemental_energies[el.symbol] * amount
                            for el, amount in structure.composition.items())
            results[path.parent.name] = {
                "converged": run.converged,
                "band_gap": run.eigenvalue_band_properties[0],
                "formation_energy_per_atom": (energy - reference) / len(structure),
            }
        except Exception as error:  # noqa: BLE001 - a broken run is reported, the others are read
            results[path.parent.name] = {"error": f"{type(error).__name__}: {str(error)[:160]}"}
    return results
