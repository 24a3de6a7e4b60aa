"""`crystalgf rank` end to end with real CHGNet (tiny runs): files, order, resume, bad input."""

import json
import math
import shutil
from pathlib import Path

import pytest
from ase.io import read as ase_read
from click.testing import CliRunner
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from crystalgf.cli import main
from crystalgf.schema import PropertyTarget
from crystalgf_eval.rank import rank_candidates

TINY = ["--formula", "NaCl", "--g", "prior", "--h", "pyxtal", "--top-k", "2", "-n", "2",
        "--relaxer-option", "steps=5", "--threads", "1"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def rock_salt() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture(scope="module")
def reference_csv(tmp_path_factory) -> Path:
    """Known crystals: rock salt (a NaCl compound for the hull and for matching) and a row of another system."""
    path = tmp_path_factory.mktemp("reference") / "reference.csv"
    other = Structure(Lattice.cubic(4.0), ["Sr", "Ti", "O", "O", "O"],
                      [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    rows = [("nacl-rock-salt", rock_salt()), ("srtio3", other)]
    path.write_text("material_id,cif\n" + "".join(f'{i},"{CifWriter(s)}"\n' for i, s in rows))
    return path


@pytest.fixture(scope="module")
def ranked(tmp_path_factory, reference_csv) -> Path:
    out = tmp_path_factory.mktemp("rank") / "out"
    result = invoke("rank", *TINY, "--reference", reference_csv, "-o", out)
    assert result.exit_code == 0, result.output
    assert "ranked candidates" in result.output
    return out


def lines(path: Path) -> list[dict]:
    return [json.loads(text) for text in path.read_text().splitlines()]


def test_every_candidate_is_kept_and_reads_back(ranked):
    candidates = lines(ranked / "candidates.jsonl")
    manifest = json.loads((ranked / "manifest.json").read_text())
    k = len(manifest["constraints"])  # G's top 2, or fewer where it knows fewer
    assert 1 <= k <= 2 and len(candidates) == 2 * k and all(c["status"] == "ok" for c in candidates)
    assert sorted(c["g_rank"] for c in candidates) == sorted(list(range(1, k + 1)) * 2)
    for c in candidates:
        for key in ("relaxed_cif", "unrelaxed_cif"):
            structure = Structure.from_file(ranked / c[key])
            atoms = ase_read(ranked / c[key])
            assert structure.composition.reduced_formula == "NaCl" and len(atoms) == len(structure)
            assert sorted(atoms.get_chemical_symbols()) == sorted(s.specie.symbol for s in structure)
        assert c["space_group_relaxed"]["0.1"] == c["constraint"]["space_group"]  # symmetry kept
        assert c["relaxation_steps"] <= 5 and set(c["predicted"]) == {"band_gap", "formation_energy_per_atom"}
        assert c["e_above_hull"] is not None and math.isfinite(c["energy_per_atom"])
    assert manifest["status"] == "complete" and manifest["candidates"] == len(candidates)
    assert manifest["timing"]["candidates_per_second"] > 0


def test_the_order_follows_the_energies(ranked):
    ranking = lines(ranked / "ranking.jsonl")
    assert [c["rank"] for c in ranking] == list(range(1, len(ranking) + 1)) and len(ranking) >= 2
    energies = [c["energy_per_atom"] for c in ranking]
    assert energies == sorted(energies)
    hull = [c["e_above_hull"] for c in ranking]
    assert hull == sorted(hull) and [c["score"] for c in ranking] == hull  # no targets: the hull energy alone
    csv_ids = [row.split(",")[1] for row in (ranked / "ranking.csv").read_text().splitlines()[1:]]
    assert csv_ids == [c["id"] for c in ranking]


def test_the_hull_and_the_matches_use_the_reference(ranked):
    hull = json.loads((ranked / "hull_references.json").read_text())["references"]
    assert [r["id"] for r in hull] == ["nacl-rock-salt"]  # SrTiO3 is outside Na-Cl
    ranking = lines(ranked / "ranking.jsonl")
    rock_salts = [c for c in ranking if c["constraint"]["space_group"] == 225]
    assert rock_salts and all(c["matches_reference"] == ["nacl-rock-salt"] for c in rock_salts)
    assert all(c["matches_reference"] == [] for c in ranking if c["constraint"]["space_group"] != 225)
    assert min(c["e_above_hull"] for c in ranking) > -0.2  # rock salt itself is on the hull


def test_the_ranking_rule_with_targets():
    def candidate(i, energy, gap):
        return {"id": f"c{i}", "status": "ok", "reduced_formula": "NaCl", "energy_per_atom": energy,
                "e_above_hull": energy + 3.0, "predicted": {"band_gap": gap}}

    targets = {"band_gap": PropertyTarget(name="band_gap", minimum=4.0, maximum=5.0)}
    found = [candidate(0, -3.0, 6.0), candidate(1, -2.9, 4.5), candidate(2, -3.1, None),
             {"id": "c3", "status": "failed: H produced no structure"}]
    ranked = rank_candidates(found, targets)
    # c0: 0.0 + 1.0 (1 eV above the interval); c1: 0.1 + 0 (inside); c2: no gap predicted; c3 failed
    assert [c["id"] for c in ranked] == ["c1", "c0", "c2", "c3"]
    assert [c["rank"] for c in ranked] == [1, 2, 3, None]
    assert ranked[0]["score"] == pytest.approx(0.1) and ranked[1]["score"] == pytest.approx(1.0)
    assert [c["id"] for c in rank_candidates(found, {})] == ["c2", "c0", "c1", "c3"]  # energies alone


def test_resume_skips_finished_candidates(ranked, reference_csv, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(ranked, out)
    before = lines(ranked / "candidates.jsonl")
    text = (out / "candidates.jsonl").read_text().splitlines()
    (out / "candidates.jsonl").write_text(text[0] + "\n" + text[1][:40])  # interrupted while writing line 2
    (out / "ranking.jsonl").unlink()
    result = invoke("rank", *TINY, "--reference", reference_csv, "-o", out, "--resume")
    assert result.exit_code == 0, result.output
    after = lines(out / "candidates.jsonl")
    assert [c["id"] for c in after] == [c["id"] for c in before]
    assert after[0] == before[0]  # kept, not recomputed
    for old, new in zip(before[1:], after[1:]):  # recomputed from the same seeds
        assert new["seed"] == old["seed"] and new["energy_per_atom"] == pytest.approx(old["energy_per_atom"], abs=1e-4)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["resumed"]) == 1
    assert manifest["timing"]["candidates_this_session"] == len(before) - 1
    assert [c["id"] for c in lines(out / "ranking.jsonl")] == [c["id"] for c in lines(ranked / "ranking.jsonl")]
    other = invoke("rank", *TINY[:-6], "-n", "3", "--relaxer-option", "steps=5", "-o", out, "--resume")
    assert other.exit_code == 2 and "other settings (n 2, not 3)" in other.stderr


@pytest.mark.parametrize("arguments, phrase", [
    (["--formula", "NaXx"], "Xx"),
    (["--g", "nope"], "unknown constraint generator (G) 'nope'"),
    (["--relaxer-option", "steps=-1"], "steps must be an integer >= 0"),
    (["--predictor", "band_gap=nope"], "unknown property predictor 'nope'"),
    (["--predictor", "colour=megnet-bandgap"], "unknown property"),
    (["--reference", "missing.csv"], "missing.csv: no such file"),
    (["--band-gap", "abc"], "band_gap"),
    (["--overwrite", "--resume"], "exclude each other"),
    (["-n", "0"], "-n"),
    (["--elemental-references", "missing.json.gz"], "missing.json.gz"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, arguments, phrase):
    base = ["--formula", "NaCl", "--g", "prior", "--h", "pyxtal", "--top-k", "1", "-n", "1"]
    result = invoke("rank", *base, *arguments, "-o", tmp_path / "out")
    assert result.exit_code == 2 and phrase in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "out").exists()


def test_an_occupied_directory_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    base = ["--formula", "NaCl", "--g", "prior", "--h", "pyxtal", "--top-k", "1", "-n", "1", "-o", tmp_path / "out"]
    for flags, phrase in (([], "not empty"), (["--overwrite"], "holds no crystalgf rank output"),
                          (["--resume"], "holds no crystalgf rank output")):
        result = invoke("rank", *base, *flags)
        assert result.exit_code == 2 and phrase in result.stderr and result.stderr.count("\n") == 1
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]
