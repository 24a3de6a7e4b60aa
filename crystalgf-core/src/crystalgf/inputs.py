"""Reading batch inputs of the CLI: ``requests.csv`` for G and ``constraints.jsonl`` for H.

By default the first invalid row stops everything with a message naming the file and line;
with ``skip_invalid`` such rows are skipped and returned with their reasons.
"""

from __future__ import annotations

import json
from pathlib import Path

from crystalgf.datasets import open_csv, read_text
from crystalgf.errors import CrystalGFError, InvalidInputError
from crystalgf.schema import PROPERTY_UNITS, Constraint, GenerationRequest, PropertyTarget

Skipped = list[tuple[str, str]]
_YES, _NO = {"1", "true", "yes"}, {"", "0", "false", "no"}
REQUEST_COLUMNS = ("id", "formula", "elements", *PROPERTY_UNITS, "space_group", "max_atoms", "exact_cell")
"""The columns of ``requests.csv``; any other named column is an input error (a misspelt target must
not be dropped silently)."""


def request_from_row(row: dict[str, str], default_id: str) -> GenerationRequest:
    """A request from a CSV row with ``id``, ``formula`` or ``elements``, and optional targets."""
    properties = {
        name: PropertyTarget.parse(name, row[name]) for name in PROPERTY_UNITS if (row.get(name) or "").strip()
    }
    space_group = (row.get("space_group") or "").strip()
    max_atoms = (row.get("max_atoms") or "").strip()
    exact_cell = (row.get("exact_cell") or "").strip().lower()
    if exact_cell not in _YES | _NO:
        raise InvalidInputError(f"exact_cell must be true or false (got {row['exact_cell']!r})")
    try:
        extra = {
            **({"space_group": int(space_group)} if space_group else {}),
            **({"max_atoms": int(max_atoms)} if max_atoms else {}),
        }
    except ValueError:
        raise InvalidInputError(f"space_group/max_atoms must be integers (got {space_group!r}, {max_atoms!r})") from None
    return GenerationRequest.from_dict({
        "request_id": (row.get("id") or "").strip() or default_id,
        "formula": (row.get("formula") or "").strip() or None,
        "elements": (row.get("elements") or "").strip() or None,
        "properties": properties,
        "exact_cell": exact_cell in _YES,
        **extra,
    })


def read_requests(path: Path, skip_invalid: bool = False) -> tuple[list[GenerationRequest], Skipped]:
    """Read ``requests.csv`` (columns: ``id``, ``formula`` or ``elements``, optional ``band_gap``,
    ``formation_energy_per_atom``, ``space_group``, ``max_atoms``, ``exact_cell``)."""
    reader = open_csv(path, ())
    columns = set(reader.fieldnames or [])
    unknown = [name for name in reader.fieldnames or [] if name.strip() and name not in REQUEST_COLUMNS]
    if unknown:
        raise InvalidInputError(f"{path}: unknown column {unknown[0]!r}; known: {', '.join(REQUEST_COLUMNS)}")
    repeated = sorted({name for name in reader.fieldnames or [] if (reader.fieldnames or []).count(name) > 1})
    if repeated:
        raise InvalidInputError(f"{path}: column {repeated[0]!r} appears more than once")
    if not columns & {"formula", "elements"}:
        raise InvalidInputError(f"{path}: needs a 'formula' or an 'elements' column")
    requests: list[GenerationRequest] = []
    skipped: Skipped = []
    for line, row in enumerate(reader, start=2):
        try:
            if any(extra.strip() for extra in row.get(None, ())):  # empty trailing fields are harmless
                columns = len(reader.fieldnames or [])
                raise InvalidInputError(f"{columns + len(row[None])} fields, the header has {columns}")
            if (row.get("") or "").strip():  # so are empty columns without a name, but not values in them
                raise InvalidInputError(f"a value {row['']!r} in a column without a name")
            requests.append(request_from_row(row, default_id=f"row{line - 1}"))
        except CrystalGFError as error:
            if not skip_invalid:
                raise InvalidInputError(f"{path} line {line}: {error}") from None
            skipped.append((f"line {line}", str(error)))
    _check_unique_ids(path, [r.request_id for r in requests])
    return requests, skipped


def read_constraints(path: Path, skip_invalid: bool = False) -> tuple[list[tuple[str, Constraint]], Skipped]:
    """Read ``constraints.jsonl`` as written by ``crystalgf constrain``: (id, constraint) per line.

    The optional ``id`` and ``rank`` keys name the item (``<id>-r<rank>``); without them the line number does.
    """
    items: list[tuple[str, Constraint]] = []
    skipped: Skipped = []
    for line, text in enumerate(read_text(path).splitlines(), start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise InvalidInputError("expected a JSON object")
            item_id, rank = data.pop("id", f"line{line}"), data.pop("rank", None)
            if not isinstance(item_id, (str, int)) or not (rank is None or isinstance(rank, int)):
                raise InvalidInputError("id must be a string or an integer, rank an integer")
            item_id = str(item_id)
            items.append((item_id if rank is None else f"{item_id}-r{rank}", Constraint.from_dict(data)))
        except (json.JSONDecodeError, CrystalGFError) as error:
            reason = f"not valid JSON ({error.msg})" if isinstance(error, json.JSONDecodeError) else str(error)
            if not skip_invalid:
                raise InvalidInputError(f"{path} line {line}: {reason}") from None
            skipped.append((f"line {line}", reason))
    if not items and not skipped:
        raise InvalidInputError(f"{path}: no constraints")
    _check_unique_ids(path, [item_id for item_id, _ in items])
    return items, skipped


def _check_unique_ids(path: Path, ids: list[str]) -> None:
    seen: set[str] = set()
    for item_id in ids:
        if item_id in seen:
            raise InvalidInputError(f"{path}: id {item_id!r} appears more than once")
        seen.add(item_id)
