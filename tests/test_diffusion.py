"""The diffusion H's building blocks on real data: lattice masks, orbit expansion, exact composition,
seeding, checkpoint round trip (a tiny model trained here for two epochs)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition

from crystalgf.datasets import ConstraintTable, StructureTable
from crystalgf_diffusion.checkpoint import PACKAGED_CHECKPOINT, load_checkpoint, save_checkpoint
from crystalgf_diffusion.data import collate, decode, encode_constraint, encode_structure
from crystalgf_diffusion.diffusion import prepare, sample, training_loss
from crystalgf_diffusion.lattice import FAMILIES, constrain_k, k_to_lattice, lattice_to_k
from crystalgf_diffusion.model import Denoiser, DenoiserConfig
from crystalgf_diffusion.wyckoff import orbit_template


@pytest.mark.parametrize("family", FAMILIES)
def test_any_k_gives_a_lattice_of_its_family(family):
    k = constrain_k(torch.randn(64, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64),
                    torch.full((64,), FAMILIES.index(family)))
    for matrix in k_to_lattice(k):
        a, b, c = matrix.norm(dim=1).tolist()
        alpha, beta, gamma = (math.degrees(math.acos(float(matrix[i] @ matrix[j] / (matrix[i].norm() * matrix[j].norm()))))
                              for i, j in ((1, 2), (0, 2), (0, 1)))
        if family in {"orthorhombic", "tetragonal", "cubic"}:
            assert alpha == pytest.approx(90, abs=1e-3) and beta == pytest.approx(90, abs=1e-3) and gamma == pytest.approx(90, abs=1e-3)
        if family in {"tetragonal", "hexagonal"}:
            assert a == pytest.approx(b, rel=1e-5)
        if family == "cubic":
            assert a == pytest.approx(c, rel=1e-5)
        if family == "hexagonal":
            assert gamma == pytest.approx(120, abs=1e-3) and alpha == pytest.approx(90, abs=1e-3)
        if family == "monoclinic":
            assert alpha == pytest.approx(90, abs=1e-3) and gamma == pytest.approx(90, abs=1e-3)


def test_k_round_trip_keeps_the_metric(data_dir):
    entries = StructureTable().read(data_dir / "mp_20_sample" / "test.csv", limit=20).entries
    for entry in entries:
        matrix = torch.tensor(entry.structure.lattice.matrix)[None]
        rebuilt = k_to_lattice(lattice_to_k(matrix))
        assert torch.allclose(rebuilt @ rebuilt.transpose(1, 2), matrix @ matrix.transpose(1, 2), atol=1e-6)


def test_orbit_expansion_matches_pyxtal_for_every_position():
    from crystalgf.symmetry.wyckoff import pyxtal_group

    rng = np.random.default_rng(0)
    for group in (1, 14, 62, 139, 166, 194, 221, 225, 227, 230):
        for position in pyxtal_group(group).Wyckoff_positions:
            representative = np.mod(position.ops[0].operate(rng.random(3)), 1.0)
            mine = orbit_template(group, position.get_label()).expand(representative)
            expected = np.mod([op.operate(representative) for op in position.ops], 1.0)
            assert np.abs((mine - expected + 0.5) % 1.0 - 0.5).max() < 1e-8


def test_real_structures_survive_encoding(data_dir):
    matcher = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)
    for name in ("perov_5/val.csv", "mp_20_sample/val.csv"):
        for entry in StructureTable().read(data_dir / name, limit=15).entries:
            encoded = encode_structure(entry.structure)
            rebuilt = decode(encoded, encoded.k, encoded.parameters)
            assert matcher.get_rms_dist(rebuilt, entry.structure)[0] < 5e-3  # symmetrised at 0.01 Å


@pytest.fixture(scope="module")
def tiny_model(data_dir):
    torch.manual_seed(0)
    entries = StructureTable().read(data_dir / "perov_5" / "val.csv", limit=48).entries
    samples = [encode_structure(e.structure, e.properties) for e in entries]
    model = Denoiser(DenoiserConfig(layers=2, hidden=32, atom_dim=32, property_dim=16, fourier=4, heads=2, time_dim=16))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        loss, _ = training_loss(model, prepare(collate(samples)), generator=torch.Generator().manual_seed(0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_generated_structures_obey_real_constraints_exactly(tiny_model, constraints_csv):
    constraints = [e.constraint for e in ConstraintTable().read(constraints_csv, limit=30).entries]
    samples = [encode_constraint(c) for c in constraints]
    batch = prepare(collate(samples))
    k, f = sample(tiny_model, batch, list(range(len(samples))), steps=5)
    offset = 0
    for constraint, item, lattice_k in zip(constraints, samples, k):
        structure = decode(item, lattice_k.numpy(), f[offset:offset + len(item.orbits)].numpy())
        offset += len(item.orbits)
        assert structure.composition == Composition(constraint.counts)
        # An untrained model places atoms badly, but every operation of the group maps the
        # structure onto itself exactly.
        assert_invariant(structure, constraint.space_group)


def assert_invariant(structure, space_group):
    from crystalgf.symmetry.wyckoff import pyxtal_group

    coordinates = np.mod(structure.frac_coords, 1.0)
    species = [site.species_string for site in structure]
    for op in pyxtal_group(space_group).Wyckoff_positions[0].ops:
        moved = np.mod(op.operate_multi(coordinates), 1.0)
        for position, element in zip(moved, species):
            distance = np.abs((coordinates - position + 0.5) % 1.0 - 0.5).max(axis=1)
            assert any(d < 1e-5 and s == element for d, s in zip(distance, species))


def test_factorised_edge_mlp_equals_the_mlp_of_the_concatenation(constraints_csv):
    from crystalgf_diffusion.model import Layer, all_pair_edges

    torch.manual_seed(0)
    config = DenoiserConfig.small()
    layer = Layer(config)
    batch = collate([encode_constraint(e.constraint) for e in ConstraintTable().read(constraints_csv, limit=4).entries])
    edges = all_pair_edges(batch["atom_crystal"])
    h = torch.randn(len(batch["atom_crystal"]), config.hidden)
    fourier = torch.randn(edges.shape[1], 6 * config.fourier)
    lattice = torch.randn(len(batch["atom_crystal"]), 6)
    h.requires_grad_(True)
    expected = layer.edge(torch.cat([h[edges[1]], h[edges[0]], fourier, lattice[edges[1]]], dim=-1))
    found = layer.messages(h, edges, fourier, lattice)
    assert torch.allclose(found, expected, atol=1e-5)
    weight = torch.randn_like(expected)  # training: the same gradients
    expected_grads = torch.autograd.grad((expected * weight).sum(), [h, layer.edge[0].weight])
    found_grads = torch.autograd.grad((found * weight).sum(), [h, layer.edge[0].weight])
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(found_grads, expected_grads))
    with torch.no_grad():  # the in-place path of sampling
        assert torch.allclose(layer.messages(h, edges, fourier, lattice), expected, atol=1e-5)


@pytest.mark.parametrize("noise", [0.0, 1.0])
def test_sampling_is_seeded_per_crystal(tiny_model, constraints_csv, noise):
    constraints = [e.constraint for e in ConstraintTable().read(constraints_csv, limit=6).entries]
    batch = prepare(collate([encode_constraint(c) for c in constraints]))
    first = sample(tiny_model, batch, [1, 2, 3, 4, 5, 6], steps=4, noise=noise)
    again = sample(tiny_model, batch, [1, 2, 3, 4, 5, 6], steps=4, noise=noise)
    other = sample(tiny_model, batch, [9, 2, 3, 4, 5, 6], steps=4, noise=noise)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0][0], other[0][0]) and torch.allclose(first[0][1:], other[0][1:], atol=1e-5)


def test_checkpoint_round_trip(tiny_model, tmp_path):
    save_checkpoint(tmp_path, tiny_model, {"note": "test"})
    loaded, record = load_checkpoint(tmp_path)
    assert record["note"] == "test"
    for name, tensor in tiny_model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name])
    with pytest.raises(Exception):
        torch.save({"evil": object()}, tmp_path / "model.pt")
        load_checkpoint(tmp_path)


def test_train_command_writes_and_resumes_a_checkpoint(data_dir, tmp_path):
    import json

    from click.testing import CliRunner

    from crystalgf.cli import main

    common = ["train", "h", "--data", str(data_dir / "perov_5" / "val.csv"), "--limit", "24", "--batch-size", "12",
              "--property", "band_gap"]
    args = [*common, "-o", str(tmp_path / "ckpt")]
    assert CliRunner().invoke(main, [*args, "--epochs", "1"], catch_exceptions=False).exit_code == 0
    resumed = CliRunner().invoke(main, [*args, "--epochs", "2", "--resume"], catch_exceptions=False)
    assert resumed.exit_code == 0
    straight = CliRunner().invoke(main, [*common, "-o", str(tmp_path / "straight"), "--epochs", "2"],
                                  catch_exceptions=False)
    assert straight.exit_code == 0
    # an interrupted and resumed run ends with the same weights as an uninterrupted one
    resumed_model, straight_model = load_checkpoint(tmp_path / "ckpt")[0], load_checkpoint(tmp_path / "straight")[0]
    for name, tensor in straight_model.state_dict().items():
        assert torch.equal(tensor, resumed_model.state_dict()[name]), name

    assert [entry["epoch"] for entry in json.loads((tmp_path / "ckpt" / "history.json").read_text())] == [1, 2]
    model, record = load_checkpoint(tmp_path / "ckpt")
    assert record["epochs"] == 2 and record["conditioning"] == "band_gap"
    again = CliRunner().invoke(main, [*args, "--epochs", "1"])
    assert again.exit_code == 2 and "not empty" in again.stderr


def test_training_keeps_the_lowest_validation_loss_and_stops_when_it_no_longer_falls(data_dir, tmp_path):
    import json

    from click.testing import CliRunner

    from crystalgf.cli import main

    args = ["train", "h", "--data", str(data_dir / "perov_5" / "val.csv"), "--limit", "16", "--batch-size", "8",
            "--validation", str(data_dir / "mp_20_sample" / "val.csv"), "--epochs", "12", "--patience", "2",
            "-o", str(tmp_path / "ckpt")]
    assert CliRunner().invoke(main, args, catch_exceptions=False).exit_code == 0
    history = json.loads((tmp_path / "ckpt" / "history.json").read_text())
    best = min(history, key=lambda entry: entry["validation_loss"])
    assert len(history) == 12 or history[-1]["epoch"] - best["epoch"] == 2
    assert len(history) < 12  # a few crystals of perovskites do not keep lowering the loss on MP-20 crystals
    record = load_checkpoint(tmp_path / "ckpt")[1]
    assert record["epochs"] == best["epoch"] and record["last"] == best and record["selected_by"] == "validation loss"
    without = CliRunner().invoke(main, ["train", "h", "--data", str(data_dir / "perov_5" / "val.csv"),
                                        "--patience", "2", "-o", str(tmp_path / "other")])
    assert without.exit_code == 2 and "--patience needs --validation" in without.stderr
    assert not (tmp_path / "other").exists()


def test_shipped_checkpoint_generates_exact_constraints(tmp_path):
    from click.testing import CliRunner

    from crystalgf.cli import main

    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--h", "diffusion", "--formula", "SrTiO3", "--band-gap", "1.5",
                                       "--space-group", "99", "-n", "3", "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0
    import json

    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 3
    for record in records:
        assert record["reduced_formula"] == "SrTiO3" and record["generators"]["h"]["name"] == "diffusion"
    manifest = json.loads((out / "manifest.json").read_text())
    assert any(path.endswith("model.pt") for path in manifest["weights"])


def test_default_checkpoint_is_the_general_one_selected_on_validation():
    import json

    from crystalgf.config import DEFAULT_H
    from crystalgf_diffusion.generator import DiffusionGenerator

    assert DEFAULT_H == "diffusion"
    folder = DiffusionGenerator().weights_files()[0].parent
    record = json.loads((folder / "config.json").read_text())
    assert folder.name == "general-small" and record["conditioning"] == "all"
    assert {Path(p).parent.name for p in record["data"]} == {"perov_5", "mp_20_sample", "carbon_24"}
    history = json.loads((folder / "history.json").read_text())
    assert record["epochs"] == min(history, key=lambda entry: entry["validation_loss"])["epoch"] < len(history)
    # sampling settings chosen on validation are the checkpoint's defaults; explicit options win
    generator = DiffusionGenerator()
    assert (generator.noise, generator.steps) == (record["sampling"]["noise"], record["sampling"]["steps"]) == (0.25, 60)
    assert DiffusionGenerator(steps=100, noise=0).steps == 100
    plain = DiffusionGenerator(checkpoint="perov5-small")
    assert (plain.noise, plain.steps) == (0.0, 100)


def test_redraws_replace_only_structures_that_hide_their_group_or_are_implausible(data_dir):
    from crystalgf.plugins import PluginRegistry
    from crystalgf.symmetry.analysis import constraint_from_structure
    from crystalgf.symmetry.detect import detect_space_group
    from crystalgf.validity import structure_plausible

    entries = StructureTable().read(data_dir / "mp_20_sample" / "test.csv", limit=24).entries
    constraints = [constraint_from_structure(e.structure, symprec=0.01) for e in entries]
    registry, seeds = PluginRegistry.discover(), list(range(len(constraints)))
    # Without the clean-up the model alone often puts atoms too close; those come back as None without redraws.
    raw = registry.create("h", "diffusion", steps=10, noise=0, cleanup=False)._draw(constraints, seeds)
    once = [s if structure_plausible(s) else None for s in raw]  # what retries=0 returns
    assert sum(s is None for s in once) >= 6
    redrawn = registry.create("h", "diffusion", steps=10, noise=0, cleanup=False).generate(constraints, seeds)
    shown = [s is not None and detect_space_group(s, 0.1) == c.space_group for s, c in zip(once, constraints)]
    assert not all(shown)
    for first, second, kept, draw in zip(once, redrawn, shown, raw):
        if kept:  # an acceptable first draw stays
            assert np.allclose(first.frac_coords, second.frac_coords)
        assert second is None or (structure_plausible(second) and second.composition == draw.composition)
    assert sum(s is None for s in redrawn) < sum(s is None for s in once)
    # With the symmetric clean-up (the default) every first draw is plausible and shows its group.
    cleaned = registry.create("h", "diffusion", steps=20, noise=0, retries=0).generate(constraints, seeds)
    assert all(s is not None and structure_plausible(s) and detect_space_group(s, 0.1) == c.space_group
               for s, c in zip(cleaned, constraints))
    assert all(s.composition == r.composition for s, r in zip(cleaned, raw))


def test_missing_checkpoint_is_explained(tmp_path):
    from click.testing import CliRunner

    from crystalgf.cli import main

    result = CliRunner().invoke(main, ["run", "--h", "diffusion", "--h-option", f"checkpoint={tmp_path}",
                                       "--formula", "NaCl", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "weights not found" in result.stderr and "crystalgf train h" in result.stderr


def test_unconditioned_h_ignores_the_targets_that_steer_the_conditioned_h():
    from crystalgf.plugins import PluginRegistry
    from crystalgf.schema import Constraint, PropertyTarget

    def srtio3(band_gap: float) -> Constraint:
        return Constraint(formula="SrTiO3", space_group=99, wyckoff=[("Sr", "1a"), ("Ti", "1b"), ("O", "1b"), ("O", "2c")],
                          properties={"band_gap": PropertyTarget(name="band_gap", value=band_gap)})

    registry = PluginRegistry.discover()
    constraints, seeds = [srtio3(0.2), srtio3(6.0)], [5, 5]
    plain = registry.create("h", "diffusion-unconditioned", steps=20).generate(constraints, seeds)
    steered = registry.create("h", "diffusion", steps=20, guidance=3.0).generate(constraints, seeds)
    assert np.allclose(plain[0].lattice.matrix, plain[1].lattice.matrix, atol=1e-5)  # float noise of the batch row
    assert np.allclose(plain[0].frac_coords, plain[1].frac_coords, atol=1e-5)
    assert not np.allclose(steered[0].lattice.matrix, steered[1].lattice.matrix, atol=1e-3)
    for structure in plain + steered:
        assert structure.composition.reduced_formula == "SrTiO3"


def test_shipped_mp20_checkpoint_is_found_by_name_and_keeps_real_constraints(data_dir):
    from crystalgf.plugins import PluginRegistry
    from crystalgf.symmetry.analysis import constraint_from_structure
    from crystalgf.symmetry.detect import detect_space_group

    entries = StructureTable().read(data_dir / "mp_20_sample" / "test.csv", limit=4).entries
    constraints = [constraint_from_structure(e.structure, symprec=0.01) for e in entries]
    generator = PluginRegistry.discover().create("h", "diffusion", checkpoint="mp20-sample-small", steps=20)
    assert generator.weights_files()[0].parent.name == "mp20-sample-small"
    for constraint, structure in zip(constraints, generator.generate(constraints, [0, 1, 2, 3])):
        assert structure.composition == Composition(constraint.counts)
        assert detect_space_group(structure, 0.01) == constraint.space_group


def test_a_sub_batch_equals_collating_those_crystals(data_dir):
    from crystalgf_diffusion.batch import select

    samples = [encode_structure(e.structure, e.properties)
               for e in StructureTable().read(data_dir / "mp_20_sample" / "val.csv", limit=12).entries]
    chosen = [7, 2, 11, 0, 5]
    expected = collate([samples[i] for i in chosen])
    picked = select(collate(samples), torch.tensor(chosen))
    assert expected.keys() == picked.keys()
    for name, tensor in expected.items():
        assert torch.equal(picked[name], tensor), name


def test_pair_list_is_every_ordered_pair_within_each_crystal_source_major(constraints_csv):
    from crystalgf_diffusion.model import all_pair_edges

    batch = collate([encode_constraint(e.constraint) for e in ConstraintTable().read(constraints_csv, limit=9).entries])
    crystal = batch["atom_crystal"]
    expected = torch.stack(torch.nonzero(crystal[:, None] == crystal[None, :], as_tuple=True))
    assert torch.equal(all_pair_edges(crystal), expected)


def test_training_stops_at_its_time_limit_after_a_whole_epoch(data_dir, tmp_path):
    import json

    from click.testing import CliRunner

    from crystalgf.cli import main

    args = ["train", "h", "--data", str(data_dir / "perov_5" / "val.csv"), "--limit", "12", "--batch-size", "6",
            "--epochs", "50", "--max-minutes", "0.00001", "--device", "cpu", "-o", str(tmp_path / "ckpt")]
    assert CliRunner().invoke(main, args, catch_exceptions=False).exit_code == 0
    assert len(json.loads((tmp_path / "ckpt" / "history.json").read_text())) == 1
    assert load_checkpoint(tmp_path / "ckpt")[1]["epochs"] == 1


@pytest.mark.parametrize("kind, device", [("h", "gpu0"), ("h", "meta"), ("g", "tpu")])
def test_train_rejects_a_device_it_cannot_use(data_dir, tmp_path, kind, device):
    from click.testing import CliRunner

    from crystalgf.cli import main

    data = data_dir / ("perov_5/val.csv" if kind == "h" else "crystalgf_constraints/constraints.csv")
    result = CliRunner().invoke(main, ["train", kind, "--data", str(data), "--device", device, "-o", str(tmp_path / "ckpt")])
    assert result.exit_code == 2 and result.stderr == f"error: device {device!r} is not one of cpu, cuda, cuda:N, mps, auto\n"
    assert not (tmp_path / "ckpt").exists()


def test_train_checks_every_input_before_writing(data_dir, tmp_path):
    from click.testing import CliRunner

    from crystalgf.cli import main

    (tmp_path / "val.csv").write_text("material_id,formula\n1,NaCl\n")
    result = CliRunner().invoke(main, ["train", "h", "--data", str(data_dir / "perov_5" / "val.csv"), "--limit", "4",
                                       "--validation", str(tmp_path / "val.csv"), "-o", str(tmp_path / "ckpt")])
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and "missing column(s) cif" in result.stderr
    assert not (tmp_path / "ckpt").exists()


def test_a_model_loads_from_a_checkpoint_in_one_line(tmp_path):
    from crystalgf.errors import MissingWeightsError

    model = Denoiser.from_checkpoint("perov5-small")
    assert not model.training and model.config.layers >= 1
    assert Denoiser.from_checkpoint().config == Denoiser.from_checkpoint(PACKAGED_CHECKPOINT).config  # general-small
    with pytest.raises(MissingWeightsError, match="model.pt"):
        Denoiser.from_checkpoint(tmp_path)
