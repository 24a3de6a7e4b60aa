"""H ``mattergen`` and H ``con-cdvae``: their command lines, reading their real output formats, one-line errors,
and runs of the real external tools where CRYSTALGF_MATTERGEN_COMMAND / CRYSTALGF_CONCDVAE_CHECKOUT are set."""

import argparse
import ast
import csv
import os
import subprocess
import sys
import zipfile

import ase.io
import pytest
import torch
import yaml
from click.testing import CliRunner
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from crystalgf.cli import main
from crystalgf.errors import GenerationError, InvalidInputError
from crystalgf.schema import Constraint
from crystalgf_baselines import con_cdvae_h, mattergen_h
from crystalgf_baselines.con_cdvae_h import ConCdvaeGenerator
from crystalgf_baselines.mattergen_h import MatterGenGenerator

STO = Constraint.from_dict({
    "formula": "SrTiO3", "space_group": 221, "wyckoff": [["Sr", "1a"], ["Ti", "1b"], ["O", "3c"]],
    "properties": {"band_gap": {"name": "band_gap", "minimum": 1.5, "maximum": 2.0},
                   "formation_energy_per_atom": {"name": "formation_energy_per_atom", "value": -3.2}},
})
NACL = Constraint.from_dict({"formula": "Na4Cl4", "space_group": 225, "wyckoff": [["Na", "4a"], ["Cl", "4b"]],
                             "properties": {"band_gap": {"name": "band_gap", "value": 5.0}}})
STO_GAP_3 = Constraint.from_dict({**STO.to_dict(), "properties": {"band_gap": {"name": "band_gap", "value": 3.0}}})
ENVIRONMENT = ("CRYSTALGF_MATTERGEN_COMMAND", "CRYSTALGF_CONCDVAE_CHECKOUT", "CRYSTALGF_CONCDVAE_PYTHON")


@pytest.fixture(scope="module")
def perovskites(data_dir) -> list[Structure]:
    """Twelve Perov-5 test crystals, read from the shared data at test time."""
    rows = list(csv.DictReader((data_dir / "perov_5" / "test.csv").open()))[:12]
    return [Structure.from_str(row["cif"], fmt="cif") for row in rows]


def assert_same_crystals(read, expected):
    assert len(read) == len(expected)
    for got, want in zip(read, expected):
        assert got.composition == want.composition
        assert got.lattice.abc == pytest.approx(want.lattice.abc, abs=1e-4)
        assert got.lattice.angles == pytest.approx(want.lattice.angles, abs=1e-3)


# --- MatterGen ---------------------------------------------------------------------------------------------

def test_mattergen_conditions_and_groups():
    assert mattergen_h.conditions_for(STO, ["chemical_system", "band_gap"]) == {"chemical_system": "O-Sr-Ti",
                                                                              "dft_band_gap": 1.75}
    assert mattergen_h.conditions_for(NACL, ["formation_energy_per_atom"]) == {}
    groups = mattergen_h.group_by_conditions([STO, NACL, STO, STO_GAP_3], ["chemical_system", "band_gap"])
    assert groups == [({"chemical_system": "O-Sr-Ti", "dft_band_gap": 1.75}, [0, 2]),
                      ({"chemical_system": "Cl-Na", "dft_band_gap": 5.0}, [1]),
                      ({"chemical_system": "O-Sr-Ti", "dft_band_gap": 3.0}, [3])]
    assert mattergen_h.group_by_conditions([STO, STO_GAP_3], ["chemical_system"]) == [
        ({"chemical_system": "O-Sr-Ti"}, [0, 1])]


def test_mattergen_command_line(tmp_path):
    conditions = {"chemical_system": "O-Sr-Ti", "dft_band_gap": 1.75}
    line = mattergen_h.build_command("/envs/mattergen/bin/mattergen-generate", tmp_path / "r", "chemical_system",
                                     conditions, 20, 16, 2.0, 7)
    assert line == ["/envs/mattergen/bin/mattergen-generate", str(tmp_path / "r"), "--pretrained-name=chemical_system",
                    "--batch_size=16", "--num_batches=2",
                    "--properties_to_condition_on={'chemical_system': 'O-Sr-Ti', 'dft_band_gap': 1.75}",
                    "--diffusion_guidance_factor=2.0", "--record_trajectories=False", "--seed=7"]
    assert ast.literal_eval(line[5].partition("=")[2]) == conditions  # a Python literal, as fire parses it
    assert mattergen_h.build_command("mattergen-generate", tmp_path / "r", "/models/mine", {}, 3, 16, 2.0, 0) == [
        "mattergen-generate", str(tmp_path / "r"), "--model_path=/models/mine", "--batch_size=3", "--num_batches=1",
        "--record_trajectories=False", "--seed=0"]


def write_mattergen_results(directory, structures, extxyz=True):
    """What MatterGen's save_structures writes: one extxyz of all frames, and a zip of ASE-written gen_<i>.cif."""
    directory.mkdir()
    atoms = [AseAtomsAdaptor.get_atoms(s) for s in structures]
    if extxyz:
        ase.io.write(directory / "generated_crystals.extxyz", atoms)
    with zipfile.ZipFile(directory / "generated_crystals_cif.zip", "w") as archive:
        for index, frame in enumerate(atoms):
            ase.io.write(directory / f"gen_{index}.cif", frame, format="cif")
            archive.write(directory / f"gen_{index}.cif", arcname=f"gen_{index}.cif")
            (directory / f"gen_{index}.cif").unlink()


def test_mattergen_reads_extxyz_then_cif_zip(tmp_path, perovskites):
    write_mattergen_results(tmp_path / "both", perovskites)
    read = mattergen_h.read_output(tmp_path / "both")
    assert_same_crystals(read, perovskites)
    for got, want in zip(read, perovskites):
        assert got.lattice.matrix == pytest.approx(want.lattice.matrix, abs=1e-6)
    write_mattergen_results(tmp_path / "zip", perovskites, extxyz=False)
    assert_same_crystals(mattergen_h.read_output(tmp_path / "zip"), perovskites)  # gen_10 after gen_9
    (tmp_path / "empty").mkdir()
    with pytest.raises(GenerationError, match="no generated_crystals.extxyz or generated_crystals_cif.zip"):
        mattergen_h.read_output(tmp_path / "empty")


def test_mattergen_options_are_checked():
    with pytest.raises(InvalidInputError, match="MatterGen cannot condition on 'density'; choose from chemical_system"):
        MatterGenGenerator(condition_on="chemical_system, density")
    with pytest.raises(InvalidInputError, match="guidance must be a number >= 0"):
        MatterGenGenerator(guidance=-1)
    generator = MatterGenGenerator(command=sys.executable, checkpoint="chemical_system",
                                   condition_on="chemical_system,band_gap")
    assert generator.condition_on == ["chemical_system", "band_gap"]
    with pytest.raises(InvalidInputError, match="mattergen-generate command /nowhere/mattergen-generate not found; "
                                                "set --h-option command=... or CRYSTALGF_MATTERGEN_COMMAND"):
        MatterGenGenerator(command="/nowhere/mattergen-generate", checkpoint="chemical_system")


def test_mattergen_failure_is_a_generation_error_with_the_last_stderr_line(monkeypatch):
    monkeypatch.delenv("CRYSTALGF_MATTERGEN_COMMAND", raising=False)
    generator = MatterGenGenerator(command=sys.executable, checkpoint="chemical_system")  # python cannot run the args
    with pytest.raises(GenerationError, match=r"H mattergen: python[\d.]* failed: .*can't open file .*group0"):
        generator.generate([STO], [0])


# --- Con-CDVAE ---------------------------------------------------------------------------------------------

def test_concdvae_rows_calls_and_condition_csv(tmp_path):
    calls = con_cdvae_h.plan_calls([STO, NACL, STO, STO_GAP_3])
    assert calls == [
        [({"n_atom": 5, "band_gap": 1.75, "formation_energy_per_atom": -3.2}, [0, 2])],
        [({"n_atom": 8, "band_gap": 5.0}, [1]), ({"n_atom": 5, "band_gap": 3.0}, [3])],
    ]
    con_cdvae_h.write_conditions(tmp_path / "c.csv", [row for row, _ in calls[1]])
    assert (tmp_path / "c.csv").read_text() == "label,n_atom,band_gap\ng0,8,5.0\ng1,5,3.0\n"


def test_concdvae_config_and_command_line(tmp_path):
    config = con_cdvae_h.build_config(tmp_path / "model", tmp_path / "c.csv", tmp_path / "train.csv", seed=3,
                                      samples=45, batch_size=20, model_file=None, prior="prior_default",
                                      prior_file=None)
    assert config == {
        "model_path": str(tmp_path / "model"), "prior_path": None, "model_file": None, "prior_file": None,
        "prior_label": "prior_default", "label": "", "deterministic": True, "seed": 3, "batch_size": 20,
        "down_sample": 1, "num_batches_to_samples": 3, "save_traj": False, "down_sample_traj_step": 10,
        "num_samples_per_z": 1, "use_one": True, "input_path": str(tmp_path / "c.csv"),
        "refdata_path": str(tmp_path / "train.csv"), "disable_bar": True, "min_sigma": 0.0, "step_lr": 1e-4,
        "n_step_each": 100,
    }
    assert yaml.safe_load(yaml.safe_dump(config)) == config
    assert con_cdvae_h.build_command("/envs/concdvae310/bin/python", tmp_path / "Con-CDVAE", tmp_path / "gen.yaml") == [
        "/envs/concdvae310/bin/python", str(tmp_path / "Con-CDVAE" / "scripts" / "gen_crystal.py"),
        "--config", str(tmp_path / "gen.yaml")]


def write_concdvae_output(path, structures, samples_per_z=2):
    """What gen_crystal.py saves: tensors stacked over samples per latent (first axis), atoms concatenated."""
    frac_coords = torch.cat([torch.tensor(s.frac_coords, dtype=torch.float32) for s in structures])
    atom_types = torch.cat([torch.tensor(s.atomic_numbers) for s in structures])
    lengths = torch.tensor([s.lattice.abc for s in structures], dtype=torch.float32)
    angles = torch.tensor([s.lattice.angles for s in structures], dtype=torch.float32)
    num_atoms = torch.tensor([len(s) for s in structures])
    torch.save({"eval_setting": argparse.Namespace(config=str(path.parent / "gen.yaml")),
                **{key: torch.stack([value] * samples_per_z) for key, value in (
                    ("frac_coords", frac_coords), ("num_atoms", num_atoms), ("atom_types", atom_types),
                    ("lengths", lengths), ("angles", angles))},
                "all_frac_coords_stack": [], "all_atom_types_stack": [], "time": 12.5}, path)


def test_concdvae_reads_its_pt_output(tmp_path, perovskites):
    write_concdvae_output(tmp_path / "eval_gen_g0.pt", perovskites)
    read = con_cdvae_h.read_output(tmp_path / "eval_gen_g0.pt")
    assert_same_crystals(read, perovskites + perovskites)
    for got, want in zip(read, perovskites):
        assert got.frac_coords == pytest.approx(want.frac_coords % 1.0, abs=1e-5)
    with pytest.raises(GenerationError, match="gen_crystal.py wrote no eval_gen_g1.pt"):
        con_cdvae_h.read_output(tmp_path / "eval_gen_g1.pt")


def test_modules_do_not_import_torch():
    code = "import sys, crystalgf_baselines.plugin; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_concdvae_failure_is_a_generation_error(tmp_path, monkeypatch):
    monkeypatch.delenv("CRYSTALGF_CONCDVAE_CHECKOUT", raising=False)
    (tmp_path / "model").mkdir()
    generator = ConCdvaeGenerator(checkout=str(tmp_path), python=sys.executable, model_path=str(tmp_path / "model"))
    with pytest.raises(GenerationError, match=r"H con-cdvae: python[\d.]* failed: .*can't open file .*gen_crystal.py"):
        generator.generate([STO], [0])
    with pytest.raises(InvalidInputError, match="model directory .* not found; set --h-option model_path="):
        ConCdvaeGenerator(checkout=str(tmp_path), python=sys.executable)  # no src/model/mp20_format here
    with pytest.raises(InvalidInputError, match="checkout /nowhere not found; set --h-option checkout="):
        ConCdvaeGenerator(checkout="/nowhere", python=sys.executable)


# --- the command line --------------------------------------------------------------------------------------

@pytest.fixture
def constraints_jsonl(tmp_path, monkeypatch):
    for variable in ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)
    requests = tmp_path / "requests.csv"
    requests.write_text("id,formula,elements,band_gap,formation_energy_per_atom\nsto,SrTiO3,,1.5:2.0,-3.2\n")
    path = tmp_path / "constraints.jsonl"
    result = CliRunner().invoke(main, ["constrain", "--g", "prior", "--input", str(requests), "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


UNCONFIGURED = [
    (["--h", "mattergen"], "error: H mattergen: the mattergen-generate command is not configured; "
                           "set --h-option command=... or CRYSTALGF_MATTERGEN_COMMAND"),
    (["--h", "mattergen", "--h-option", "command=/envs/mattergen/bin/mattergen-generate"],
     "error: H mattergen: the mattergen-generate command /envs/mattergen/bin/mattergen-generate not found; "
     "set --h-option command=... or CRYSTALGF_MATTERGEN_COMMAND"),
    (["--h", "mattergen", "--h-option", f"command={sys.executable}"],
     "error: H mattergen: no checkpoint; set --h-option checkpoint=NAME_OR_MODEL_DIR"),
    (["--h", "mattergen", "--h-option", "condition_on=chemical_system,e_above_hull"],
     "error: H mattergen: MatterGen cannot condition on 'e_above_hull'; "
     "choose from chemical_system, band_gap, formation_energy_per_atom"),
    (["--h", "con-cdvae"], "error: H con-cdvae: the Con-CDVAE checkout is not configured; "
                           "set --h-option checkout=... or CRYSTALGF_CONCDVAE_CHECKOUT"),
]


@pytest.mark.parametrize("args, message", UNCONFIGURED)
def test_unconfigured_is_one_line_and_exit_2(constraints_jsonl, tmp_path, args, message):
    result = CliRunner().invoke(main, ["generate", *args, "--input", str(constraints_jsonl), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.stderr == message + "\n"
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_plugins_lists_both():
    listing = CliRunner().invoke(main, ["plugins"])
    assert listing.exit_code == 0
    assert "mattergen" in listing.output and "con-cdvae" in listing.output


# --- the real external tools -------------------------------------------------------------------------------

@pytest.mark.skipif(not os.environ.get("CRYSTALGF_MATTERGEN_COMMAND"),
                    reason="set CRYSTALGF_MATTERGEN_COMMAND (and CRYSTALGF_MATTERGEN_CHECKPOINT, default "
                           "chemical_system) to run the real MatterGen")
def test_real_mattergen():
    generator = MatterGenGenerator(checkpoint=os.environ.get("CRYSTALGF_MATTERGEN_CHECKPOINT", "chemical_system"))
    structures = generator.generate([STO, STO, NACL], [0, 1, 2])
    assert all(s is not None and s.volume > 0 for s in structures)
    assert {str(e) for s in structures[:2] for e in s.composition.elements} <= {"Sr", "Ti", "O"}
    assert {str(e) for e in structures[2].composition.elements} <= {"Na", "Cl"}


@pytest.mark.skipif(not (os.environ.get("CRYSTALGF_CONCDVAE_CHECKOUT") and os.environ.get("CRYSTALGF_CONCDVAE_PYTHON")),
                    reason="set CRYSTALGF_CONCDVAE_CHECKOUT and CRYSTALGF_CONCDVAE_PYTHON to run the real Con-CDVAE")
def test_real_concdvae():
    structures = ConCdvaeGenerator().generate([STO, STO], [0, 1])  # the shipped mp20_format model: formation energy
    assert all(s is not None and s.volume > 0 for s in structures)
