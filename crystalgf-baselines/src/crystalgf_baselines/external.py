"""Running a structure generator installed in another environment (its dependencies conflict with ours)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from crystalgf.errors import GenerationError, InvalidInputError


def setting(plugin: str, value: str | None, option: str, variable: str, what: str) -> str:
    """``value``, or the environment variable ``variable``; a one-line error naming both when neither is set."""
    value = value or os.environ.get(variable)
    if not value:
        raise InvalidInputError(f"H {plugin}: {what} is not configured; set --h-option {option}=... or {variable}")
    return value


def executable(plugin: str, value: str | None, option: str, variable: str, what: str) -> str:
    """Like :func:`setting`, for a program (a path, or a name on ``PATH``) that must exist."""
    program = setting(plugin, value, option, variable, what)
    if shutil.which(program) is None:
        raise InvalidInputError(f"H {plugin}: {what} {program} not found; set --h-option {option}=... or {variable}")
    return program


def run_tool(plugin: str, command: Sequence[str], hint: str, cwd: Path | None = None,
             env: Mapping[str, str] | None = None) -> None:
    """Run ``command`` (a list, no shell); its stdout is discarded.

    A command that cannot be started is an :class:`InvalidInputError` ending with ``hint`` (the option to
    fix); a non-zero exit is a :class:`GenerationError` carrying the last line of its stderr.
    """
    try:
        done = subprocess.run(list(command), cwd=cwd, env=None if env is None else dict(env),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    except OSError as error:
        raise InvalidInputError(f"H {plugin}: cannot run {command[0]} ({error.strerror}); {hint}") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {done.returncode}"
        raise GenerationError(f"H {plugin}: {Path(command[0]).name} failed: {last}")
