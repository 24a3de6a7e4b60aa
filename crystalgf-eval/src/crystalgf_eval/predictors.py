"""Property predictors: matgl's MEGNet/M3GNet models and CHGNet energies, as plugins.

matgl models load offline from a folder holding matgl's pretrained-model folders (each with
``model.json``, ``model.pt``, ``state.pt``): the ``model_dir`` option, else
``$CRYSTALGF_MATGL_MODELS``, else matgl's cache ``~/.cache/matgl``. Checkpoints are read with
``weights_only=True`` only.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from pymatgen.core import Structure

from crystalgf.errors import InvalidInputError, MissingWeightsError
from crystalgf.interfaces import PropertyPredictor

ENVIRONMENT_VARIABLE = "CRYSTALGF_MATGL_MODELS"
MATGL_CACHE = Path.home() / ".cache" / "matgl"


class MatglPredictor(PropertyPredictor):
    """Base of the matgl predictors: finds the model folder, loads it once, predicts per structure."""

    model_name: ClassVar[str]

    def __init__(self, model_dir: str | None = None):
        candidates = [Path(p) / self.model_name for p in (model_dir, os.environ.get(ENVIRONMENT_VARIABLE)) if p]
        candidates = candidates or [MATGL_CACHE / self.model_name]
        self.path = candidates[0]
        if not (self.path / "model.pt").is_file():
            raise MissingWeightsError(
                f"predictor {self.name}", [self.path],
                f"put matgl's {self.model_name} folder there, or pass --option {self.name}.model_dir=DIR / set "
                f"{ENVIRONMENT_VARIABLE} to the folder that holds it",
            )

    def weights_files(self) -> list[Path]:
        return sorted(self.path.glob("*.pt"))

    @cached_property
    def _model(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from matgl.data.transformer import Normalizer

        torch.serialization.add_safe_globals([Normalizer])
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            logging.getLogger("matgl").setLevel(logging.ERROR)
            return self._load().eval()

    def _load(self) -> Any:
        import matgl

        return matgl.load_model(str(self.path))

    def _predict_one(self, structure: Structure) -> float:
        return float(self._model.predict_structure(structure))

    def predict(self, structures: Sequence[Structure]) -> list[float | None]:
        """Predictions; ``None`` where the model returns no finite number (e.g. a graph without edges)."""
        import torch

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = [self._predict_one(structure) for structure in structures]
        return [value if math.isfinite(value) else None for value in values]


class MegnetBandGap(MatglPredictor):
    """MEGNet multi-fidelity band gap, eV, at one fidelity: ``pbe`` (default), ``gllb-sc``, ``hse`` or ``scan``."""

    name = "megnet-bandgap"
    description = "MEGNet-MP-2019.4.1-BandGap-mfi (matgl), PBE fidelity by default, eV"
    property_name = "band_gap"
    unit = "eV"
    model_name = "MEGNet-MP-2019.4.1-BandGap-mfi"
    FIDELITIES: ClassVar[dict[str, int]] = {"pbe": 0, "gllb-sc": 1, "hse": 2, "scan": 3}

    def __init__(self, model_dir: str | None = None, fidelity: str = "pbe"):
        if fidelity not in self.FIDELITIES:
            raise InvalidInputError(f"unknown band-gap fidelity {fidelity!r}; known: {', '.join(self.FIDELITIES)}")
        super().__init__(model_dir)
        self.fidelity = fidelity

    def _predict_one(self, structure: Structure) -> float:
        import torch

        state = torch.tensor([self.FIDELITIES[self.fidelity]])
        return float(self._model.predict_structure(structure, state_attr=state))


class MegnetFormationEnergy(MatglPredictor):
    """MEGNet formation energy per atom, eV/atom."""

    name = "megnet-eform"
    description = "MEGNet-MP-2018.6.1-Eform (matgl), eV/atom"
    property_name = "formation_energy_per_atom"
    unit = "eV/atom"
    model_name = "MEGNet-MP-2018.6.1-Eform"


class M3gnetFormationEnergy(MatglPredictor):
    """M3GNet formation energy per atom, eV/atom.

    Its checkpoint predates matgl 4 and names its Set2Set readout differently; the keys are
    renamed on load. See docs/predictors.md for its measured error under matgl 4.
    """

    name = "m3gnet-eform"
    description = "M3GNet-MP-2018.6.1-Eform (matgl), eV/atom; see docs/predictors.md for its error"
    property_name = "formation_energy_per_atom"
    unit = "eV/atom"
    model_name = "M3GNet-MP-2018.6.1-Eform"

    def _load(self) -> Any:
        import torch
        from matgl.models import M3GNet, TransformedTargetModel

        arguments = torch.load(self.path / "model.pt", map_location="cpu", weights_only=True)
        state = torch.load(self.path / "state.pt", map_location="cpu", weights_only=True)
        model = TransformedTargetModel(model=M3GNet(**arguments["model"]["init_args"]),
                                       target_transformer=arguments["target_transformer"])
        state = {key.replace("model.readout.set2set.", "model.readout."): v for key, v in state.items()}
        result = model.load_state_dict(state, strict=False)
        parameters = {name for name, _ in model.named_parameters()}
        missing = [key for key in result.missing_keys if key in parameters]
        if missing or result.unexpected_keys:
            raise MissingWeightsError(f"predictor {self.name}", [self.path],
                                      f"the checkpoint does not fit this matgl version ({missing[:2]})")
        return model


class ChgnetEnergy(PropertyPredictor):
    """CHGNet energy per atom of the structure as given (no relaxation), eV/atom."""

    name = "chgnet"
    description = "CHGNet energy per atom (packaged weights), eV/atom"
    property_name = "energy_per_atom"
    unit = "eV/atom"

    @cached_property
    def _model(self) -> Any:
        from chgnet.model import CHGNet

        with contextlib.redirect_stdout(io.StringIO()):
            return CHGNet.load(verbose=False, use_device="cpu")

    def predict(self, structures: Sequence[Structure]) -> list[float | None]:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            predictions = self._model.predict_structure(list(structures), task="e", batch_size=16)
        return [float(p["e"]) for p in predictions]
