"""Run manifests: what was run, with which seed, package versions, plugins and weight hashes."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path
from typing import Any

_LIBRARIES = ("numpy", "pymatgen", "pyxtal", "spglib", "ase", "pluggy", "pydantic", "click",
              "torch", "chgnet", "matgl", "transformers", "peft", "vllm")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of every installed ``crystalgf*`` package and of the main libraries (without importing them)."""
    found = {
        dist.metadata["Name"]: dist.version
        for dist in distributions()
        if (dist.metadata["Name"] or "").lower().startswith("crystalgf")
    }
    for name in _LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return dict(sorted(found.items()))


def now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_manifest(command: str, seed: int, settings: dict[str, Any], plugins: dict[str, Any],
                 weights: list[Path]) -> dict[str, Any]:
    """A manifest for a run about to start; ``status`` is ``running`` until :func:`write_json` marks it done
    (``complete``, ``failed`` or ``interrupted``). ``pid`` and ``host`` tell whether a manifest still saying
    ``running`` belongs to a live process or to one that was killed."""
    return {
        "command": command,
        "argv": sys.argv,
        "seed": seed,
        "settings": settings,
        "plugins": plugins,
        "weights": {str(path): sha256_file(path) for path in weights},
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "started": now(),
        "status": "running",
        "pid": os.getpid(),
        "host": platform.node(),
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
