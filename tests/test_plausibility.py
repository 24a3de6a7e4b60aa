"""Issue #21: the plausibility criterion, the diffusion H's symmetric clean-up, and files that read back."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
from ase.io import read as ase_read
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.cif import CifWriter

from crystalgf.datasets import StructureTable
from crystalgf.output import RunOutput, UnreadableStructureError, check_readable
from crystalgf.pipeline import build_structures, jobs_for_constraints
from crystalgf.schema import Constraint, PluginVersion
from crystalgf.symmetry.analysis import constraint_from_structure
from crystalgf.symmetry.detect import detect_space_group
from crystalgf.validity import PLAUSIBLE_RATIO, covalent_radius, plausibility, structure_plausible, structure_valid

VERSIONS = {"h": PluginVersion(name="test", package="tests", version="0")}


def srtio3(oxygen_x: float = 0.5) -> Structure:
    return Structure(Lattice.cubic(3.905), ["Sr", "Ti", "O", "O", "O"],
                     [[0, 0, 0], [0.5, 0.5, 0.5], [oxygen_x, 0.5, 0.0], [oxygen_x, 0.0, 0.5], [0.0, 0.5, 0.5]])


def test_real_crystals_pass_the_criterion(data_dir):
    for name in ("train", "val", "test"):
        for entry in StructureTable().read(data_dir / "mp_20_sample" / f"{name}.csv").entries:
            check = plausibility(entry.structure)
            assert check.plausible and check.ratio > 0.72, (entry.id, check)
    carbon = StructureTable().read(data_dir / "carbon_24" / "val.csv", limit=200).entries
    assert all(structure_plausible(entry.structure) for entry in carbon)


def test_squeezed_atoms_fail_the_criterion_where_the_05_angstrom_rule_lets_them_through():
    assert plausibility(srtio3()).plausible
    # README example of issue #21: Ti-O at 0.54 Å passes CDVAE's 0.5 Å rule
    squeezed = Structure(Lattice.cubic(3.905), ["Sr", "Ti", "O", "O", "O"],
                         [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5 + 0.54 / 3.905], [0.5, 0, 0], [0, 0.5, 0]])
    assert structure_valid(squeezed)
    check = plausibility(squeezed)
    assert not check.plausible and check.elements == ("O", "Ti") and check.distance == pytest.approx(0.54, abs=1e-3)
    assert check.ratio == pytest.approx(0.54 / (covalent_radius("Ti") + covalent_radius("O")), abs=1e-4)
    assert not structure_plausible(squeezed)
    # exactly at the threshold: a C-C pair at 0.7 x (2 x 0.73 Å) passes, just under it fails
    for factor, expected in ((1.0005, True), (0.995, False)):
        distance = PLAUSIBLE_RATIO * 2 * covalent_radius("C") * factor
        pair = Structure(Lattice.cubic(10), ["C", "C"], [[0, 0, 0], [distance / 10, 0, 0]])
        assert structure_plausible(pair) is expected and plausibility(pair).plausible is expected
    # an atom too close to its own periodic image, a cell of no volume
    assert not structure_plausible(Structure(Lattice.cubic(0.9), ["C"], [[0, 0, 0]]))
    flat = Structure(Lattice([[3, 0, 0], [0, 3, 0], [0, 0, 1e-6]]), ["Na"], [[0, 0, 0]])
    assert not structure_plausible(flat) and not plausibility(flat).plausible


def test_collapsed_orbits_are_neither_plausible_nor_written(tmp_path):
    """The unreadable CIFs of issue #21: two F of one orbit 0.0025 Å apart."""
    collapsed = Structure(Lattice.cubic(5.0), ["Ca", "F", "F"], [[0, 0, 0], [0.25, 0.25, 0.25], [0.2505, 0.25, 0.25]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UnreadableStructureError):
            check_readable(str(CifWriter(collapsed)), "cif", collapsed)
    check_readable(str(CifWriter(srtio3())), "cif", srtio3())

    class Replay:
        name = "replay"

        def __init__(self, structures):
            self.structures = structures

        def generate(self, constraints, seeds):
            return self.structures[:len(constraints)]

    constraint = Constraint.from_dict({"formula": "Sr1Ti1O3", "space_group": 221,
                                       "wyckoff": [["Sr", "1a"], ["Ti", "1b"], ["O", "3c"]]})
    jobs = jobs_for_constraints([("x", [constraint])], per_item=3, seed=0)
    for structure_format in ("cif", "extxyz"):
        output = RunOutput(tmp_path / structure_format, structure_format)
        summary = build_structures(Replay([srtio3(), collapsed, None]), jobs, output, VERSIONS)
        assert [r.id for r in summary.records] == ["x-0000"] and summary.failed == ["x-0001", "x-0002"]
        assert summary.reasons["x-0001"].startswith("implausible: F-F at 0.00 Å")
        assert summary.reasons["x-0002"].startswith("H made no structure")
        record = json.loads((tmp_path / structure_format / "results.jsonl").read_text())
        assert record["plausible"] is True and record["closest_pair"] == "O-Ti"
        assert record["min_distance_ratio"] == pytest.approx(3.905 / 2 / (covalent_radius("Ti") + covalent_radius("O")),
                                                             abs=1e-3)


def _clashing_sample(data_dir):
    """A real MP-20 crystal (its true k and f) with a general-position orbit moved next to another orbit's atom."""
    from crystalgf_diffusion.data import encode_structure
    from crystalgf_diffusion.wyckoff import orbit_template

    for entry in StructureTable().read(data_dir / "mp_20_sample" / "test.csv").entries:
        sample = encode_structure(entry.structure)
        templates = [orbit_template(sample.space_group, label) for _, label in sample.orbits]
        movable = [i for i, t in enumerate(templates) if t.free.sum() == 3 and np.allclose(t.linear[0], np.eye(3))
                   and np.allclose(t.offset[0], 0)]
        if len(sample.orbits) >= 3 and movable:
            moved = movable[0]
            other = (moved + 1) % len(templates)
            parameters = sample.parameters.copy()
            parameters[moved] = templates[other].expand(parameters[other])[0] + 0.01  # 0.01 in fractions: < 0.2 Å
            return entry, sample, parameters
    raise AssertionError("no crystal with a general position")


def test_cleanup_makes_a_clashing_sample_plausible_and_keeps_its_symmetry(data_dir):
    from crystalgf_diffusion.cleanup import relieve
    from crystalgf_diffusion.data import decode
    from crystalgf_diffusion.lattice import MASKS

    entry, sample, parameters = _clashing_sample(data_dir)
    before = decode(sample, sample.k, parameters)
    assert not structure_plausible(before)
    k, f, worst = relieve(sample.space_group, sample.orbits, sample.k, parameters, MASKS[sample.family].numpy())
    after = decode(sample, k, f)
    assert worst >= PLAUSIBLE_RATIO and structure_plausible(after)
    assert after.composition == before.composition
    assert after.composition.reduced_composition == entry.structure.composition.reduced_composition
    assert detect_space_group(after, 0.001) == detect_space_group(before, 0.001)
    found = constraint_from_structure(after, symprec=0.001)
    assert found.space_group == sample.space_group
    # a crystal with nothing to fix comes back unchanged
    k_same, f_same, _ = relieve(sample.space_group, sample.orbits, sample.k, sample.parameters,
                                MASKS[sample.family].numpy())
    assert np.allclose(k_same, sample.k) and np.allclose(f_same, sample.parameters)


def test_cleanup_moves_the_lattice_where_no_atom_can_move():
    """Every orbit fixed (rock salt, 4a/4b of Fm-3m): only the lattice can part the atoms."""
    from crystalgf_diffusion.cleanup import relieve
    from crystalgf_diffusion.data import decode, encode_constraint
    from crystalgf_diffusion.lattice import MASKS

    constraint = Constraint.from_dict({"formula": "Na4Cl4", "space_group": 225, "wyckoff": [["Na", "4a"], ["Cl", "4b"]]})
    sample = encode_constraint(constraint)
    k = np.zeros(6)
    k[5] = np.log(3.2)  # a = 3.2 Å: Na-Cl 1.6 Å, under 0.7 x (1.66 + 1.02) = 1.88 Å
    f = np.zeros((2, 3))
    assert not structure_plausible(decode(sample, k, f))
    k2, f2, worst = relieve(sample.space_group, sample.orbits, k, f, MASKS[sample.family].numpy())
    structure = decode(sample, k2, f2)
    assert structure_plausible(structure) and worst >= PLAUSIBLE_RATIO
    assert detect_space_group(structure, 0.01) == 225


def _varied_constraints(data_dir) -> list[tuple[str, Constraint]]:
    """True constraints of varied chemistry: the MP-20 sample's test and val crystals, some Perov-5 and
    Carbon-24 ones."""
    items = []
    for path, limit in ((data_dir / "mp_20_sample" / "test.csv", None), (data_dir / "mp_20_sample" / "val.csv", None),
                        (data_dir / "perov_5" / "test.csv", 30), (data_dir / "carbon_24" / "val.csv", 30)):
        for entry in StructureTable().read(path, limit=limit).entries:
            items.append((f"{path.parent.name}-{entry.id}", constraint_from_structure(entry.structure, symprec=0.01)))
    return items


def test_every_written_file_reads_back_in_pymatgen_and_ase(data_dir, tmp_path):
    """Issue #21: a few hundred structures of the diffusion H (default checkpoint, few steps so that many draws
    need the clean-up and redraws), written as CIF and as extended XYZ; every file and frame reads back in
    pymatgen and ASE with its record's composition, every record is plausible, the rest is counted as failed."""
    from crystalgf_diffusion.generator import DiffusionGenerator

    items = _varied_constraints(data_dir)
    assert len(items) >= 240
    jobs = jobs_for_constraints([(item_id, [constraint]) for item_id, constraint in items], per_item=1, seed=0)
    made = DiffusionGenerator(steps=8).generate([job.constraint for job in jobs], [job.seed for job in jobs])

    class Replay:
        name = "replay"

        def __init__(self):
            self.position = 0

        def generate(self, constraints, seeds):
            self.position += len(constraints)
            return made[self.position - len(constraints):self.position]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for structure_format in ("cif", "extxyz"):
            directory = tmp_path / structure_format
            summary = build_structures(Replay(), jobs, RunOutput(directory, structure_format), VERSIONS, batch_size=64)
            assert len(summary.records) + len(summary.failed) == len(jobs)
            assert len(summary.failed) <= 0.05 * len(jobs)  # no plausible draw within the redraws: reported, not written
            assert set(summary.failed) == {job.record_id for job, s in zip(jobs, made) if s is None}
            records = [json.loads(line) for line in (directory / "results.jsonl").read_text().splitlines()]
            assert len(records) == len(summary.records) and all(r["plausible"] for r in records)
            if structure_format == "cif":
                for record in records:
                    path = directory / record["structure_file"]
                    expected = Composition(record["formula"])
                    assert Structure.from_file(path).composition == expected, path
                    assert AseAtomsAdaptor.get_structure(ase_read(path)).composition == expected, path
            else:
                frames = ase_read(directory / "structures.extxyz", index=":")
                assert len(frames) == len(records)
                for frame, record in zip(frames, records):
                    assert frame.info["id"] == record["id"]
                    structure = AseAtomsAdaptor.get_structure(frame)
                    assert structure.composition == Composition(record["formula"])
                    assert structure_plausible(structure)
                text = (directory / "structures.extxyz").read_text()
                assert len(ase_read(io.StringIO(text), index=":", format="extxyz")) == len(records)


def test_eval_reports_plausibility_beside_cdvae_validity(tmp_path):
    from crystalgf.interfaces import EvaluationBatch
    from crystalgf.plugins import PluginRegistry
    from crystalgf_eval.services import CachedServices

    squeezed = Structure(Lattice.cubic(3.905), ["Sr", "Ti", "O", "O", "O"],
                         [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5 + 0.54 / 3.905], [0.5, 0, 0], [0, 0.5, 0]])
    batch = EvaluationBatch(ids=["good", "squeezed"], structures=[srtio3(), squeezed], records=[None, None])
    result = PluginRegistry.discover().create("evaluator", "validity").evaluate(batch, CachedServices(tmp_path, {}, None))
    good, bad = result["per_structure"]["good"], result["per_structure"]["squeezed"]
    assert good["plausible"] and good["structural"] and good["closest_pair"] == "O-Ti"
    assert bad["structural"] and not bad["plausible"] and bad["min_distance"] == pytest.approx(0.54, abs=1e-3)
    assert result["summary"]["plausible"] == 0.5 and result["summary"]["structural"] == 1.0
    assert result["summary"]["min_distance_ratio"] == bad["min_distance_ratio"]
