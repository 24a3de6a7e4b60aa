import numpy as np
import pytest
from pymatgen.core import Composition

from crystalgf.datasets import StructureTable
from crystalgf.symmetry import (
    WyckoffSite,
    crystal_system,
    has_wyckoff_assignment,
    iter_wyckoff_assignments,
    realizes_space_group,
    sample_wyckoff_assignment,
    space_group_symbol,
    wyckoff_positions,
)
from crystalgf.symmetry.analysis import constraint_from_structure
from crystalgf.symmetry.detect import detect_space_group


def test_wyckoff_tables_come_from_pyxtal():
    positions = {wp.label: wp for wp in wyckoff_positions(221)}
    assert space_group_symbol(221) == "Pm-3m" and crystal_system(221) == "cubic"
    assert positions["1a"].degrees_of_freedom == 0 and positions["1a"].site_symmetry == "m-3m"
    assert positions["48n"].degrees_of_freedom == 3
    assert {wp.label: wp.degrees_of_freedom for wp in wyckoff_positions(25)}["1d"] == 1
    assert len(wyckoff_positions(1)) == 1 and crystal_system(194) == "hexagonal"


def test_fixed_positions_hold_one_orbit_free_positions_several():
    # Pm-3m has 1a and 1b as its only one-fold positions: two one-atom elements fit, three do not.
    assert has_wyckoff_assignment({"Cs": 1, "Cl": 1}, 221)
    assert not has_wyckoff_assignment({"Cs": 1, "Cl": 1, "Br": 1}, 221)
    # Pmm2: 1a-1d are lines (0,0,z)..., so any number of one-fold orbits fits.
    assignments = list(iter_wyckoff_assignments({"Sr": 3}, 25))
    assert (WyckoffSite("Sr", "1a"), WyckoffSite("Sr", "1a"), WyckoffSite("Sr", "1a")) in assignments
    assert len(assignments) == len(set(assignments))


def test_srtio3_assignments():
    found = list(iter_wyckoff_assignments({"Sr": 1, "Ti": 1, "O": 3}, 221))
    assert set(found) == {
        (WyckoffSite("Sr", "1a"), WyckoffSite("Ti", "1b"), WyckoffSite("O", "3c")),
        (WyckoffSite("Sr", "1a"), WyckoffSite("Ti", "1b"), WyckoffSite("O", "3d")),
        (WyckoffSite("Sr", "1b"), WyckoffSite("Ti", "1a"), WyckoffSite("O", "3c")),
        (WyckoffSite("Sr", "1b"), WyckoffSite("Ti", "1a"), WyckoffSite("O", "3d")),
    }
    assert not has_wyckoff_assignment({"Sr": 4, "Ti": 4, "O": 12}, 230)


def test_sampling_is_seeded_and_valid():
    counts = {"Sr": 4, "Ti": 4, "O": 12}
    first = sample_wyckoff_assignment(counts, 62, np.random.default_rng(3))
    assert first == sample_wyckoff_assignment(counts, 62, np.random.default_rng(3))
    total = {el: 0 for el in counts}
    for site in first:
        total[site.element] += site.multiplicity
    assert total == counts
    assert sample_wyckoff_assignment({"Sr": 1, "Ti": 1, "O": 3}, 230, np.random.default_rng(0)) is None


def test_assignments_that_force_a_higher_symmetry_are_detected():
    # One orbit in a polar group gains a mirror or inversion whatever its parameter.
    assert not realizes_space_group({"Na": 1}, 99, [WyckoffSite("Na", "1a")])
    assert not realizes_space_group({"Na": 1}, 1, [WyckoffSite("Na", "1a")])
    assert realizes_space_group({"Na": 2, "Cl": 2}, 1, [WyckoffSite("Na", "1a")] * 2 + [WyckoffSite("Cl", "1a")] * 2)


def test_fixed_only_assignments_that_raise_the_symmetry_are_detected():
    cscl_in_disguise = [WyckoffSite("Na", "8c"), WyckoffSite("Cl", "6b"), WyckoffSite("Cl", "2a")]
    assert not realizes_space_group({"Na": 8, "Cl": 8}, 229, cscl_in_disguise)
    assert realizes_space_group({"Na": 4, "Cl": 4}, 225, [WyckoffSite("Na", "4b"), WyckoffSite("Cl", "4a")])


def test_structure_analysis_agrees_with_materials_project(data_dir):
    agree = total = 0
    for split in ("train", "val", "test"):
        path = data_dir / "mp_20_sample" / f"{split}.csv"
        import csv

        expected = {row["material_id"]: int(row["spacegroup.number"]) for row in csv.DictReader(path.open())}
        for entry in StructureTable().read(path).entries:
            constraint = constraint_from_structure(entry.structure)
            assert Composition(constraint.counts).reduced_composition == entry.structure.composition.reduced_composition
            agree += constraint.space_group == expected[entry.id]
            total += 1
    assert total == 430
    assert agree / total >= 0.99


def test_perovskite_constraints(data_dir):
    entries = StructureTable().read(data_dir / "perov_5" / "test.csv", limit=50).entries
    for entry in entries:
        constraint = constraint_from_structure(entry.structure)
        assert constraint.space_group == detect_space_group(entry.structure)
        assert sum(constraint.counts.values()) % 5 == 0


@pytest.mark.parametrize("old_error_handling", [True, False])
def test_detection_of_overlapping_atoms_gives_none_whatever_spglib_error_mode(monkeypatch, old_error_handling):
    import spglib.error
    from pymatgen.core import Lattice, Structure

    monkeypatch.setattr(spglib.error, "OLD_ERROR_HANDLING", old_error_handling)
    monkeypatch.delenv("SPGLIB_OLD_ERROR_HANDLING", raising=False)
    overlapping = Structure(Lattice.cubic(4.0), ["Na", "Na"], [[0, 0, 0], [0.001, 0, 0]])
    assert detect_space_group(overlapping, 0.1) is None
    assert detect_space_group(Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])) == 221
