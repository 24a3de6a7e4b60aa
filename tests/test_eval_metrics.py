"""Evaluators on real data with real libraries (pymatgen, SMACT, matminer, matgl, CHGNet)."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from crystalgf.interfaces import EvaluationBatch, NotApplicable
from crystalgf.plugins import PluginRegistry
from crystalgf_eval.batch import add_reference, load_structure_csv
from crystalgf_eval.metrics.validity import composition_valid, structure_valid
from crystalgf_eval.services import CachedServices
from crystalgf_eval.symmetry_accuracy import wyckoff_accuracy
from crystalgf.schema import Constraint


@pytest.fixture(scope="module")
def registry():
    return PluginRegistry.discover()


@pytest.fixture()
def services(tmp_path, registry):
    predictors = {"band_gap": lambda: registry.create("predictor", "megnet-bandgap"),
                  "formation_energy_per_atom": lambda: registry.create("predictor", "megnet-eform")}
    return CachedServices(tmp_path / "cache", predictors, lambda: registry.create("relaxer", "chgnet", steps=0))


def srtio3() -> Structure:
    return Structure.from_spacegroup("Pm-3m", Lattice.cubic(3.905), ["Sr", "Ti", "O"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]])


def test_validity_known_cases():
    assert structure_valid(srtio3())
    too_close = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.06, 0, 0]])  # 0.3 Å apart
    assert not structure_valid(too_close)
    assert composition_valid("SrTiO3") and composition_valid("Fe")
    assert not composition_valid("NaCl2") and not composition_valid("SrO3")


def test_a_set_matches_itself_exactly(registry, services, perov_subset):
    batch, skipped = load_structure_csv(perov_subset)
    add_reference(batch, perov_subset)
    result = registry.create("evaluator", "match-rate").evaluate(batch, services)
    assert skipped == [] and result["summary"]["match_rate"] == 1.0
    assert result["summary"]["rmse"] == pytest.approx(0.0, abs=1e-6)


def test_self_coverage_and_distributions(registry, services, perov_subset):
    batch, _ = load_structure_csv(perov_subset)
    add_reference(batch, perov_subset)
    valid = registry.create("evaluator", "validity").evaluate(batch, services)["summary"]["valid"]
    coverage = registry.create("evaluator", "coverage", preset="perov").evaluate(batch, services)["summary"]
    assert coverage["cov_precision"] == 1.0
    assert coverage["cov_recall"] >= valid - 1e-9
    distributions = registry.create("evaluator", "property-distributions").evaluate(batch, services)["summary"]
    assert all(np.isfinite(distributions[k]) and distributions[k] >= 0
               for k in ("wdist_density", "wdist_num_elements", "wdist_formation_energy"))
    if valid == 1.0:
        assert distributions["wdist_density"] == pytest.approx(0.0)


def test_metrics_that_need_a_reference_say_so(registry, services, perov_subset):
    batch, _ = load_structure_csv(perov_subset)
    for name in ("match-rate", "coverage", "property-distributions", "sun"):
        with pytest.raises(NotApplicable, match="reference"):
            registry.create("evaluator", name).evaluate(batch, services)
    with pytest.raises(NotApplicable, match="records"):
        registry.create("evaluator", "compliance").evaluate(batch, services)


def test_predictors_track_dft_labels(registry, data_dir):
    """Loose checks only: the measured errors are in docs/predictors.md."""
    from crystalgf.datasets import StructureTable

    table = StructureTable().read(data_dir / "mp_20_sample" / "test.csv", limit=30).entries
    gaps = registry.create("predictor", "megnet-bandgap").predict([e.structure for e in table])
    energies = registry.create("predictor", "megnet-eform").predict([e.structure for e in table])
    gap_mae = np.mean([abs(p - e.properties["band_gap"]) for p, e in zip(gaps, table)])
    dft_energies = [e.properties["formation_energy_per_atom"] for e in table]
    assert gap_mae < 0.6
    assert np.corrcoef(energies, dft_energies)[0, 1] > 0.8


def test_missing_predictor_weights_are_explained(registry, tmp_path):
    from crystalgf.errors import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="MEGNet-MP-2019.4.1-BandGap-mfi"):
        registry.create("predictor", "megnet-bandgap", model_dir=str(tmp_path))


def test_sun_flags_duplicates_and_known_structures(registry, services, data_dir):
    from crystalgf.datasets import StructureTable

    reference = StructureTable().read(data_dir / "mp_20_sample" / "val.csv", limit=6).entries
    known = reference[0].structure
    batch = EvaluationBatch(ids=["known", "copy", "new"], structures=[known, known.copy(), srtio3()],
                            records=[None] * 3, reference_ids=[e.id for e in reference],
                            reference=[e.structure for e in reference],
                            reference_properties=[e.properties for e in reference])
    result = registry.create("evaluator", "sun").evaluate(batch, services)
    per = result["per_structure"]
    assert per["known"]["novel"] is False and per["known"]["unique"] is True
    assert per["copy"]["unique"] is False
    assert per["new"]["novel"] is True and per["new"]["unique"] is True
    assert per["known"]["e_above_hull"] >= -1e-6  # a reference structure cannot lie below its own hull
    assert 0.0 <= result["summary"]["balanced_sun"] <= 1.0


def test_chgnet_energies_share_the_mp2020_scale_of_the_elemental_references(registry, data_dir):
    """Why the S.U.N. hull may mix CHGNet energies with MP2020-compatible elemental references: CHGNet's
    formation energies of MP-20 oxides (anion-corrected in MP2020) match their DFT labels."""
    from crystalgf.datasets import StructureTable
    from crystalgf_eval.references import load_elemental_references

    references = {el: e.energy_per_atom for el, e in load_elemental_references(
        data_dir / "mp_reference" / "2023-02-07-mp-elemental-reference-entries.json.gz").items()}
    rows = StructureTable().read(data_dir / "mp_20_sample" / "val.csv").entries
    oxides = [e for e in rows if "O" in e.structure.composition][:10]
    static = registry.create("relaxer", "chgnet", steps=0).relax([e.structure for e in oxides], fix_symmetry=False)
    errors = [abs(r.energy_per_atom - sum(references[el.symbol] * x for el, x in
                                          r.structure.composition.fractional_composition.items())
                  - e.properties["formation_energy_per_atom"]) for e, r in zip(oxides, static)]
    assert len(errors) == 10 and float(np.mean(errors)) < 0.05


def test_wyckoff_accuracy_definition():
    true = Constraint.from_dict({"formula": "Sc2Ni6", "space_group": 194, "wyckoff": "Sc[2c] Ni[6h]"})
    half = Constraint.from_dict({"formula": "Sc2Ni6", "space_group": 194, "wyckoff": "Sc[2a] Ni[6h]"})
    assert wyckoff_accuracy(true, true) == 1.0 and wyckoff_accuracy(half, true) == 0.5
    rock_salt = Constraint.from_dict({"formula": "Na4Cl4", "space_group": 225, "wyckoff": "Na[4a] Cl[4b]"})
    shifted = Constraint.from_dict({"formula": "Na4Cl4", "space_group": 225, "wyckoff": "Na[4b] Cl[4a]"})
    other_group = Constraint.from_dict({"formula": "Na4Cl4", "space_group": 216, "wyckoff": "Na[4a] Cl[4b]"})
    assert wyckoff_accuracy(shifted, rock_salt) == 1.0 and wyckoff_accuracy(other_group, rock_salt) == 0.0
