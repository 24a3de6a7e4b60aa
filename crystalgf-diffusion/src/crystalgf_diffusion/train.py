"""Training of the diffusion H: Adam 1e-3 with ReduceLROnPlateau (factor 0.6, patience 30) as in the
method, gradient clipping, an EMA of the weights (which is what gets shipped), the training state
saved every minute and after the last epoch, for resumption after interruption. With a validation set the checkpoint holds
the EMA weights of the epoch with the lowest validation loss, and training can stop early.
Works on collated tensors only (no structure libraries), on the CPU or a GPU."""

from __future__ import annotations

import copy
import json
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crystalgf.manifest import now, package_versions
from crystalgf.errors import InvalidInputError, describe_exception
from crystalgf_diffusion.checkpoint import load_training_state, save_checkpoint
from crystalgf_diffusion.batch import select, to_device
from crystalgf_diffusion.diffusion import prepare, training_loss
from crystalgf_diffusion.lattice import BIASES, MASKS
from crystalgf_diffusion.model import Denoiser, DenoiserConfig

STATE_FILE = "train_state.pt"


@dataclass
class TrainingSettings:
    epochs: int = 200
    batch_size: int = 256
    learning_rate: float = 1e-3
    property_dropout: float = 0.2
    ema_decay: float = 0.999
    clip: float = 1.0
    seed: int = 0
    patience: int | None = None
    """Stop after this many epochs without a lower validation loss (None: train all epochs)."""
    time_limit: float | None = None
    """Stop after the epoch during which this many seconds of training have passed (None: no limit)."""
    device: str = "cpu"
    save_interval: float = 60.0
    """Seconds between saves of the training state (and, without validation, of the checkpoint); the
    last epoch is always saved. Each save writes the model, its EMA and Adam's moments."""


def train(model_config: DenoiserConfig, train_batch: dict[str, torch.Tensor],
          validation_batch: dict[str, torch.Tensor] | None, directory: Path, settings: TrainingSettings,
          record: dict[str, Any], on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> Denoiser:
    """Train (or resume from ``directory``) on collated crystals and keep the EMA weights as the
    checkpoint there: those of the last epoch, or with a validation set those of the epoch with the
    lowest validation loss. The same seed gives the same draws on every device."""
    random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    device = torch.device(settings.device)
    model = Denoiser(model_config)
    set_lattice_statistics(model, train_batch["k"], train_batch["family"])
    model.to(device)
    ema = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.6, patience=30, min_lr=1e-5)
    history: list[dict[str, float]] = []
    start = 0
    generator = torch.Generator().manual_seed(settings.seed)
    state_path = directory / STATE_FILE
    if state_path.is_file():  # resume
        state = load_training_state(state_path)
        try:
            model.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"].cpu())
            generator.set_state(state["noise_rng"].cpu())
        except Exception as error:  # noqa: BLE001 - another network (--preset) or a foreign state
            raise InvalidInputError(f"{state_path}: does not fit this training (same --preset and --property?): "
                                    f"{describe_exception(error)}") from None
        start = int(state["epoch"])
        history = json.loads((directory / "history.json").read_text()) if (directory / "history.json").is_file() else []
    data = to_device(train_batch, device)
    count = len(train_batch["k"])
    validation = prepare(to_device(validation_batch, device)) if validation_batch else None
    started = saved_at = time.perf_counter()
    unsaved: dict[str, float] | None = None

    def describe(entry: dict[str, float]) -> dict[str, Any]:
        return {**record, "epochs": entry["epoch"], "selected_by": "validation loss" if validation else "last epoch",
                "settings": settings.__dict__, "last": entry, "date": now(), "versions": package_versions(),
                "hardware": hardware(device), "seconds_this_session": round(time.perf_counter() - started, 1)}

    def persist(entry: dict[str, float]) -> None:
        if validation is None:
            save_checkpoint(directory, ema, describe(entry))
        _save_state(directory, model, ema, optimizer, scheduler, generator, int(entry["epoch"]), history)

    for epoch in range(start, settings.epochs):
        best = best_epoch(history)
        if validation is not None and settings.patience and best and epoch - best["epoch"] >= settings.patience:
            break
        model.train()
        order = torch.from_numpy(np.random.default_rng(settings.seed + epoch).permutation(count))
        losses = []
        for first in range(0, count, settings.batch_size):
            batch = prepare(select(data, order[first:first + settings.batch_size]))
            loss, _ = training_loss(model, batch, settings.property_dropout, generator)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
            optimizer.step()
            with torch.no_grad():
                averages, currents = list(ema.parameters()), list(model.parameters())
                torch._foreach_mul_(averages, settings.ema_decay)
                torch._foreach_add_(averages, currents, alpha=1 - settings.ema_decay)
            losses.append(loss.detach())
        entry = {"epoch": epoch + 1, "train_loss": float(np.mean(torch.stack(losses).tolist())),
                 "lr": optimizer.param_groups[0]["lr"]}
        if validation is not None:
            ema.eval()
            with torch.no_grad():
                entry["validation_loss"] = training_loss(ema, validation, 0.0, torch.Generator().manual_seed(0))[0].item()
        scheduler.step(entry.get("validation_loss", entry["train_loss"]))
        history.append(entry)
        if validation is not None and (best is None or entry["validation_loss"] < best["validation_loss"]):
            save_checkpoint(directory, ema, describe(entry))
        unsaved = entry
        if time.perf_counter() - saved_at >= settings.save_interval:
            persist(unsaved)
            unsaved, saved_at = None, time.perf_counter()
        if on_epoch is not None:
            on_epoch(epoch + 1, entry)
        if settings.time_limit is not None and time.perf_counter() - started >= settings.time_limit:
            break
    if unsaved is not None:
        persist(unsaved)
    return ema.eval()


def hardware(device: torch.device) -> str:
    """The machine and device that trained, for the record."""
    text = f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    return f"{text}, {torch.cuda.get_device_name(device)}" if device.type == "cuda" else text


def best_epoch(history: Sequence[dict[str, float]]) -> dict[str, float] | None:
    """The history entry with the lowest validation loss (the first of equals), if any has one."""
    scored = [entry for entry in history if "validation_loss" in entry]
    return min(scored, key=lambda entry: entry["validation_loss"]) if scored else None


def set_lattice_statistics(model: Denoiser, k: torch.Tensor, family: torch.Tensor) -> None:
    """Mean and spread of each free lattice coefficient over the training crystals ((B, 6) k, (B,) family)."""
    mask, bias = MASKS[family], BIASES[family]
    free = (k - bias) * mask
    count = mask.sum(0).clamp(min=1)
    mean = free.sum(0) / count
    std = (((free - mean) * mask) ** 2).sum(0).div(count).sqrt().clamp(min=0.01)
    model.k_mean.copy_(mean)
    model.k_std.copy_(std)


def _save_state(directory: Path, model: Denoiser, ema: Denoiser, optimizer, scheduler, generator: torch.Generator,
                epoch: int, history: list[dict[str, float]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "history.json").write_text(json.dumps(history, indent=1))
    temporary = directory / (STATE_FILE + ".tmp")
    torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                "noise_rng": generator.get_state(), "epoch": epoch}, temporary)
    temporary.replace(directory / STATE_FILE)

