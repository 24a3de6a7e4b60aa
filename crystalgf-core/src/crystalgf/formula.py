"""Strict parsing and formatting of chemical formulas with integer counts."""

from __future__ import annotations

import math
import re
from functools import reduce

from pymatgen.core.periodic_table import Element

from crystalgf.errors import InvalidInputError

_TOKEN = re.compile(r"[A-Z][a-z]?|[()\[\]]|\d+|\s+")
_CLOSING = {"(": ")", "[": "]"}
_MAX_NESTING = 5


def parse_formula(formula: str) -> dict[str, int]:
    """Element -> count, in order of first appearance (``"Sr1Ti1O3"`` -> ``{"Sr": 1, "Ti": 1, "O": 3}``).

    Element symbols with optional positive integer counts, and groups in parentheses or brackets with
    a count (``"Ca(OH)2"``, pymatgen's ``"Gd(SiOs)2"``); a repeated element is summed. Spaces may
    separate element groups (``"Sr1 Ti1 O3"``) but not split a symbol (``"C o"``) or part it from its count. Raises
    :class:`InvalidInputError` naming the problem.
    """
    text = formula.strip()
    tokens = _TOKEN.findall(text)
    malformed = InvalidInputError(
        f"malformed formula {formula!r}: expected element symbols with integer counts, e.g. SrTiO3 or Ca(OH)2"
    )
    if not text or "".join(tokens) != text:
        raise malformed
    if any(space.isspace() and number.isdigit() for space, number in zip(tokens, tokens[1:])):
        raise malformed  # spaces may separate element groups (pymatgen's "Sr1 Ti1 O3"), not a symbol from its count
    tokens = [token for token in tokens if not token.isspace()]
    position = 0

    def count() -> int:
        nonlocal position
        if position < len(tokens) and tokens[position].isdigit():
            position += 1
            return int(tokens[position - 1])
        return 1

    def group(closing: str | None, depth: int) -> list[tuple[str, int]]:
        nonlocal position
        if depth > _MAX_NESTING:
            raise InvalidInputError(f"malformed formula {formula!r}: groups nested more than {_MAX_NESTING} deep")
        items: list[tuple[str, int]] = []
        while position < len(tokens) and tokens[position] != closing:
            token = tokens[position]
            position += 1
            if token in _CLOSING:
                inner = group(_CLOSING[token], depth + 1)
                position += 1  # the closing bracket
                times = count()
                items += [(symbol, n * times) for symbol, n in inner]
            elif token[0].isupper():
                if not Element.is_valid_symbol(token) or token in {"D", "T"}:
                    raise InvalidInputError(f"unknown element {token!r} in formula {formula!r}")
                items.append((token, count()))
            else:
                raise malformed
        if position == len(tokens) and closing is not None or not items:
            raise malformed
        return items

    counts: dict[str, int] = {}
    for symbol, n in group(None, 0):
        if n == 0:
            raise InvalidInputError(f"malformed formula {formula!r}: element {symbol} has count 0")
        counts[symbol] = counts.get(symbol, 0) + n
    return counts


def parse_elements(elements: str) -> tuple[str, ...]:
    """Parse an element set such as ``"Ni-Sc"`` (also ``,`` or space separated) into sorted symbols."""
    symbols = [s for s in re.split(r"[-,\s]+", elements.strip()) if s]
    if not symbols:
        raise InvalidInputError(f"malformed element set {elements!r}: expected e.g. Ni-Sc")
    for symbol in symbols:
        if not Element.is_valid_symbol(symbol) or symbol in {"D", "T"}:
            raise InvalidInputError(f"unknown element {symbol!r} in element set {elements!r}")
    if len(set(symbols)) != len(symbols):
        raise InvalidInputError(f"element set {elements!r} repeats an element")
    return tuple(sorted(symbols))


def format_formula(counts: dict[str, int]) -> str:
    """Cell formula with explicit counts in the given element order, e.g. ``Sr1Ti1O3``."""
    return "".join(f"{el}{n}" for el, n in counts.items())


def reduce_counts(counts: dict[str, int]) -> tuple[dict[str, int], int]:
    """Divide counts by their greatest common divisor; returns (reduced counts, formula units Z)."""
    z = reduce(math.gcd, counts.values())
    return {el: n // z for el, n in counts.items()}, z


def stoichiometry_pattern(counts: dict[str, int]) -> str:
    """The reduced counts sorted ascending, e.g. SrTiO3 -> ``"1-1-3"``; Sc2Ni6 -> ``"1-3"``."""
    reduced, _ = reduce_counts(counts)
    return "-".join(str(n) for n in sorted(reduced.values()))
