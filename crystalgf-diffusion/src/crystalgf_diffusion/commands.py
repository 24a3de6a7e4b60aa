"""``crystalgf train h``: train the diffusion H on structure CSVs."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from crystalgf.datasets import StructureTable, open_csv
from crystalgf.config import PATH
from crystalgf.errors import InvalidInputError, check_device
from crystalgf.output import check_output_directory
from crystalgf.progress import progress_bar
from crystalgf_diffusion.checkpoint import load_training_state
from crystalgf_diffusion.data import collate
from crystalgf_diffusion.dataset import PROPERTY_CHOICES, load_samples
from crystalgf_diffusion.model import DenoiserConfig
from crystalgf_diffusion.train import STATE_FILE, TrainingSettings, train


@click.command("h")
@click.option("--data", "data", multiple=True, required=True, type=PATH,
              help="Training CSV (material_id, cif, property columns); repeat for several.")
@click.option("--validation", type=PATH, help="Validation CSV (loss tracked each epoch).")
@click.option("--property", "conditioning", type=click.Choice(sorted(PROPERTY_CHOICES)), default="none",
              show_default=True, help="Properties to condition on (all: band gap and formation energy).")
@click.option("--preset", type=click.Choice(["small", "full"]), default="small", show_default=True,
              help="small: the shipped CPU model; full: the method's 6 x 512 network.")
@click.option("--epochs", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--patience", type=click.IntRange(min=1),
              help="Stop after N epochs without a lower validation loss (needs --validation).")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N rows of each CSV (smoke runs).")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True),
              help="Stop after the epoch during which this much training time has passed.")
@click.option("--device", default="auto", show_default=True,
              help="cpu, cuda, cuda:N, or auto (a GPU where torch sees one).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("-o", "--output", required=True, type=PATH, help="Checkpoint directory.")
@click.option("--resume", is_flag=True, help="Continue the training state in the output directory.")
def train_h(data: tuple[Path, ...], validation: Path | None, conditioning: str, preset: str, epochs: int,
            batch_size: int, patience: int | None, limit: int | None, max_minutes: float | None, device: str, seed: int,
            output: Path, resume: bool) -> None:
    """Train the diffusion structure generator; the EMA weights are written to OUTPUT once a minute and
    after the last epoch (with --validation: whenever the validation loss reaches a new low)."""
    device = check_device(device, torch.cuda.is_available())
    if patience and not validation:
        raise InvalidInputError("--patience needs --validation (it watches the validation loss)")
    for path in (*data, *([validation] if validation else [])):
        open_csv(path, StructureTable.required)  # every input readable before anything is written
    if not resume:
        check_output_directory(output, overwrite=False)
    elif not (output / STATE_FILE).is_file():
        raise InvalidInputError(f"{output} holds no training state to resume")
    else:
        load_training_state(output / STATE_FILE)  # safe and sound before the data are read
    cache = output / "cache"
    progress = progress_bar()
    with progress:
        train_set, failed = [], 0
        for path in data:
            samples, bad = load_samples(path, cache, conditioning, limit,
                                        lambda items, d: progress.track(items, description=d))
            train_set += samples
            failed += bad
        validation_set = load_samples(validation, cache, conditioning, limit)[0] if validation else []
        config = DenoiserConfig.small() if preset == "small" else DenoiserConfig()
        task = progress.add_task("training", total=epochs)
        record = {"data": [str(p) for p in data], "validation": str(validation) if validation else None,
                  "conditioning": conditioning, "train_crystals": len(train_set), "unusable_rows": failed}
        settings = TrainingSettings(epochs=epochs, batch_size=batch_size, seed=seed, patience=patience, device=device,
                                    time_limit=max_minutes * 60 if max_minutes else None)
        train(config, collate(train_set), collate(validation_set) if validation_set else None, output, settings, record,
              on_epoch=lambda epoch, entry: progress.update(
                  task, completed=epoch, description=f"training (loss {entry['train_loss']:.3f})"))
    click.echo(f"checkpoint: {output} ({len(train_set)} crystals, {failed} unusable rows)")
