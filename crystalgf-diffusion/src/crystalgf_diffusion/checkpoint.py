"""Checkpoints: ``config.json`` (architecture, training record) beside ``model.pt`` (a plain state
dict of tensors, loaded with ``torch.load(weights_only=True)``: a checkpoint cannot run code).

Loading checks everything: a config that is not JSON or describes no network, a weights file that is
empty, cut off, not a state dict of finite tensors, a pickle that would need code, or tensors that do
not fit the network the config describes are each an :class:`InvalidInputError` of one line naming the
file. The network is built on the ``meta`` device (no memory) and compared with the file's tensors
before it is allocated, so a config cannot ask for more memory than the weights file holds.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch

from crystalgf.errors import InvalidInputError, describe_exception
from crystalgf.manifest import write_json
from crystalgf.weights import locate, places_to_look
from crystalgf_diffusion.model import Denoiser, DenoiserConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.pt"
SHIPPED = Path(__file__).parent / "weights"
"""The checkpoints shipped with the package, by name (``general-small``, ``perov5-small``, ...)."""
PACKAGED_CHECKPOINT = SHIPPED / "general-small"
ENVIRONMENT_VARIABLE = "CRYSTALGF_DIFFUSION_CHECKPOINT"


def checkpoint_directory(checkpoint: str | Path | None = None, what: str = "H diffusion") -> Path:
    """The checkpoint folder to load: ``checkpoint`` (a folder, or the name of a shipped checkpoint), else
    ``$CRYSTALGF_DIFFUSION_CHECKPOINT``, else ``general-small``; a one-line MissingWeightsError where the
    folder lacks its weights or config."""
    return locate(
        what, [shipped_checkpoint(p) for p in places_to_look(checkpoint, ENVIRONMENT_VARIABLE, [PACKAGED_CHECKPOINT])],
        f"pass --h-option checkpoint=DIR (with {WEIGHTS_FILE} and {CONFIG_FILE}) or set {ENVIRONMENT_VARIABLE}; "
        "train one with crystalgf train h",
        holding=(WEIGHTS_FILE, CONFIG_FILE),
    )


def shipped_checkpoint(path: Path) -> Path:
    """``path``, or the shipped checkpoint of that name (e.g. ``mp20-sample-small``) where no such folder exists."""
    return SHIPPED / path.name if not path.exists() and len(path.parts) == 1 and (SHIPPED / path.name).is_dir() else path


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


def read_config(directory: Path) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint, checked: a JSON object whose ``model`` describes a network and
    whose optional ``sampling`` is a mapping."""
    path = directory / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path}: not UTF-8 text; not a checkpoint config") from None
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}); "
                                "not a checkpoint config") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise InvalidInputError(f"{path}: no 'model' mapping; not a checkpoint config of crystalgf train h")
    if not isinstance(config.get("sampling", {}), dict):
        raise InvalidInputError(f"{path}: 'sampling' must be a mapping of noise and steps")
    return config


def load_checkpoint(directory: Path, device: str = "cpu") -> tuple[Denoiser, dict[str, Any]]:
    """The model (in eval mode) and the config record of a checkpoint directory, checked (see the module)."""
    config = read_config(directory)
    try:
        sizes = {k: v for k, v in config["model"].items() if k != "property_ranges"}
        odd = [k for k, v in sizes.items() if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= 65536]
        if odd:
            raise ValueError(f"{odd[0]} must be an integer from 1 to 65536, not {sizes[odd[0]]!r}")
        model_config = DenoiserConfig.from_dict(config["model"])
        with torch.device("meta"):
            shapes = {name: tuple(t.shape) for name, t in Denoiser(model_config).state_dict().items()}
    except Exception as error:  # noqa: BLE001 - unknown keys, wrong types, sizes no network can have
        raise InvalidInputError(f"{directory / CONFIG_FILE}: 'model' describes no network of crystalgf-diffusion "
                                f"({describe_exception(error)})") from None
    state = _load_state(directory / WEIGHTS_FILE)
    _check_state(directory, state, shapes)
    model = Denoiser(model_config)
    model.load_state_dict(state)
    return model.to(device).eval(), config


TRAINING_STATE_KEYS = ("model", "ema", "optimizer", "scheduler", "torch_rng", "noise_rng", "epoch")
"""What ``train_state.pt`` (the resumable state of ``crystalgf train h``) holds."""


def load_training_state(path: Path) -> dict[str, Any]:
    """The resumable training state at ``path``, loaded safely (``weights_only=True``) and checked."""
    what = "a training state of crystalgf train h"
    state = _safe_load(path, what)
    if not isinstance(state, dict) or not set(TRAINING_STATE_KEYS) <= set(state) or not isinstance(state["epoch"], int):
        raise InvalidInputError(f"{path}: not {what} (needs {', '.join(TRAINING_STATE_KEYS)})")
    return state


def _safe_load(path: Path, what: str) -> Any:
    """``torch.load(weights_only=True)`` on the CPU: tensors and plain data only; a file that would run
    code, an empty, cut-off or foreign file are each one line naming the file."""
    if path.stat().st_size == 0:
        raise InvalidInputError(f"{path}: an empty file; not {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):
            raise InvalidInputError(f"{path}: refused: loading it would run code (it holds objects other than "
                                    f"tensors and plain data); not {what}") from None
        raise InvalidInputError(f"{path}: not {what} ({describe_exception(error)})") from None
    except OSError as error:
        if error.filename is not None:  # the file could not be read
            raise
        raise InvalidInputError(f"{path}: not {what}, damaged or cut off ({describe_exception(error)})") from None
    except Exception as error:  # noqa: BLE001 - cut-off or foreign files fail in many ways inside torch.load
        reason = describe_exception(error).split(". ")[0]  # torch's messages run on
        raise InvalidInputError(f"{path}: not {what}, damaged or cut off ({reason})") from None


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    state = _safe_load(path, "the weights of a checkpoint")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise InvalidInputError(f"{path}: not a state dict of named tensors; not the weights of a checkpoint")
    return state


def _check_state(directory: Path, state: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]]) -> None:
    path = directory / WEIGHTS_FILE
    missing = [name for name in shapes if name not in state]
    unexpected = [name for name in state if name not in shapes]
    if missing or unexpected:
        name, what = (missing[0], "lacks") if missing else (unexpected[0], "has the foreign")
        raise InvalidInputError(f"{path}: {what} tensor {name!r} ({len(missing)} missing, {len(unexpected)} foreign) "
                                f"for the network {CONFIG_FILE} describes")
    for name, shape in shapes.items():
        if tuple(state[name].shape) != shape:
            raise InvalidInputError(f"{path}: tensor {name!r} has shape {tuple(state[name].shape)}, the network "
                                    f"{CONFIG_FILE} describes needs {shape}")
        if state[name].is_floating_point() and not torch.isfinite(state[name]).all():
            raise InvalidInputError(f"{path}: tensor {name!r} holds NaN or infinite values")
