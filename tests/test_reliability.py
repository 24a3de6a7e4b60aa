"""Issue #23: checkpoints that are damaged or would run code, plugins that fail while they run, CSV
details, bounds, and runs that are interrupted and resumed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from crystalgf import cli
from crystalgf.cli import main
from crystalgf.plugins import PluginRegistry
from crystalgf_diffusion.checkpoint import PACKAGED_CHECKPOINT


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result, *phrases: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def files(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (but the manifest, which holds times) by relative path."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


# --- 2. checkpoints -------------------------------------------------------------------------------------

class _Payload:
    """Unpickling it would create the marker file: the proof that a load ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _edit_config(key, value):
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config["model"][key] = value
        (folder / "config.json").write_text(json.dumps(config))
    return edit


def _edit_weights(change):
    def edit(folder: Path) -> None:
        state = torch.load(folder / "model.pt", weights_only=True)
        change(state)
        torch.save(state, folder / "model.pt")
    return edit


CHECKPOINTS = {
    "broken config": (lambda f: (f / "config.json").write_text('{"model": {"layers": 4,'), "config.json: not valid JSON"),
    "config a list": (lambda f: (f / "config.json").write_text("[1, 2]"), "config.json: no 'model' mapping"),
    "config binary": (lambda f: (f / "config.json").write_bytes(b"\xff\xfe\x00"), "config.json: not UTF-8"),
    "foreign key": (_edit_config("colour", 3), "config.json: 'model' describes no network"),
    "huge network": (_edit_config("hidden", 10**9), "hidden must be an integer from 1 to 65536"),
    "heads do not divide": (_edit_config("heads", 7), "config.json: 'model' describes no network"),
    "other width": (_edit_config("hidden", 64), "model.pt: tensor 'inputs.weight' has shape (128, 198)"),
    "sampling not a mapping": (lambda f: (f / "config.json").write_text(json.dumps(
        {**json.loads((f / "config.json").read_text()), "sampling": 3})), "'sampling' must be a mapping"),
    "empty weights": (lambda f: (f / "model.pt").write_bytes(b""), "model.pt: an empty file"),
    "truncated weights": (lambda f: (f / "model.pt").write_bytes((f / "model.pt").read_bytes()[:5000]),
                          "model.pt: not the weights of a checkpoint, damaged or cut off"),
    "text weights": (lambda f: (f / "model.pt").write_text("hello"), "model.pt: not the weights of a checkpoint"),
    "a list of weights": (lambda f: torch.save([1, 2], f / "model.pt"), "model.pt: not a state dict of named tensors"),
    "missing tensor": (_edit_weights(lambda s: s.pop("inputs.weight")), "model.pt: lacks tensor 'inputs.weight'"),
    "foreign tensor": (_edit_weights(lambda s: s.update(extra=torch.zeros(2))), "has the foreign tensor 'extra'"),
    "wrong shape": (_edit_weights(lambda s: s.update({"inputs.weight": torch.zeros(3, 3)})),
                    "tensor 'inputs.weight' has shape (3, 3)"),
    "not finite": (_edit_weights(lambda s: s["inputs.weight"].fill_(float("nan"))), "holds NaN or infinite values"),
}


@pytest.mark.parametrize("case", list(CHECKPOINTS))
def test_a_bad_checkpoint_is_one_line_naming_the_file_and_nothing_is_written(tmp_path, case):
    damage, phrase = CHECKPOINTS[case]
    folder = tmp_path / "checkpoint"
    shutil.copytree(PACKAGED_CHECKPOINT, folder)
    damage(folder)
    out = tmp_path / "out"
    result = invoke("run", "--g", "prior", "--h", "diffusion", "--h-option", f"checkpoint={folder}",
                    "--formula", "NaCl", "-o", out)
    one_error_line(result, str(folder), phrase)
    assert not out.exists()
    constraints = tmp_path / "c.jsonl"
    constraints.write_text('{"formula": "Na4Cl4", "space_group": 225, "wyckoff": [["Na", "4a"], ["Cl", "4b"]]}\n')
    one_error_line(invoke("generate", "--h", "diffusion", "--h-option", f"checkpoint={folder}", "--input",
                          constraints, "-o", out), phrase)
    assert not out.exists()


def test_a_crafted_pickle_checkpoint_is_refused_without_running(tmp_path):
    folder, marker = tmp_path / "checkpoint", tmp_path / "code-ran"
    shutil.copytree(PACKAGED_CHECKPOINT, folder)
    state = torch.load(folder / "model.pt", weights_only=True)
    torch.save({**state, "note": _Payload(marker)}, folder / "model.pt")
    out = tmp_path / "out"
    result = invoke("run", "--g", "prior", "--h", "diffusion", "--h-option", f"checkpoint={folder}",
                    "--formula", "NaCl", "-o", out)
    one_error_line(result, f"{folder / 'model.pt'}: refused: loading it would run code")
    assert not marker.exists() and not out.exists()
    torch.load(folder / "model.pt", weights_only=False)  # the payload is live: an unsafe load runs it
    assert marker.exists()


def test_train_h_resume_refuses_a_crafted_or_broken_state(tmp_path, data_dir):
    out, marker = tmp_path / "ckpt", tmp_path / "code-ran"
    out.mkdir()
    torch.save({"epoch": 1, "model": _Payload(marker)}, out / "train_state.pt")
    result = invoke("train", "h", "--data", data_dir / "perov_5" / "val.csv", "--limit", 8, "--epochs", 1,
                    "-o", out, "--resume")
    one_error_line(result, "train_state.pt: refused: loading it would run code")
    assert not marker.exists() and sorted(p.name for p in out.iterdir()) == ["train_state.pt"]
    (out / "train_state.pt").write_bytes(b"PK\x03\x04 cut")
    one_error_line(invoke("train", "h", "--data", data_dir / "perov_5" / "val.csv", "-o", out, "--resume"),
                   "train_state.pt: not a training state of crystalgf train h")


# --- 3. plugins that fail while they run ------------------------------------------------------------------

PLUGIN_MODULE = '''
import os
import sys
import time

from crystalgf.hookspecs import hookimpl
from crystalgf.interfaces import ConstraintGenerator
from crystalgf_baselines.pyxtal_h import PyxtalGenerator


class RaisingG(ConstraintGenerator):
    name = "test-raising"

    def generate(self, requests, top_k, seed):
        raise ValueError("the G plugin broke")


class ExitingG(ConstraintGenerator):
    name = "test-exiting"

    def generate(self, requests, top_k, seed):
        sys.exit(0)


class StartlessG(ConstraintGenerator):
    name = "test-startless"

    def __init__(self):
        raise KeyError("no table")

    def generate(self, requests, top_k, seed):
        return []


class FlakyH(PyxtalGenerator):
    """PyXtal, but slow (``TEST_H_SLEEP`` seconds per batch) or failing after ``TEST_H_FAIL_AFTER`` batches."""

    name = "test-flaky"

    def __init__(self):
        super().__init__()
        self.calls = 0

    def generate(self, constraints, seeds):
        self.calls += 1
        if self.calls > int(os.environ.get("TEST_H_FAIL_AFTER", "1000000")):
            raise RuntimeError("the H plugin broke")
        time.sleep(float(os.environ.get("TEST_H_SLEEP", "0")))
        return super().generate(constraints, seeds)


@hookimpl
def crystalgf_add_constraint_generators():
    return [RaisingG, ExitingG, StartlessG]


@hookimpl
def crystalgf_add_structure_generators():
    return [FlakyH]
'''


def install_plugins(root: Path, modules: dict[str, str]) -> None:
    """A package ``crystalgf-test-plugins`` whose entry points name the given modules (name -> source)."""
    dist = root / "crystalgf_test_plugins-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: crystalgf-test-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[crystalgf]\n" + "".join(f"{name} = {name}\n" for name in modules))
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))


def _rediscover() -> None:
    """Make the next use of the process's registry (and so the CLI's) discover the plugins again."""
    PluginRegistry.installed.cache_clear()
    cli._registry.cache_clear()


@pytest.fixture
def test_plugins(tmp_path, monkeypatch):
    """The plugins above, installed for this process (its registry rebuilt) and for subprocesses."""
    root = tmp_path / "plugins"
    install_plugins(root, {"crystalgf_test_flaky": PLUGIN_MODULE})
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    _rediscover()
    yield root
    _rediscover()
    sys.modules.pop("crystalgf_test_flaky", None)


def test_a_g_that_raises_is_one_line_naming_it_and_nothing_is_written(tmp_path, test_plugins):
    out = tmp_path / "out"
    one_error_line(invoke("run", "--g", "test-raising", "--h", "pyxtal", "--formula", "NaCl", "-o", out),
                   "G 'test-raising' failed while proposing constraints: ValueError: the G plugin broke")
    one_error_line(invoke("run", "--g", "test-exiting", "--h", "pyxtal", "--formula", "NaCl", "-o", out),
                   "G 'test-exiting' failed while proposing constraints: SystemExit")
    one_error_line(invoke("run", "--g", "test-startless", "--h", "pyxtal", "--formula", "NaCl", "-o", out),
                   "constraint generator (G) 'test-startless' failed to start: KeyError: 'no table'")
    assert not out.exists()
    requests = tmp_path / "r.csv"
    requests.write_text("id,formula\na,NaCl\n")
    one_error_line(invoke("constrain", "--g", "test-raising", "--input", requests, "-o", tmp_path / "c.jsonl"),
                   "G 'test-raising' failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plugins", "r.csv"]


def test_an_h_that_raises_is_one_line_naming_it_and_the_run_is_marked_failed(tmp_path, test_plugins, monkeypatch):
    args = ["run", "--g", "prior", "--h", "test-flaky", "--formula", "NaCl", "-n", 6, "--batch-size", 2]
    monkeypatch.setenv("TEST_H_FAIL_AFTER", "0")  # fails before the first structure: nothing is left
    one_error_line(invoke(*args, "-o", tmp_path / "none"), "H 'test-flaky' failed while generating: "
                   "RuntimeError: the H plugin broke; nothing was written")
    assert not (tmp_path / "none").exists()
    monkeypatch.setenv("TEST_H_FAIL_AFTER", "2")  # fails in the third batch: the first two stay, marked failed
    out = tmp_path / "out"
    one_error_line(invoke(*args, "-o", out), "H 'test-flaky' failed while generating: RuntimeError: the H plugin "
                   f"broke; 4 structure(s) kept in {out} (status failed): --resume continues")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "the H plugin broke" in manifest["error"]
    assert len((out / "results.jsonl").read_text().splitlines()) == 4
    one_error_line(invoke(*args, "-o", out), "is not empty", "status 'failed': --resume continues it")
    monkeypatch.delenv("TEST_H_FAIL_AFTER")
    assert invoke(*args, "-o", out, "--resume").exit_code == 0
    assert invoke(*args, "-o", tmp_path / "straight").exit_code == 0
    assert files(out) == files(tmp_path / "straight")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"][0]["status"] == "failed"


def test_a_hook_module_that_exits_at_import_is_reported_and_the_rest_works(tmp_path, monkeypatch):
    root = tmp_path / "plugins"
    install_plugins(root, {"crystalgf_test_exits": "import sys\nsys.exit('bye')\n",
                           "crystalgf_test_hook_exits": "import sys\nfrom crystalgf.hookspecs import hookimpl\n\n"
                           "@hookimpl\ndef crystalgf_add_constraint_generators():\n    sys.exit(3)\n"})
    monkeypatch.syspath_prepend(str(root))
    registry = PluginRegistry.discover()
    assert {b.source: b.error for b in registry.broken} == {"crystalgf_test_exits": "SystemExit: bye",
                                                           "crystalgf_test_hook_exits": "SystemExit: 3"}
    assert "prior" in registry.names("g")
    _rediscover()
    try:
        listing = invoke("plugins")
        assert listing.exit_code == 0 and "prior" in listing.stdout
        assert "warning: plugin 'crystalgf_test_exits' (crystalgf-test-plugins) failed to load: SystemExit: bye" \
            in listing.stderr
        assert invoke("run", "--g", "prior", "--h", "pyxtal", "--formula", "NaCl", "-o", tmp_path / "o").exit_code == 0
    finally:
        _rediscover()
        sys.modules.pop("crystalgf_test_hook_exits", None)


# --- 4. CSV input ------------------------------------------------------------------------------------------

def test_a_byte_order_mark_keeps_the_first_column(tmp_path):
    requests = tmp_path / "r.csv"
    requests.write_bytes("id,formula,band_gap\nmine,NaCl,1.0\n".encode("utf-8-sig"))
    assert invoke("constrain", "--g", "prior", "--input", requests, "-o", tmp_path / "c.jsonl").exit_code == 0
    assert json.loads((tmp_path / "c.jsonl").read_text().splitlines()[0])["id"] == "mine"
    only_formula = tmp_path / "f.csv"
    only_formula.write_bytes("formula\nNaCl\n".encode("utf-8-sig"))  # was: "needs a 'formula' column"
    assert invoke("constrain", "--g", "prior", "--input", only_formula, "-o", tmp_path / "f.jsonl").exit_code == 0
    constraints = tmp_path / "bom.jsonl"
    constraints.write_bytes('{"formula": "Na4Cl4", "space_group": 225, "wyckoff": [["Na", "4a"], ["Cl", "4b"]]}\n'
                            .encode("utf-8-sig"))
    assert invoke("generate", "--h", "pyxtal", "--input", constraints, "-o", tmp_path / "g").exit_code == 0


@pytest.mark.parametrize("header, row, phrase", [
    ("id,formula,bandgap", "a,NaCl,1.0", "unknown column 'bandgap'; known: id, formula, elements, band_gap, "
                                         "formation_energy_per_atom, space_group, max_atoms, exact_cell"),
    ("id,formula,formula", "a,NaCl,KBr", "column 'formula' appears more than once"),
    ("id,formula,", "a,NaCl,5", "line 2: a value '5' in a column without a name"),
    ("id,formula", "a,C o", "line 2: formula: malformed formula 'C o'"),
])
def test_request_columns_and_formulas_are_checked(tmp_path, header, row, phrase):
    requests = tmp_path / "r.csv"
    requests.write_text(f"{header}\n{row}\n")
    one_error_line(invoke("constrain", "--g", "prior", "--input", requests, "-o", tmp_path / "c.jsonl"), phrase)
    assert not (tmp_path / "c.jsonl").exists()


def test_an_empty_unnamed_column_is_harmless(tmp_path):
    requests = tmp_path / "r.csv"
    requests.write_text("id,formula,\na,NaCl,\n")
    assert invoke("constrain", "--g", "prior", "--input", requests, "-o", tmp_path / "c.jsonl").exit_code == 0


# --- 5. bounds ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, phrase", [
    (["run", "--g", "prior", "--h", "pyxtal", "--formula", "NaCl", "-n", 1000000000],
     "n: at most 100,000 structures per run (got 1,000,000,000)"),
    (["run", "--g", "prior", "--formula", "NaCl", "--band-gap", "1e9"], "band_gap must be from 0 to 30 eV"),
    (["run", "--g", "prior", "--formula", "NaCl", "--formation-energy", "-25"],
     "formation_energy_per_atom must be from -20 to 10 eV/atom (got -25 eV/atom)"),
    (["run", "--g", "prior", "--formula", "NaCl", "-o", ""], "Invalid value for '-o' / '--output': an empty path"),
    (["generate", "--input", "c.jsonl", "-n", 1000000000], "1000000000 is not in the range 1<=x<=100000"),
    (["generate", "--input", "c.jsonl", "-n", 60000], "2 constraints x -n 60000 = 120,000 structures, more than "
                                                     "100,000 per run"),
    (["export-vasp", "--input", "run", "--ids", ""], "--ids '' names an empty id"),
    (["export-vasp", "--input", "run", "--ids", "a,,b"], "names an empty id"),
])
def test_bounds(tmp_path, monkeypatch, args, phrase):
    monkeypatch.chdir(tmp_path)
    Path("c.jsonl").write_text(2 * '{"formula": "Na4Cl4", "space_group": 225, "wyckoff": [["Na", "4a"], ["Cl", "4b"]]}\n')
    Path("run").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    one_error_line(invoke(*args, *([] if "-o" in args else ["-o", "out"])), phrase)
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not any(Path("run").iterdir())


def test_an_empty_output_in_the_config_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("run.yaml").write_text("g: prior\nh: pyxtal\nformula: NaCl\noutput: ''\n")
    one_error_line(invoke("run", "--config", "run.yaml"), "output: an empty path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml"]


# --- 6. resume ---------------------------------------------------------------------------------------------

RUN = ["run", "--g", "prior", "--h", "pyxtal", "--formula", "NaCl", "--top-k", 2, "-n", 10, "--batch-size", 3,
       "--seed", 5]


@pytest.mark.parametrize("structure_format", ["cif", "extxyz"])
def test_resume_after_a_cut_off_results_file_gives_the_same_bytes(tmp_path, structure_format):
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    assert invoke(*RUN, "--format", structure_format, "-o", straight).exit_code == 0
    shutil.copytree(straight, cut)
    lines = (cut / "results.jsonl").read_text().splitlines(keepends=True)
    (cut / "results.jsonl").write_text("".join(lines[:5]) + lines[5][:40])  # killed while writing line 6
    manifest = json.loads((cut / "manifest.json").read_text())
    (cut / "manifest.json").write_text(json.dumps({**manifest, "status": "running", "pid": os.getpid()}))
    if structure_format == "cif":
        (cut / "structures" / "NaCl-0008.cif").unlink()
        (cut / "structures" / "NaCl-0009.cif.tmp").write_text("cut off")
    result = invoke(*RUN, "--format", structure_format, "-o", cut)
    one_error_line(result, "is not empty", "status 'running': --resume continues it")
    assert invoke(*RUN, "--format", structure_format, "-o", cut, "--resume").exit_code == 0
    assert files(cut) == files(straight)
    manifest = json.loads((cut / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["structures"] == 10
    assert manifest["resumed"][0]["status"] == "interrupted" and manifest["resumed"][0]["kept"] == 3
    again = invoke(*RUN, "--format", structure_format, "-o", cut, "--resume")
    assert again.exit_code == 0 and "complete; nothing to resume" in again.stderr


def test_resume_refuses_other_settings_and_a_live_run(tmp_path):
    out = tmp_path / "out"
    assert invoke(*RUN, "-o", out).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    one_error_line(invoke(*RUN, "--seed", 6, "-o", out, "--resume"), "was made with other seed")
    one_error_line(invoke(*RUN, "-n", 11, "-o", out, "--resume"), "was made with other n")
    one_error_line(invoke(*RUN, "-o", out, "--resume", "--overwrite"), "exclude each other")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (out / "manifest.json").write_text(json.dumps({**manifest, "status": "running", "pid": sleeper.pid}))
        one_error_line(invoke(*RUN, "-o", out, "--resume"), f"still being written by process {sleeper.pid}")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert invoke(*RUN, "-o", out, "--resume").exit_code == 0  # that process has ended: resumable
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    one_error_line(invoke(*RUN, "-o", mine, "--resume"), "--resume continues only an earlier run's output")
    assert invoke(*RUN, "-o", tmp_path / "new", "--resume").exit_code == 0  # nothing there yet: a fresh run


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_killed_run_resumes_to_the_same_bytes(tmp_path, test_plugins, how):
    args = ["run", "--g", "prior", "--h", "test-flaky", "--formula", "NaCl", "-n", 12, "--batch-size", 2,
            "--seed", 3]
    out = tmp_path / "out"
    environment = {**os.environ, "TEST_H_SLEEP": "0.4"}
    process = subprocess.Popen(["crystalgf", *map(str, args), "-o", str(out)], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        results = out / "results.jsonl"
        if results.is_file() and len(results.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(getattr(signal, how))
    _, error = process.communicate(timeout=60)
    status = json.loads((out / "manifest.json").read_text())["status"]
    if how == "SIGKILL":
        assert process.returncode == -signal.SIGKILL and status == "running"
    else:
        assert process.returncode == 128 + signal.SIGTERM and status == "interrupted"
        assert error.startswith("error: interrupted; ") and "--resume continues" in error.splitlines()[-1]
    kept = len((out / "results.jsonl").read_text().splitlines())
    assert 3 <= kept < 12
    assert invoke(*args, "-o", out, "--resume").exit_code == 0
    assert invoke(*args, "-o", tmp_path / "straight").exit_code == 0
    assert files(out) == files(tmp_path / "straight")
    assert json.loads((out / "manifest.json").read_text())["resumed"][0]["status"] == "interrupted"
