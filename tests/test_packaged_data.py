"""What a fresh install of crystalgf-eval computes without any download (issue #22): the packaged MP
elemental references and MEGNet models, and the ``chgnet-eform`` formation energy on the MP2020 scale."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from crystalgf.cli import main
from crystalgf.datasets import StructureTable
from crystalgf.errors import MissingWeightsError
from crystalgf.plugins import PluginRegistry
from crystalgf_eval import predictors, references

PACKAGE_DATA = Path(references.__file__).parent / "data"


@pytest.fixture(scope="module")
def registry():
    return PluginRegistry.discover()


@pytest.fixture()
def no_user_files(monkeypatch, tmp_path):
    """As on a fresh install: no environment variables, empty user caches."""
    monkeypatch.delenv(references.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.delenv(predictors.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setattr(references, "CACHE", tmp_path / "cache" / references.FILE_NAME)
    monkeypatch.setattr(predictors, "MATGL_CACHE", tmp_path / "matgl")


def test_packaged_files_carry_their_licenses():
    assert references.PACKAGED.is_file() and len(references.load_elemental_references(references.PACKAGED)) > 80
    notice = (PACKAGE_DATA / "NOTICE").read_text()
    assert "Janosh Riebesell" in notice and "Materials Virtual Lab" in notice
    assert "MIT License" in (PACKAGE_DATA / "LICENSE-matbench-discovery").read_text()
    assert "BSD 3-Clause" in (PACKAGE_DATA / "matgl" / "LICENSE").read_text()
    for model in ("MEGNet-MP-2019.4.1-BandGap-mfi", "MEGNet-MP-2018.6.1-Eform"):
        assert {p.name for p in (PACKAGE_DATA / "matgl" / model).iterdir()} >= {"model.json", "model.pt", "state.pt"}


def test_locate_order(no_user_files, monkeypatch, tmp_path):
    assert references.locate() == references.PACKAGED
    references.CACHE.parent.mkdir(parents=True)
    references.CACHE.write_bytes(references.PACKAGED.read_bytes())
    assert references.locate() == references.CACHE  # a downloaded copy comes first
    monkeypatch.setenv(references.ENVIRONMENT_VARIABLE, str(tmp_path / "nowhere.json.gz"))
    with pytest.raises(MissingWeightsError, match="nowhere.json.gz"):  # a named file must exist
        references.locate()
    assert references.locate(references.PACKAGED) == references.PACKAGED


def test_megnet_models_load_from_the_package(no_user_files, registry, data_dir):
    gap = registry.create("predictor", "megnet-bandgap")
    assert gap.path == predictors.PACKAGED_MODELS / gap.model_name
    rows = StructureTable().read(data_dir / "mp_20_sample" / "test.csv", limit=3).entries
    assert all(value is not None for value in gap.predict([e.structure for e in rows]))
    with pytest.raises(MissingWeightsError, match="M3GNet-MP-2018.6.1-Eform"):  # not packaged
        registry.create("predictor", "m3gnet-eform")


def test_chgnet_formation_energies_are_on_the_mp2020_scale(no_user_files, registry, data_dir):
    """The measured errors on all 430 rows are in docs/predictors.md; this is a loose check."""
    rows = StructureTable().read(data_dir / "mp_20_sample" / "test.csv", limit=20).entries
    predictor = registry.create("predictor", "chgnet-eform")
    assert predictor.references_path == references.PACKAGED
    predicted = predictor.predict([e.structure for e in rows])
    errors = [p - e.properties["formation_energy_per_atom"] for p, e in zip(predicted, rows)]
    assert np.mean(np.abs(errors)) < 0.06 and abs(np.mean(errors)) < 0.03


def test_chgnet_eform_options_are_checked(registry):
    from crystalgf.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="steps must be an integer"):
        registry.create("predictor", "chgnet-eform", steps=-1)


def test_evaluate_on_a_fresh_install(data_dir, tmp_path):
    """Property targeting (both properties) and, given --reference, S.U.N., with no environment variables
    and empty caches: everything needed ships with the packages."""
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--g", "prior", "--h", "pyxtal", "--formula", "NaCl", "--band-gap", "2",
                                       "--formation-energy", "-2", "-n", "2", "-o", str(run)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    environment = {k: v for k, v in os.environ.items()
                   if k not in (references.ENVIRONMENT_VARIABLE, predictors.ENVIRONMENT_VARIABLE)}
    environment.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "home" / ".cache"))
    command = [str(Path(sys.executable).parent / "crystalgf"), "evaluate", "--input", str(run), "--reference",
               str(data_dir / "mp_20_sample" / "val.csv"), "--reference-limit", "4", "--relaxer-option", "steps=0",
               "--metrics", "property-targeting,sun", "-o", str(tmp_path / "report")]
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    targeting = report["metrics"]["property-targeting"]["summary"]
    assert targeting["band_gap"]["structures"] == 2 and targeting["formation_energy_per_atom"]["structures"] == 2
    assert targeting["formation_energy_per_atom"]["unpredicted"] == 0
    assert report["metrics"]["sun"]["summary"]["structures"] == 2 and report["failed"] == {}
    manifest = json.loads((tmp_path / "report" / "manifest.json").read_text())
    assert manifest["settings"]["predictors"]["formation_energy_per_atom"] == "chgnet-eform"
