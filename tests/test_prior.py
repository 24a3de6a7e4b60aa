import csv
import math

import pytest
from pymatgen.core import Composition

from crystalgf.datasets import holdout_split
from crystalgf.errors import MissingWeightsError, NoWyckoffAssignmentError
from crystalgf.pipeline import propose_constraints
from crystalgf.plugins import PluginRegistry
from crystalgf.schema import GenerationRequest, PropertyTarget
from crystalgf_baselines.prior import PACKAGED_TABLE
from crystalgf_baselines.prior_table import PriorTable, fit_prior
from crystalgf_baselines.substitution import SubstitutionRatios, ratio_label


@pytest.fixture(scope="module")
def registry():
    return PluginRegistry.discover()


def mp20_sample(data_dir):
    return [data_dir / "mp_20_sample" / f"{split}.csv" for split in ("train", "val", "test")]


def test_shipped_table_is_reproduced_by_the_fit(constraints_csv, data_dir):
    table = fit_prior(constraints_csv, mp20_sample(data_dir))
    assert table.to_json() == PriorTable.load(PACKAGED_TABLE).to_json()
    assert len(table.crystals) == table.source["train_rows"] + sum(s["train_rows"] for s in table.source["structures"])


def test_prior_never_sees_test_formulas(constraints_csv, data_dir):
    table = PriorTable.load(PACKAGED_TABLE)
    test_formulas = {row["formula"] for row in csv.DictReader(constraints_csv.open())
                     if holdout_split(Composition(row["formula"]).reduced_formula) == "test"}
    test_formulas |= {row["pretty_formula"] for path in mp20_sample(data_dir) for row in csv.DictReader(path.open())
                      if holdout_split(Composition(row["pretty_formula"]).reduced_formula) == "test"}
    seen = {Composition(c[0]).reduced_formula for c in table.crystals}
    assert len(seen) > 1500
    assert not {Composition(f).reduced_formula for f in test_formulas} & seen


@pytest.mark.parametrize("g", ["prior", "forest", "random"])
def test_baseline_g_honours_requests(registry, g):
    generator = registry.create("g", g)
    requests = [
        GenerationRequest(request_id="a", formula="SrTiO3", properties={}),
        GenerationRequest(request_id="b", elements="Ni-Sc"),
        GenerationRequest(request_id="c", formula="NaCl", space_group=225),
    ]
    answers = propose_constraints(generator, requests, top_k=3, seed=1)
    for request, constraints in zip(requests, answers):
        assert 1 <= len(constraints) <= 3
        keys = {(c.cell_formula, c.space_group, tuple(sorted(c.wyckoff_sites))) for c in constraints}
        assert len(keys) == len(constraints)
    assert all(c.space_group == 225 for c in answers[2])
    assert all(set(c.counts) == {"Ni", "Sc"} for c in answers[1])
    assert answers == propose_constraints(generator, requests, top_k=3, seed=1)


def test_prior_ranks_known_patterns_first(registry):
    ranked = registry.create("g", "prior").generate([GenerationRequest(formula="ScNi3")], top_k=5, seed=0)[0]
    scores = [c.score for c in ranked]
    assert scores == sorted(scores, reverse=True)
    assert ranked[0].space_group in {62, 194, 221, 139}


def test_impossible_space_group_and_missing_table(registry, tmp_path):
    with pytest.raises(NoWyckoffAssignmentError, match="no Wyckoff assignment in space group 230"):
        registry.create("g", "prior").generate([GenerationRequest(formula="SrTiO3", space_group=230)], 1, 0)
    with pytest.raises(MissingWeightsError, match="looked in: .*nope.json"):
        registry.create("g", "prior", table=str(tmp_path / "nope.json"))


@pytest.mark.parametrize("g", ["prior", "random", "highest-symmetry"])
def test_exact_cell_requests_keep_the_cell(registry, g):
    request = GenerationRequest(formula="Sc2Ni6", exact_cell=True)
    for constraint in registry.create("g", g).generate([request], top_k=3, seed=0)[0]:
        assert constraint.counts == {"Sc": 2, "Ni": 6}


def test_forest_reads_the_target_property_and_is_normalised(registry):
    generator = registry.create("g", "forest")
    queries = [({"Ba": 1, "Ti": 1, "O": 3}, "formula", {"band_gap": gap}) for gap in (0.0, 3.0)] + \
              [({"Ba": 1, "Ti": 1, "O": 1}, "elements", {"formation_energy_per_atom": -2.0})] + \
              [({"Ba": z, "Ti": z, "O": 3 * z}, "cell", {"band_gap": 3.0}) for z in (1, 4)]
    found = generator.forest.log_probabilities(queries)
    for log_p in found:
        assert sum(math.exp(v) for v in log_p.values()) == pytest.approx(1.0)
    assert found[0] != found[1]
    assert found[3] != found[4]  # an exact cell: the forest reads its number of formula units
    requests = [GenerationRequest(formula=f, properties={"band_gap": PropertyTarget(name="band_gap", value=gap)}) for f in ("LiCoO2", "ScNi3", "CuS")
                for gap in (0.0, 4.0)]
    ranked = [[c.space_group for c in answer] for answer in generator.generate(requests, 5, 0)]
    assert any(ranked[i] != ranked[i + 1] for i in range(0, len(ranked), 2))
    assert ranked == [[c.space_group for c in answer] for answer in registry.create("g", "forest").generate(requests, 5, 0)]


def test_a_reduced_formula_gets_cells_whose_primitive_cell_fits_whatever_the_batch(registry):
    generator = registry.create("g", "forest")
    target = {"band_gap": PropertyTarget(name="band_gap", value=3.0)}
    request = GenerationRequest(formula="BaTiO3", properties=target, max_atoms=20)
    [answer] = generator.generate([request], 5, 0)
    assert all(c.primitive_atoms <= 20 and c.counts["Ba"] * 3 == c.counts["O"] for c in answer)
    # with the group given, the same cell and sites whether alone or in a batch
    given = request.model_copy(update={"space_group": answer[0].space_group})
    alone = generator.generate([given], 3, 0)[0]
    assert generator.generate([request, given], 3, 0)[1] == alone
    assert alone[0].counts == answer[0].counts


def test_substitution_carries_ratios_over_in_electronegativity_order():
    ratios = SubstitutionRatios([{"Na": 1, "Mn": 1, "O": 2}, {"Sr": 1, "Ti": 1, "O": 3}, {"Na": 1, "Cl": 1}])
    shares = ratios.shares(["O", "Fe", "Li"])
    assert sum(share for _, share in shares) == pytest.approx(1.0)
    assert [ratio for ratio, _ in shares] == [{"Li": 1, "Fe": 1, "O": 2}, {"Li": 1, "Fe": 1, "O": 3}]
    assert shares[0][1] > shares[1][1]
    assert ratios.shares(["Li", "Fe", "O", "F"]) == []


def test_element_sets_of_known_compounds_get_a_known_ratio_among_the_first(registry):
    generator = registry.create("g", "prior")
    known: dict[frozenset, set] = {}
    for formula, *_ in generator.prior.crystals:
        composition = Composition(formula)
        known.setdefault(frozenset(e.symbol for e in composition), set()).add(composition.reduced_formula)
    element_sets = sorted((sorted(s) for s in known if len(s) == 3), key="-".join)[:40]
    proposed = [{Composition(ratio).reduced_formula for ratio, _ in generator._ratios(elements, 20)}
                for elements in element_sets]
    assert all(len(ratios) == 3 for ratios in proposed)
    assert sum(bool(ratios & known[frozenset(e)]) for ratios, e in zip(proposed, element_sets)) >= 30


def test_forest_proposes_ratios_of_an_element_set_that_it_learned_with_the_targets(registry):
    assert ratio_label({"O": 4, "Li": 2, "Fe": 2}) == "1-1-2" and ratio_label({"Cl": 1, "Na": 1}) == "1-1"
    generator = registry.create("g", "forest")
    known = {}
    for formula, _, energy, _ in generator.prior.crystals:
        composition = Composition(formula)
        if len(composition) == 3 and energy is not None:
            known.setdefault(frozenset(e.symbol for e in composition), (composition.reduced_formula, energy))
    element_sets = sorted(known, key=lambda s: sorted(s))[:30]
    requests = [GenerationRequest(elements=sorted(s), properties={"formation_energy_per_atom": PropertyTarget(
        name="formation_energy_per_atom", value=known[s][1])}) for s in element_sets]
    answers = generator.generate(requests, 1, 0)
    ratios = [[Composition(r).reduced_formula for r, _ in generator._request_ratios(q)] for q in requests]
    assert all(len(r) == 3 and len(set(r)) == 3 for r in ratios)
    assert sum(known[s][0] == r[0] for s, r in zip(element_sets, ratios)) >= 20  # the training compounds' own ratios
    assert all(set(top.counts) == s and Composition(top.counts).reduced_formula in r
               for [top], s, r in zip(answers, element_sets, ratios))
