"""What the benchmark scripts share: paths, the held-out split, G's top-1 with failures counted, hardware."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pymatgen.core import Composition

from crystalgf.datasets import ConstraintTable, holdout_split
from crystalgf.errors import CrystalGFError, InvalidInputError

RESULTS = Path(__file__).parent / "results"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CONSTRAINTS = DATA / "crystalgf_constraints" / "constraints.csv"
MODELS = DATA.parent / "models" / "matgl"

H_OPTIONS = {"diffusion": {"checkpoint": "mp20-sample-small"}}
"""The diffusion H samples with the checkpoint trained on MP-20 (the chemistry and property scale of the requests)."""


def held_out_entries(path: Path = CONSTRAINTS, limit: int | None = None) -> list:
    """Rows of the constraint table whose reduced formula falls in the held-out ("test") part."""
    return [e for e in ConstraintTable().read(path).entries
            if holdout_split(Composition(e.constraint.counts).reduced_formula) == "test"][:limit]


def top1(generator, requests, seed: int) -> list:
    """Top-1 constraint per request (None where G failed); a failing batch is retried one by one."""
    return [found[0] if found else None for found in top_k(generator, requests, 1, seed)]


def top_k(generator, requests, k: int, seed: int) -> list[list]:
    """G's first ``k`` constraints per request ([] where G failed); a failing batch is retried one by one."""
    try:
        return generator.generate(requests, k, seed)
    except CrystalGFError:
        if len(requests) == 1:
            return [[]]
        return [item for request in requests for item in top_k(generator, [request], k, seed)]


def hardware() -> str:
    """The machine in words: the GPU where torch sees one, else CPU cores and torch threads."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, no GPU, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads)")


def use_shared_models() -> None:
    """Point matgl's loader at the shared pretrained models unless the user chose a folder."""
    os.environ.setdefault("CRYSTALGF_MATGL_MODELS", str(MODELS))


def earlier_results(stem: str, **same: Any) -> dict[str, Any]:
    """The ``results`` of ``results/<stem>.json`` when it was measured with the same settings, else {}:
    a run of some pipelines keeps the others' rows."""
    path = RESULTS / f"{stem}.json"
    if not path.is_file():
        return {}
    report = json.loads(path.read_text())
    return report.get("results", {}) if all(report.get(k) == v for k, v in same.items()) else {}


def write_results(stem: str, report: dict[str, Any], markdown: list[str] | None = None) -> None:
    """``results/<stem>.json`` (and ``.md`` when given), replaced whole so a reader never sees half a file."""
    RESULTS.mkdir(exist_ok=True)
    for suffix, text in ((".json", json.dumps(report, indent=2) + "\n"),
                         (".md", "\n".join(markdown or []) + "\n")):
        if suffix == ".md" and markdown is None:
            continue
        temporary = RESULTS / f"{stem}{suffix}.tmp"
        temporary.write_text(text)
        os.replace(temporary, RESULTS / f"{stem}{suffix}")


def generate_structures(generator, constraints, seeds) -> list:
    """H's structure per constraint (None where G gave none or H failed); a failing batch is retried one by one."""
    todo = [i for i, c in enumerate(constraints) if c is not None]
    found: list = [None] * len(constraints)
    try:
        made = generator.generate([constraints[i] for i in todo], [seeds[i] for i in todo])
    except CrystalGFError:
        made = []
        for i in todo:
            try:
                made += generator.generate([constraints[i]], [seeds[i]])
            except CrystalGFError:
                made.append(None)
    for i, structure in zip(todo, made):
        found[i] = structure
    return found


def parse_pipeline(text: str) -> tuple[str, str]:
    """``"G+H"`` -> (G, H)."""
    g, plus, h = text.partition("+")
    if not (g and plus and h):
        raise InvalidInputError(f"pipeline {text!r} is not G+H (e.g. prior+pyxtal)")
    return g, h


def run(main: Callable[[], None]) -> None:
    """Run a benchmark; bad input (unknown plugin, missing weights, malformed option) ends in one line, exit 2."""
    try:
        main()
    except CrystalGFError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
