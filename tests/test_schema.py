import json

import pytest

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
