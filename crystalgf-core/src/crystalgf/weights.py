"""Finding a plugin's weights (or fitted tables): one rule for every plugin.

The path an option names, else the one an environment variable names, else the plugin's defaults (its
packaged copy, a download cache) in order. A path the user names is the only place looked: a missing one
is an error, never silently replaced by a default.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from crystalgf.errors import MissingWeightsError


def places_to_look(option: str | Path | None, environment_variable: str | None,
                   defaults: Sequence[Path] = ()) -> list[Path]:
    """``[option]`` if given, else ``[$environment_variable]`` if set, else ``defaults``."""
    named = option or (os.environ.get(environment_variable) if environment_variable else None)
    return [Path(named)] if named else list(defaults)


def locate(what: str, places: Sequence[Path], fix: str, holding: Sequence[str] = ()) -> Path:
    """The first of ``places`` that is a file or, where ``holding`` names files, a directory holding them
    all; else :class:`MissingWeightsError` for ``what`` (e.g. ``"G prior"``) naming every place and ``fix``."""
    for place in places:
        present = all((place / name).is_file() for name in holding) if holding else place.is_file()
        if present:
            return place
    raise MissingWeightsError(what, places, fix)
