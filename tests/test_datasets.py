import csv

import pytest

from crystalgf.datasets import ConstraintTable, StructureTable, holdout_split
from crystalgf.errors import InvalidInputError


def test_constraint_table_reads_every_consistent_row(constraints_csv):
    result = ConstraintTable().read(constraints_csv)
    assert len(result.entries) == 2745
    # The three rows whose formula counts a different cell than their Wyckoff sites (see the data README).
    assert sorted(row_id for row_id, _ in result.skipped) == ["1241", "276", "589"]
    assert all("sum to" in reason for _, reason in result.skipped)
    first = result.entries[0]
    assert first.constraint.cell_formula == "Sc2Ni6" and first.constraint.space_group == 194
    assert first.properties == {"band_gap": 0.0, "formation_energy_per_atom": -0.389}


def test_structure_table_skips_and_counts_bad_rows(data_dir, tmp_path):
    source = data_dir / "perov_5" / "val.csv"
    rows = list(csv.DictReader(source.open()))[:5]
    rows[2]["cif"] = "data_broken\n_cell_length_a 4.0\n"
    target = tmp_path / "mixed.csv"
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = StructureTable().read(target)
    assert len(result.entries) == 4 and len(result.skipped) == 1
    assert result.skipped[0][0] == rows[2]["material_id"]
    assert set(result.entries[0].properties) == {"band_gap", "formation_energy_per_atom"}


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("material_id,formula\n1,NaCl\n")
    with pytest.raises(InvalidInputError, match="missing column"):
        StructureTable().read(path)


def test_holdout_split_is_grouped_and_about_a_fifth(constraints_csv):
    formulas = {row["reduced_formula"] for row in csv.DictReader(constraints_csv.open())}
    test = [f for f in formulas if holdout_split(f) == "test"]
    assert 0.15 < len(test) / len(formulas) < 0.25
    assert all(holdout_split(f) == "test" for f in test)
