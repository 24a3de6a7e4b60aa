"""Checkpoints: ``config.json`` (architecture, training record) beside ``model.pt`` (a plain state
dict of tensors, loaded with ``torch.load(weights_only=True)``: a checkpoint cannot run code)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from crystalgf.manifest import write_json
from crystalgf_diffusion.model import Denoiser, DenoiserConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.pt"


def save_checkpoint(directory: Path, model: Denoiser, record: dict[str, Any]) -> None:
    """Write the weights, then the config (with ``record``: data, epochs, losses, hardware)."""
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / (WEIGHTS_FILE + ".tmp")
    torch.save({name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}, temporary)
    temporary.replace(directory / WEIGHTS_FILE)
    write_json(directory / CONFIG_FILE, {"model": model.config.to_dict(), **record})


def sampling_settings(config: dict[str, Any], noise: float | None = None,
                      steps: int | None = None) -> tuple[float, int]:
    """Sampling noise and steps: those given, else the checkpoint's own choice (``sampling`` in its
    config), else deterministic steps (noise 0) and 100 steps."""
    stored = config.get("sampling", {})
    return (stored.get("noise", 0.0) if noise is None else noise), (stored.get("steps", 100) if steps is None else steps)


def load_checkpoint(directory: Path, device: str = "cpu") -> tuple[Denoiser, dict[str, Any]]:
    """The model (in eval mode) and the config record of a checkpoint directory."""
    config = json.loads((directory / CONFIG_FILE).read_text())
    model = Denoiser(DenoiserConfig.from_dict(config["model"]))
    state = torch.load(directory / WEIGHTS_FILE, map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval(), config
