import json

import pytest
from pymatgen.core import Lattice, Structure

from crystalgf.errors import InvalidInputError
from crystalgf.schema import Constraint, GenerationRequest, PropertyTarget


def sc2ni6(**changes):
    data = {"formula": "Sc2Ni6", "space_group": 194, "wyckoff": [["Sc", "2c"], ["Ni", "6h"]],
            "properties": {"band_gap": {"name": "band_gap", "value": 0.0}}}
    data.update(changes)
    return data


def test_constraint_json_round_trip():
    constraint = Constraint.from_dict(sc2ni6())
    again = Constraint.from_json(constraint.to_json())
    assert again == constraint
    assert json.loads(constraint.to_json())["wyckoff"] == [["Sc", "2c"], ["Ni", "6h"]]
    assert constraint.properties["band_gap"].unit == "eV"
    assert constraint.wyckoff_text == "Sc[2c] Ni[6h]"


def test_constraint_accepts_the_table_notation():
    assert Constraint.from_dict(sc2ni6(wyckoff="Sc[2c] Ni[6h]")).wyckoff_sites[1].label == "6h"


@pytest.mark.parametrize("changes, phrase", [
    ({"space_group": 231}, "outside 1-230"),
    ({"space_group": 0}, "outside 1-230"),
    ({"wyckoff": [["Sc", "2c"], ["Ni", "6z"]]}, "letter 'z' is not in space group 194"),
    ({"wyckoff": [["Sc", "2c"], ["Ni", "4h"]]}, "has multiplicity 6, not 4"),
    ({"wyckoff": [["Sc", "2c"], ["Ni", "4f"]]}, "Ni sum to 4, but the formula has 6"),
    ({"wyckoff": [["Sc", "2c"], ["Ni", "2c"], ["Ni", "4f"]]}, "can hold only one orbit"),
    ({"wyckoff": [["Sc", "2c"], ["Ni", "6h"], ["Fe", "2a"]]}, "element not in the formula"),
    ({"formula": "Sc2Ni6Xx"}, "unknown element 'Xx'"),
    ({"properties": {"band_gap": {"name": "band_gap", "value": -0.5}}}, "band_gap must be from 0 to 30 eV"),
])
def test_constraint_errors_are_precise(changes, phrase):
    with pytest.raises(InvalidInputError, match=phrase):
        Constraint.from_dict(sc2ni6(**changes))


def test_free_positions_may_hold_several_orbits():
    # Pmm2 1d is (1/2, 1/2, z): two Sr orbits at different z are valid.
    constraint = Constraint.from_dict({"formula": "Sr2O2", "space_group": 25,
                                       "wyckoff": [["Sr", "1d"], ["Sr", "1d"], ["O", "1a"], ["O", "1a"]]})
    assert len(constraint.wyckoff_sites) == 4


def test_property_targets_values_and_intervals():
    value = PropertyTarget.parse("band_gap", "1.5")
    interval = PropertyTarget.parse("band_gap", "1.5:2.0")
    assert value.contains(1.5) and not value.contains(1.52) and value.contains(1.52, tolerance=0.05)
    assert interval.contains(1.9) and not interval.contains(2.1) and interval.center == pytest.approx(1.75)
    assert PropertyTarget.parse("formation_energy_per_atom", "-1.2").unit == "eV/atom"
    for name, text in [("band_gap", "1e9"), ("band_gap", "0:31"), ("formation_energy_per_atom", "-21"),
                       ("formation_energy_per_atom", "10.5")]:  # physical bounds (#23)
        with pytest.raises(InvalidInputError, match=f"{name} must be from"):
            PropertyTarget.parse(name, text)
    for text, phrase in [("-1", "must be from 0 to 30 eV"), ("31", "must be from 0 to 30 eV"),
                         ("2:1", "minimum above maximum"), ("x", "not a number")]:
        with pytest.raises(InvalidInputError, match=phrase):
            PropertyTarget.parse("band_gap", text)
    with pytest.raises(InvalidInputError, match="unknown property"):
        PropertyTarget.from_dict({"name": "bulk_modulus", "value": 1})


def test_requests_need_one_composition_and_fit_max_atoms():
    assert GenerationRequest(formula="SrTiO3").mode == "formula"
    assert GenerationRequest(elements="Ti-Sr-O").elements == ("O", "Sr", "Ti")
    with pytest.raises(InvalidInputError, match="exactly one"):
        GenerationRequest.from_dict({"formula": "SrTiO3", "elements": "Sr-Ti-O"})
    with pytest.raises(InvalidInputError, match="more than max_atoms"):
        GenerationRequest.from_dict({"formula": "Sr10Ti10O30"})


ROCK_SALT = Constraint.from_dict({"formula": "Na4Cl4", "space_group": 225, "wyckoff": [["Na", "4a"], ["Cl", "4b"]]})
SPINEL = Constraint.from_dict({"formula": "Mg8Al16O32", "space_group": 227,
                               "wyckoff": [["Mg", "8a"], ["Al", "16d"], ["O", "32e"]]})


@pytest.mark.parametrize("request_data, constraint, phrase", [
    ({"formula": "NaCl"}, ROCK_SALT, None),
    ({"formula": "NaCl", "exact_cell": True}, ROCK_SALT, None),  # the primitive cell of a centred group
    ({"formula": "Na4Cl4", "exact_cell": True}, ROCK_SALT, None),
    ({"elements": "Cl-Na", "space_group": 225}, ROCK_SALT, None),
    ({"formula": "MgAl2O4", "max_atoms": 14}, SPINEL, None),  # 14 atoms per primitive cell, 56 per conventional
    ({"formula": "NaCl2"}, ROCK_SALT, "the ratio of Na1Cl2"),
    ({"elements": "Cl-K-Na"}, ROCK_SALT, "the elements Cl-K-Na"),
    ({"formula": "NaCl", "space_group": 221}, ROCK_SALT, "fixed space group 221"),
    ({"formula": "MgAl2O4", "max_atoms": 13}, SPINEL, "at most 13 atoms per primitive cell"),
    ({"formula": "Na2Cl2", "exact_cell": True}, ROCK_SALT, "exactly the cell Na2Cl2"),
])
def test_whether_a_constraint_honours_its_request(request_data, constraint, phrase):
    problem = GenerationRequest.from_dict(request_data).why_not_honoured_by(constraint)
    assert problem is None if phrase is None else phrase in problem


def test_a_structure_honours_an_exact_cell_as_the_primitive_cell_of_its_centred_group():
    rock_salt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    request = GenerationRequest(formula="NaCl", exact_cell=True)
    assert len(rock_salt) == 8 and len(rock_salt.get_primitive_structure()) == 2
    assert request.why_composition_not_honoured(rock_salt.composition, 225) is None
    assert request.why_composition_not_honoured(rock_salt.get_primitive_structure().composition, 225) is None
    assert "exactly the cell Na1Cl1" in request.why_composition_not_honoured(rock_salt.composition, 221)
    assert ROCK_SALT.is_cell_of(rock_salt.composition)
    assert not ROCK_SALT.is_cell_of(rock_salt.get_primitive_structure().composition)
