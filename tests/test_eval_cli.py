"""`crystalgf evaluate` / `export-vasp` end to end on pipeline runs and real data."""

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from crystalgf.cli import main
from crystalgf.datasets import StructureTable, holdout_split
from crystalgf.symmetry.analysis import constraint_from_structure


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    assert invoke("run", "--formula", "SrTiO3", "--exact-cell", "--band-gap", "1.5:2.0", "-n", "4", "--top-k", "2",
                  "-o", out).exit_code == 0
    return out


def test_evaluate_a_pipeline_run(run_dir, data_dir, tmp_path):
    report_dir = tmp_path / "report"
    result = invoke("evaluate", "--input", run_dir, "--reference", data_dir / "mp_20_sample" / "val.csv",
                    "--reference-limit", "8", "--relaxer-option", "steps=0", "-o", report_dir)
    assert result.exit_code == 0, result.output
    report = json.loads((report_dir / "report.json").read_text())
    metrics = report["metrics"]
    assert {"validity", "compliance", "coverage", "property-distributions", "property-targeting", "sun"} <= set(metrics)
    assert metrics["compliance"]["summary"]["all"] == 1.0
    assert metrics["validity"]["summary"]["structural"] == 1.0
    targeting = metrics["property-targeting"]
    errors = [v["band_gap"]["error"] for v in targeting["per_structure"].values()]
    assert targeting["summary"]["band_gap"]["hit@0.05"] == sum(e < 0.05 for e in errors) / len(errors)
    assert "match-rate" in report["not_applicable"] and report["failed"] == {}
    for name in ("report.md", "space_groups.png", "property_errors.png", "manifest.json"):
        assert (report_dir / name).is_file()
    assert "## compliance" in (report_dir / "report.md").read_text()


def test_structure_prediction_flow_and_self_match(perov_subset, tmp_path):
    entries = StructureTable().read(perov_subset).entries
    constraints = tmp_path / "true.jsonl"
    constraints.write_text("".join(json.dumps({"id": e.id, **constraint_from_structure(e.structure).to_dict()}) + "\n"
                                   for e in entries))
    assert invoke("generate", "--input", constraints, "-o", tmp_path / "gen").exit_code == 0
    result = invoke("evaluate", "--input", tmp_path / "gen", "--reference", perov_subset,
                    "--metrics", "match-rate,compliance", "-o", tmp_path / "rep")
    summary = json.loads((tmp_path / "rep" / "report.json").read_text())["metrics"]["match-rate"]["summary"]
    assert result.exit_code == 0 and summary["paired_references"] == len(entries)
    assert 0.0 <= summary["match_rate"] <= 1.0
    itself = invoke("evaluate", "--input", perov_subset, "--reference", perov_subset, "--metrics", "match-rate",
                    "-o", tmp_path / "self")
    assert "match_rate=1" in itself.output


def test_bad_items_are_counted_and_skipped(run_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    cifs = sorted((broken / "structures").glob("*.cif"))
    cifs[0].write_text("data_nothing\n_cell_length_a 4\n")
    cifs[1].write_text("data_overlap\n_cell_length_a 5\n_cell_length_b 5\n_cell_length_c 5\n_cell_angle_alpha 90\n"
                       "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\n"
                       "loop_\n_atom_site_type_symbol\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n"
                       "_atom_site_fract_z\n_atom_site_occupancy\nNa Na1 0 0 0 1\nCl Cl1 0.06 0 0 1\n")
    result = invoke("evaluate", "--input", broken, "--metrics", "validity,compliance", "-o", tmp_path / "r")
    assert result.exit_code == 0 and "skipped 1 unreadable item" in result.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["skipped"] == 1 and report["structures"] == 3
    overlap_id = cifs[1].stem
    assert report["metrics"]["validity"]["per_structure"][overlap_id]["structural"] is False
    assert report["metrics"]["compliance"]["per_structure"][overlap_id]["composition"] is False


def test_an_exact_primitive_cell_built_as_its_conventional_cell_complies(tmp_path):
    # NaCl as the exact cell: G proposes rock salt's conventional cell, Na4Cl4 in Fm-3m, whose primitive cell is NaCl
    run = tmp_path / "run"
    assert invoke("run", "--g", "forest", "--h", "pyxtal", "--formula", "NaCl", "--exact-cell", "--band-gap", "5",
                  "-n", "2", "-o", run).exit_code == 0
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert {(r["constraint"]["formula"], r["constraint"]["space_group"]) for r in records} == {("Na4Cl4", 225)}
    assert invoke("evaluate", "--input", run, "--metrics", "compliance", "-o", tmp_path / "report").exit_code == 0
    per = json.loads((tmp_path / "report" / "report.json").read_text())["metrics"]["compliance"]["per_structure"]
    assert len(per) == 2 and all(p["composition"] and p["exact_cell"] for p in per.values())


@pytest.mark.parametrize("setup, phrase", [
    ("empty-dir", "has no results.jsonl"),
    ("bad-reference", "missing column(s) cif"),
    ("missing-input", "no such file or directory"),
    ("missing-vasp", "nowhere: no such directory"),
    ("missing-references", "refs.json.gz"),
    ("bad-relaxer-option", "relaxer chgnet: steps must be an integer >= 0 (got -1)"),
    ("unknown-property", "--predictor colour=…: unknown property"),
])
def test_bad_evaluate_input(run_dir, tmp_path, setup, phrase):
    args = ["--input", run_dir]
    if setup == "empty-dir":
        (tmp_path / "empty").mkdir()
        args = ["--input", tmp_path / "empty"]
    elif setup == "bad-reference":
        (tmp_path / "ref.csv").write_text("material_id,formula\n1,NaCl\n")
        args += ["--reference", tmp_path / "ref.csv"]
    elif setup == "missing-input":
        args = ["--input", tmp_path / "nope"]
    else:
        args += {"missing-vasp": ["--vasp", tmp_path / "nowhere"],
                 "missing-references": ["--elemental-references", tmp_path / "refs.json.gz"],
                 "bad-relaxer-option": ["--relaxer-option", "steps=-1"],
                 "unknown-property": ["--predictor", "colour=megnet-eform"]}[setup]
    result = invoke("evaluate", *args, "--metrics", "validity", "-o", tmp_path / "out")
    assert result.exit_code == 2 and phrase in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_constrain_output_line_must_be_an_object(constraints_csv, tmp_path):
    (tmp_path / "c.jsonl").write_text("[1, 2, 3]\n")
    result = invoke("evaluate", "--input", tmp_path / "c.jsonl", "--reference", constraints_csv, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "c.jsonl line 1: not a constrain output line" in result.stderr


def test_symmetry_accuracy_of_a_g(constraints_csv, tmp_path):
    rows = [r for r in csv.DictReader(constraints_csv.open()) if holdout_split(r["reduced_formula"]) == "test"][:15]
    requests = tmp_path / "requests.csv"
    requests.write_text("id,formula,exact_cell\n" + "".join(f"{r['id']},{r['formula']},true\n" for r in rows))
    assert invoke("constrain", "--input", requests, "-o", tmp_path / "c.jsonl", "--top-k", "2").exit_code == 0
    result = invoke("evaluate", "--input", tmp_path / "c.jsonl", "--reference", constraints_csv, "-o", tmp_path / "g")
    assert result.exit_code == 0 and "over 15 items" in result.output
    report = json.loads((tmp_path / "g" / "report.json").read_text())["metrics"]["symmetry-accuracy"]
    assert 0.0 <= report["summary"]["space_group_accuracy"] <= 1.0
    assert sum(map(sum, report["confusion"]["matrix"])) == 15
    assert (tmp_path / "g" / "confusion_matrix.png").is_file()


def test_export_vasp_inputs(run_dir, tmp_path):
    first = json.loads((run_dir / "results.jsonl").read_text().splitlines()[0])["id"]
    assert invoke("export-vasp", "--input", run_dir, "--ids", first, "-o", tmp_path / "vasp").exit_code == 0
    folder = tmp_path / "vasp" / first
    incar = (folder / "INCAR").read_text()
    assert "ENCUT = 520" in incar and "GGA = Pe" in incar.replace("PE", "Pe")
    assert (folder / "POSCAR").is_file() and (folder / "POTCAR.spec").is_file()
