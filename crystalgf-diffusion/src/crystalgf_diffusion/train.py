"""Training of the diffusion H: Adam 1e-3 with ReduceLROnPlateau (factor 0.6, patience 30) as in the
method, gradient clipping, an EMA of the weights (which is what gets shipped), the training state
saved every epoch for resumption after interruption. With a validation set the checkpoint holds
the EMA weights of the epoch with the lowest validation loss, and training can stop early."""

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
from crystalgf_diffusion.checkpoint import save_checkpoint
from crystalgf_diffusion.data import CrystalSample, collate
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


def train(model_config: DenoiserConfig, train_set: Sequence[CrystalSample], validation_set: Sequence[CrystalSample],
          directory: Path, settings: TrainingSettings, record: dict[str, Any],
          on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> Denoiser:
    """Train (or resume from ``directory``) and keep the EMA weights as the checkpoint there: those of
    the last epoch, or with a validation set those of the epoch with the lowest validation loss."""
    random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    model = Denoiser(model_config)
    set_lattice_statistics(model, train_set)
    ema = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.6, patience=30, min_lr=1e-5)
    history: list[dict[str, float]] = []
    start = 0
    generator = torch.Generator().manual_seed(settings.seed)
    state_path = directory / STATE_FILE
    if state_path.is_file():  # resume
        state = torch.load(state_path, weights_only=True)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        generator.set_state(state["noise_rng"])
        start = int(state["epoch"])
        history = json.loads((directory / "history.json").read_text()) if (directory / "history.json").is_file() else []
    validation = prepare(collate(list(validation_set))) if validation_set else None
    started = time.perf_counter()
    for epoch in range(start, settings.epochs):
        best = best_epoch(history)
        if validation is not None and settings.patience and best and epoch - best["epoch"] >= settings.patience:
            break
        model.train()
        order = np.random.default_rng(settings.seed + epoch).permutation(len(train_set))
        losses = []
        for first in range(0, len(order), settings.batch_size):
            batch = prepare(collate([train_set[i] for i in order[first:first + settings.batch_size]]))
            loss, _ = training_loss(model, batch, settings.property_dropout, generator)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
            optimizer.step()
            with torch.no_grad():
                for average, current in zip(ema.parameters(), model.parameters()):
                    average.mul_(settings.ema_decay).add_(current, alpha=1 - settings.ema_decay)
            losses.append(loss.item())
        entry = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "lr": optimizer.param_groups[0]["lr"]}
        if validation is not None:
            ema.eval()
            with torch.no_grad():
                entry["validation_loss"] = training_loss(ema, validation, 0.0, torch.Generator().manual_seed(0))[0].item()
        scheduler.step(entry.get("validation_loss", entry["train_loss"]))
        history.append(entry)
        if validation is None or best is None or entry["validation_loss"] < best["validation_loss"]:
            save_checkpoint(directory, ema, {
                **record, "epochs": epoch + 1, "selected_by": "validation loss" if validation else "last epoch",
                "settings": settings.__dict__, "last": entry, "date": now(), "versions": package_versions(),
                "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
                            f"{torch.get_num_threads()} threads",
                "seconds_this_session": round(time.perf_counter() - started, 1)})
        _save_state(directory, model, ema, optimizer, scheduler, generator, epoch + 1, history)
        if on_epoch is not None:
            on_epoch(epoch + 1, entry)
    return ema.eval()


def best_epoch(history: Sequence[dict[str, float]]) -> dict[str, float] | None:
    """The history entry with the lowest validation loss (the first of equals), if any has one."""
    scored = [entry for entry in history if "validation_loss" in entry]
    return min(scored, key=lambda entry: entry["validation_loss"]) if scored else None


def set_lattice_statistics(model: Denoiser, samples: Sequence[CrystalSample]) -> None:
    """Mean and spread of each free lattice coefficient over the training crystals."""
    k = torch.tensor(np.array([s.k for s in samples]), dtype=torch.float32)
    family = torch.tensor([s.family for s in samples])
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

