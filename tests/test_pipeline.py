import json

import pytest

from crystalgf.output import RunOutput
from crystalgf.pipeline import build_structures, jobs_for_constraints
from crystalgf.plugins import PluginRegistry
from crystalgf.schema import Constraint, PluginVersion
from crystalgf_baselines.pyxtal_h import PyxtalGenerator


class StopsAfterOneBatch(PyxtalGenerator):
    """PyXtal H that is interrupted on its second call, like a killed job."""

    calls = 0

    def generate(self, constraints, seeds):
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return super().generate(constraints, seeds)


def test_an_interrupted_run_keeps_what_it_finished(tmp_path):
    constraint = Constraint.from_dict({"formula": "Sr1Ti1O3", "space_group": 221,
                                       "wyckoff": [["Sr", "1a"], ["Ti", "1b"], ["O", "3c"]]})
    jobs = jobs_for_constraints([("sto", [constraint])], per_item=6, seed=0)
    output = RunOutput(tmp_path / "out")
    with pytest.raises(KeyboardInterrupt):
        build_structures(StopsAfterOneBatch(), jobs, output, {"h": PluginVersion(name="pyxtal", package="x", version="0")},
                         batch_size=4)
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [f"sto-{k:04d}" for k in range(4)]
    assert len(list((tmp_path / "out" / "structures").glob("*.cif"))) == 4


def test_pyxtal_structures_obey_real_constraints(constraints_csv):
    from crystalgf.datasets import ConstraintTable
    from crystalgf.symmetry.detect import detect_space_group

    entries = ConstraintTable().read(constraints_csv, limit=40).entries
    generator = PluginRegistry.discover().create("h", "pyxtal")
    structures = generator.generate([e.constraint for e in entries], list(range(len(entries))))
    made = [(e, s) for e, s in zip(entries, structures) if s is not None]
    assert len(made) >= 38
    for entry, structure in made:
        assert structure.composition.as_dict() == {k: float(v) for k, v in entry.constraint.counts.items()}
    agree = sum(detect_space_group(s, 0.1) == e.constraint.space_group for e, s in made)
    assert agree / len(made) >= 0.95
