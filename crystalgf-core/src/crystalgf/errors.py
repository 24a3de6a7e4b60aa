"""Exceptions that carry a one-line message meant for the user.

The CLI turns every :class:`CrystalGFError` into ``error: <message>`` on stderr and exit code 2: bad input,
and also a plugin that failed while it ran (:class:`PluginFailedError`, naming the plugin). Exit code 1
with a traceback is left to internal errors of CrystalGF itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path


class CrystalGFError(Exception):
    """Base class: the message is a complete, one-line explanation for the user."""


class InvalidInputError(CrystalGFError, ValueError):
    """A formula, property, constraint, file or option the user gave is not valid."""


def check_number(owner: str, name: str, value: object, minimum: float, *, integer: bool = False,
                 strict: bool = False) -> None:
    """Raise :class:`InvalidInputError` unless option ``name`` of ``owner`` (e.g. ``"H pyxtal"``) is a
    number (an integer where ``integer``) at least ``minimum`` (above it where ``strict``)."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum or (strict and value == minimum):
        bound = f"{'>' if strict else '>='} {minimum}"
        raise InvalidInputError(f"{owner}: {name} must be {'an integer' if integer else 'a number'} {bound} "
                                f"(got {value!r})")


def check_device(name: str, cuda: bool, mps: bool = False) -> str:
    """The compute device a ``device`` option names: ``auto`` (a CUDA GPU where there is one, else the
    CPU), ``cpu``, ``cuda``, ``cuda:N`` or, where the caller supports Apple GPUs, ``mps``; ``cuda`` and
    ``mps`` say whether torch sees such a device. Anything else is an input error."""
    if name == "auto":
        return "cuda" if cuda else "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", name):
        raise InvalidInputError(f"device {name!r} is not one of cpu, cuda, cuda:N, mps, auto")
    if name.startswith("cuda") and not cuda or name == "mps" and not mps:
        raise InvalidInputError(f"device {name}: torch sees no such GPU here (use cpu or auto)")
    return name


class NoWyckoffAssignmentError(InvalidInputError):
    """A composition cannot be placed on the Wyckoff positions of a space group."""


class UnknownPluginError(CrystalGFError):
    """A plugin name that no installed package registers."""

    def __init__(self, kind: str, name: str, known: Sequence[str]):
        listing = ", ".join(sorted(known)) or "none installed"
        super().__init__(f"unknown {kind} {name!r}; known: {listing}")


class MissingWeightsError(CrystalGFError):
    """A plugin's weights (or fitted tables) are not where it looked for them."""

    def __init__(self, plugin: str, looked_in: Sequence[Path | str], how_to_provide: str):
        places = ", ".join(str(p) for p in looked_in)
        super().__init__(f"{plugin}: weights not found (looked in: {places}); {how_to_provide}")


class GenerationError(CrystalGFError):
    """A generator could not produce its output for a valid input."""


class PluginFailedError(GenerationError):
    """A plugin raised an unexpected exception while it ran (not a :class:`CrystalGFError`): one line that
    names the plugin and the exception; the original stays chained as ``__cause__``."""

    def __init__(self, plugin: str, doing: str, error: BaseException):
        super().__init__(f"{plugin} failed {doing}: {describe_exception(error)}")


def describe_exception(error: BaseException) -> str:
    """``Type: first line of the message`` (just ``Type`` without a message)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
