import pytest

from crystalgf.errors import InvalidInputError
from crystalgf.formula import format_formula, parse_elements, parse_formula, reduce_counts, stoichiometry_pattern


def test_parse_formula_keeps_order_and_sums_repeats():
    assert parse_formula("SrTiO3") == {"Sr": 1, "Ti": 1, "O": 3}
    assert parse_formula("Ba1Nd1Co2O5") == {"Ba": 1, "Nd": 1, "Co": 2, "O": 5}
    assert parse_formula("OSrTiO2") == {"O": 3, "Sr": 1, "Ti": 1}
    assert parse_formula("Sr1 Ti1 O3") == parse_formula(" Sr Ti O3 ") == {"Sr": 1, "Ti": 1, "O": 3}  # pymatgen's spacing


def test_parse_formula_reads_groups_as_pymatgen_writes_them():
    from pymatgen.core import Composition

    for text in ("Ca(OH)2", "Gd(SiOs)2", "Ba3[Co(CN)6]2", "Li2Fe(SO4)2"):
        assert parse_formula(text) == {e.symbol: int(n) for e, n in Composition(text).items()}
    assert list(parse_formula("Ca(OH)2")) == ["Ca", "O", "H"]


@pytest.mark.parametrize("text, phrase", [
    ("Sr(Ti", "malformed formula"),
    ("Sr)Ti", "malformed formula"),
    ("Ca(OH]2", "malformed formula"),
    ("Ca()2", "malformed formula"),
    ("2CaO", "malformed formula"),
    ("Ca(OH)0", "count 0"),
    ("(" * 1000 + "Ca" + ")" * 1000, "nested more than 5 deep"),
    ("", "malformed formula"),
    ("sro3", "malformed formula"),
    ("Sr0O", "count 0"),
    ("XxO2", "unknown element 'Xx'"),
    ("C o", "malformed formula 'C o'"),  # not cobalt (#23)
    ("S n O2", "malformed formula"),
    ("SrTiO 3", "malformed formula"),
    ("   ", "malformed formula"),
])
def test_parse_formula_rejects(text, phrase):
    with pytest.raises(InvalidInputError, match=phrase):
        parse_formula(text)


def test_elements_and_patterns():
    assert parse_elements("Sc-Ni") == ("Ni", "Sc")
    with pytest.raises(InvalidInputError, match="unknown element 'Qq'"):
        parse_elements("Ni-Qq")
    assert reduce_counts({"Sc": 2, "Ni": 6}) == ({"Sc": 1, "Ni": 3}, 2)
    assert stoichiometry_pattern({"Sr": 4, "Ti": 4, "O": 12}) == "1-1-3"
    assert format_formula({"Sr": 1, "Ti": 1, "O": 3}) == "Sr1Ti1O3"
