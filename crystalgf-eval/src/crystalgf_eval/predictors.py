"""Property predictors: matgl's MEGNet/M3GNet models and CHGNet energies, as plugins.

matgl models load offline from a folder holding matgl's pretrained-model folders (each with
``model.json``, ``model.pt``, ``state.pt``): the ``model_dir`` option, else
``$CRYSTALGF_MATGL_MODELS``, else the copies packaged with crystalgf-eval (the two MEGNet models,
BSD-3, see ``crystalgf_eval/data/NOTICE``), else matgl's download cache ``~/.cache/matgl``.
Checkpoints are read with ``weights_only=True`` only.

``chgnet-eform`` needs no download at all: CHGNet's energy (weights inside the chgnet package) minus
the MP elemental reference energies (packaged), i.e. a formation energy on the MP2020 scale.
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
from crystalgf.weights import locate, places_to_look

ENVIRONMENT_VARIABLE = "CRYSTALGF_MATGL_MODELS"
MATGL_CACHE = Path.home() / ".cache" / "matgl"
PACKAGED_MODELS = Path(__file__).parent / "data" / "matgl"


class MatglPredictor(PropertyPredictor):
    """Base of the matgl predictors: finds the model folder, loads it once, predicts per structure."""

    model_name: ClassVar[str]

    def __init__(self, model_dir: str | None = None):
        folders = places_to_look(model_dir, ENVIRONMENT_VARIABLE, [PACKAGED_MODELS, MATGL_CACHE])
        self.path = locate(
            f"predictor {self.name}", [folder / self.model_name for folder in folders],
            f"put matgl's {self.model_name} folder there, or pass --option {self.name}.model_dir=DIR / set "
            f"{ENVIRONMENT_VARIABLE} to the folder that holds it",
            holding=("model.pt",),
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


def _as_list(predictions: Any) -> list[dict[str, Any]]:
    """CHGNet's ``predict_structure`` answers a list of one structure with a bare dict."""
    return [predictions] if isinstance(predictions, dict) else list(predictions)


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
            predictions = _as_list(self._model.predict_structure(list(structures), task="e", batch_size=16))
        return [float(p["e"]) for p in predictions]


class ChgnetFormationEnergy(PropertyPredictor):
    """Formation energy per atom on the MP2020 scale, eV/atom: CHGNet's energy per atom minus the MP
    elemental reference energies (both ship with the packages; nothing is downloaded).

    CHGNet was trained on MP's MP2020-corrected energies, so these formation energies are on the scale
    of Materials Project's ``formation_energy_per_atom`` (measured in docs/predictors.md). ``steps`` > 0
    first relaxes each structure with CHGNet, keeping its symmetry (FIRE to ``fmax`` eV/Å); the default
    judges the structure as given. ``None`` for a structure with an element that has no reference or
    that CHGNet cannot take (e.g. an atom with no neighbour within its cutoff).
    """

    name = "chgnet-eform"
    description = "CHGNet energy minus MP elemental references (packaged): MP2020-scale formation energy, eV/atom"
    property_name = "formation_energy_per_atom"
    unit = "eV/atom"

    def __init__(self, steps: int = 0, fmax: float = 0.1, elemental_references: str | None = None,
                 device: str = "cpu"):
        from crystalgf_eval.references import elemental_energies, locate
        from crystalgf_eval.relax import ChgnetRelaxer

        self.relaxer = ChgnetRelaxer(fmax=fmax, steps=steps, device=device)  # checks the options
        self.references_path = locate(elemental_references)
        self.energies = elemental_energies(self.references_path)

    def weights_files(self) -> list[Path]:
        return [*self.relaxer.weights_files(), self.references_path]

    def energies_per_atom(self, structures: Sequence[Structure]) -> list[float | None]:
        """CHGNet energy per atom of each structure (after relaxation where ``steps`` > 0)."""
        if self.relaxer.steps > 0:
            values: list[float | None] = []
            for structure in structures:
                try:
                    values.append(self.relaxer.relax([structure], fix_symmetry=True)[0].energy_per_atom)
                except (ValueError, RuntimeError):  # a graph CHGNet cannot build
                    values.append(None)
            return values
        model = self.relaxer._model
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            try:
                predictions = _as_list(model.predict_structure(list(structures), task="e", batch_size=16))
                return [float(p["e"]) for p in predictions]
            except (ValueError, RuntimeError):  # one structure the batch cannot take: judge one by one
                return [self._energy_one(model, structure) for structure in structures]

    @staticmethod
    def _energy_one(model: Any, structure: Structure) -> float | None:
        try:
            return float(model.predict_structure(structure, task="e")["e"])
        except (ValueError, RuntimeError):
            return None

    def predict(self, structures: Sequence[Structure]) -> list[float | None]:
        from crystalgf_eval.references import formation_energy_per_atom

        return [None if energy is None or not math.isfinite(energy) else
                formation_energy_per_atom(structure.composition, energy, self.energies)
                for structure, energy in zip(structures, self.energies_per_atom(structures))]
