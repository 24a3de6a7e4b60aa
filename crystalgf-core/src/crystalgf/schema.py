"""Plain, validated, JSON-serialisable data objects passed between the stages of a run.

``GenerationRequest`` (what the user asks for) -> G -> ``Constraint`` (composition, space group,
Wyckoff sites, targets) -> H -> ``GeneratedCrystal`` (the structure record). Each has
``to_dict``/``from_dict`` and ``to_json``/``from_json``; invalid data raises
:class:`~crystalgf.errors.InvalidInputError` with a one-line message.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    field_validator,
    model_validator,
)
from pymatgen.core import Composition

from crystalgf.errors import InvalidInputError
from crystalgf.formula import format_formula, parse_elements, parse_formula, reduce_counts
from crystalgf.symmetry.assignment import check_wyckoff_assignment
from crystalgf.symmetry.wyckoff import WyckoffSite, centring_factor, check_space_group, split_label

PROPERTY_UNITS: dict[str, str] = {"band_gap": "eV", "formation_energy_per_atom": "eV/atom"}
"""Target properties every stage understands, with their units."""

INPUT_MODES: dict[str, tuple[str, str]] = {
    "formula+band_gap": ("formula", "band_gap"),
    "formula+formation_energy": ("formula", "formation_energy_per_atom"),
    "elements+band_gap": ("elements", "band_gap"),
    "elements+formation_energy": ("elements", "formation_energy_per_atom"),
}
"""The method's four input modes of G: composition kind and target property."""

PROPERTY_BOUNDS: dict[str, tuple[float, float]] = {"band_gap": (0.0, 30.0), "formation_energy_per_atom": (-20.0, 10.0)}
"""The physical range of each target property (in its unit): a target outside it is an input error.
Generous on purpose (known crystals: band gaps up to ~17 eV in Materials Project, formation energies
from about -4.5 to +4.5 eV/atom); they catch typos and unit mix-ups such as ``--band-gap 1e9``."""

MAX_STRUCTURES = 100_000
"""Most structures one ``crystalgf run`` or ``crystalgf generate`` makes (``-n``, times the number of
constraints for ``generate``): split larger jobs into several runs."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise InvalidInputError(describe_validation_error(error)) from None

    @classmethod
    def from_json(cls, text: str) -> Self:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidInputError(f"not valid JSON: {error.msg} at column {error.colno}") from None
        if not isinstance(data, dict):
            raise InvalidInputError("expected a JSON object")
        return cls.from_dict(data)


def describe_validation_error(error: ValidationError) -> str:
    """The first problem of a pydantic error as one line: ``field: message``."""
    first = error.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    location = ".".join(str(part) for part in first["loc"])
    return f"{location}: {message}" if location else message


class PropertyTarget(_Record):
    """A target value or interval for one property, e.g. band gap 1.5 eV or 1.5-2.0 eV."""

    name: str
    value: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.name not in PROPERTY_UNITS:
            raise InvalidInputError(f"unknown property {self.name!r}; known: {', '.join(PROPERTY_UNITS)}")
        unit = PROPERTY_UNITS[self.name]
        if self.unit and self.unit != unit:
            raise InvalidInputError(f"{self.name} is in {unit}, not {self.unit}")
        object.__setattr__(self, "unit", unit)
        interval = (self.minimum, self.maximum)
        if self.value is None and None in interval:
            raise InvalidInputError(f"{self.name}: give a value or both minimum and maximum")
        if self.value is not None and interval != (None, None):
            raise InvalidInputError(f"{self.name}: give a value or an interval, not both")
        numbers = [x for x in (self.value, self.minimum, self.maximum) if x is not None]
        if not all(math.isfinite(x) for x in numbers):
            raise InvalidInputError(f"{self.name} must be a finite number")
        low, high = PROPERTY_BOUNDS[self.name]
        outside = [x for x in numbers if not low <= x <= high]
        if outside:
            raise InvalidInputError(f"{self.name} must be from {low:g} to {high:g} {unit} (got {outside[0]:g} {unit})")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise InvalidInputError(f"{self.name} interval {self.minimum}:{self.maximum} has minimum above maximum")
        return self

    @classmethod
    def parse(cls, name: str, text: str | float) -> PropertyTarget:
        """From ``"1.5"`` (a value) or ``"1.5:2.0"`` (an interval)."""
        raw = str(text).strip()
        try:
            if ":" in raw:
                low, high = raw.split(":", 1)
                return cls(name=name, minimum=float(low), maximum=float(high))
            return cls(name=name, value=float(raw))
        except ValueError as error:
            if isinstance(error, ValidationError):
                raise InvalidInputError(describe_validation_error(error)) from None
            raise InvalidInputError(f"{name} {raw!r} is not a number or an interval like 1.5:2.0") from None

    @property
    def center(self) -> float:
        """The value, or the middle of the interval."""
        if self.value is not None:
            return self.value
        return (self.minimum + self.maximum) / 2  # type: ignore[operator]

    def distance(self, x: float) -> float:
        """How far ``x`` is from the target: from the value, or from the interval (0 inside)."""
        low = self.value if self.value is not None else self.minimum
        high = self.value if self.value is not None else self.maximum
        return max(low - x, x - high, 0.0)  # type: ignore[operator]

    def contains(self, x: float, tolerance: float = 0.0) -> bool:
        """Whether ``x`` hits the target: within ``tolerance`` of the value, or of the interval."""
        return self.distance(x) <= tolerance

    def __str__(self) -> str:
        if self.value is not None:
            return f"{self.value:.3f} {self.unit}"
        return f"{self.minimum:.3f}:{self.maximum:.3f} {self.unit}"


def _check_properties(properties: dict[str, PropertyTarget]) -> dict[str, PropertyTarget]:
    for key, target in properties.items():
        if key != target.name:
            raise InvalidInputError(f"property key {key!r} does not match its target name {target.name!r}")
    return properties


def _normalise_formula(formula: str) -> str:
    return format_formula(parse_formula(formula))


MAX_CELL_ATOMS = 200
"""Most atoms per cell that a request may allow (``max_atoms``, primitive) and that G may place in a
conventional cell: G's search over cells and Wyckoff assignments grows fast with the cell (the shipped
generators learned from conventional cells of at most 68 atoms)."""

DEFAULT_MAX_ATOMS = 30
"""Default ``max_atoms`` (primitive cell): enough for olivine (28 atoms), spinel (14) and corundum (10)."""


Targets = Annotated[dict[str, PropertyTarget], AfterValidator(_check_properties)]
"""Property name -> target, the name repeated in each target."""

Formula = Annotated[str, AfterValidator(_normalise_formula)]
"""A formula, normalised to explicit counts (``Sr1Ti1O3``)."""


class GenerationRequest(_Record):
    """What a user asks G for: a formula (ratio fixed) or an element set (ratio free), plus targets.

    In formula mode G may choose the number of formula units per cell (at most ``max_atoms`` atoms in
    the primitive cell, so a centred group's conventional cell may hold 2, 3 or 4 times as many),
    unless ``exact_cell`` makes the formula the exact cell content (the method's "full formula"): the
    conventional cell, or the primitive cell of a centred group, whose conventional cell G then proposes;
    ``space_group`` fixes the group, leaving G only the Wyckoff sites.
    """

    request_id: str = "request"
    formula: Formula | None = None
    elements: tuple[str, ...] | None = None
    properties: Targets = Field(default_factory=dict)
    space_group: int | None = None
    max_atoms: int = DEFAULT_MAX_ATOMS
    exact_cell: bool = False

    @field_validator("elements", mode="before")
    @classmethod
    def _normalise_elements(cls, elements: Any) -> tuple[str, ...] | None:
        if elements is None:
            return None
        return parse_elements(elements if isinstance(elements, str) else "-".join(elements))

    @field_validator("space_group")
    @classmethod
    def _check_space_group(cls, space_group: int | None) -> int | None:
        return None if space_group is None else check_space_group(space_group)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.formula is None) == (self.elements is None):
            raise InvalidInputError("a request needs exactly one of a formula or an element set")
        if self.exact_cell and self.formula is None:
            raise InvalidInputError("exact_cell needs a formula, not an element set")
        if not 1 <= self.max_atoms <= MAX_CELL_ATOMS:
            raise InvalidInputError(f"max_atoms must be from 1 to {MAX_CELL_ATOMS} (got {self.max_atoms})")
        if self.formula is not None and sum(self.counts.values()) > (MAX_CELL_ATOMS if self.exact_cell else self.max_atoms):
            raise InvalidInputError(
                f"formula {self.formula} has {sum(self.counts.values())} atoms, more than max_atoms={self.max_atoms}"
            )
        return self

    @property
    def mode(self) -> str:
        """``"formula"`` or ``"elements"``."""
        return "formula" if self.formula is not None else "elements"

    @property
    def counts(self) -> dict[str, int]:
        """Element -> count of the formula (formula mode only)."""
        if self.formula is None:
            raise ValueError("an element-set request has no counts")
        return parse_formula(self.formula)

    def cell_options(self, ratio: dict[str, int] | None = None, centring: int = 1) -> list[dict[str, int]]:
        """Conventional cell contents G may choose in a group whose conventional cell holds ``centring``
        primitive cells (:func:`~crystalgf.symmetry.centring_factor`): the exact cell read as the
        conventional cell and, in a centred group, as the primitive one; or ``ratio`` (default: the
        reduced formula) times 1, 2, ... formula units up to ``max_atoms`` atoms per primitive cell."""
        if self.exact_cell:
            cells = [self.counts]
            if centring > 1 and centring * sum(self.counts.values()) <= MAX_CELL_ATOMS:
                cells.append({element: centring * n for element, n in self.counts.items()})
            return cells
        ratio = ratio or reduce_counts(self.counts)[0]
        atoms = sum(ratio.values())
        largest = min(centring * self.max_atoms, MAX_CELL_ATOMS)
        return [{element: n * z for element, n in ratio.items()} for z in range(1, largest // atoms + 1)]

    def allows_cell(self, counts: dict[str, int], space_group: int) -> bool:
        """Whether a conventional cell in a group is one of the request's :meth:`cell_options`."""
        return counts in self.cell_options(reduce_counts(counts)[0], centring_factor(space_group))

    def why_composition_not_honoured(self, composition: Composition, space_group: int) -> str | None:
        """Why a cell of ``composition`` in ``space_group`` (a constraint's, or a structure built to one) is
        not what was asked, or ``None``: element mode, exactly the element set; exact cell, one of the
        :meth:`cell_options` (the formula as the conventional cell or, in a centred group, as the primitive
        one); otherwise the formula's ratio."""
        if self.elements is not None:
            if {element.symbol for element in composition.elements} != set(self.elements):
                return f"the request asked for the elements {'-'.join(self.elements)}"
            return None
        if self.exact_cell:
            counts = {element.symbol: round(amount) for element, amount in composition.items()}
            if composition != Composition(counts) or not self.allows_cell(counts, space_group):
                return (f"the request asked for exactly the cell {self.formula} "
                        "(conventional, or primitive of a centred group)")
            return None
        if composition.reduced_composition != Composition(self.counts).reduced_composition:
            return f"the request asked for the ratio of {self.formula}"
        return None

    def why_not_honoured_by(self, constraint: Constraint) -> str | None:
        """Why G's ``constraint`` does not honour the request, or ``None``: its cell's
        :meth:`why_composition_not_honoured`, another space group than a fixed one, or (unless the cell is
        exact) more than ``max_atoms`` atoms per primitive cell."""
        problem = self.why_composition_not_honoured(Composition(constraint.counts), constraint.space_group)
        if problem is not None:
            return problem
        if self.space_group is not None and constraint.space_group != self.space_group:
            return f"the request fixed space group {self.space_group}"
        if not self.exact_cell and constraint.primitive_atoms > self.max_atoms:
            return f"the request allows at most {self.max_atoms} atoms per primitive cell"
        return None

    @property
    def composition_text(self) -> str:
        """The formula, or the element set joined by ``-``."""
        return self.formula if self.formula is not None else "-".join(self.elements or ())


class Constraint(_Record):
    """What G proposes and H must obey: a cell formula, a space group and the Wyckoff site of every orbit.

    ``cell_formula`` (JSON ``formula``) counts atoms in the conventional cell, e.g. ``Sc2Ni6``
    (:attr:`primitive_atoms` counts the primitive cell);
    ``wyckoff_sites`` (JSON ``wyckoff``) lists ``[element, "2c"]`` pairs whose multiplicities sum
    exactly to those counts.
    """

    cell_formula: Formula = Field(alias="formula")
    space_group: int
    wyckoff_sites: tuple[WyckoffSite, ...] = Field(alias="wyckoff")
    properties: Targets = Field(default_factory=dict)
    generator: str = ""
    score: float | None = None
    request_id: str | None = None

    @field_validator("space_group", mode="before")
    @classmethod
    def _check_space_group(cls, space_group: Any) -> int:
        return check_space_group(space_group)

    @model_validator(mode="before")
    @classmethod
    def _drop_derived(cls, data: Any) -> Any:
        if isinstance(data, dict) and "primitive_atoms" in data:
            data = {key: value for key, value in data.items() if key != "primitive_atoms"}
        return data

    @field_validator("wyckoff_sites", mode="before")
    @classmethod
    def _parse_sites(cls, sites: Any) -> tuple[WyckoffSite, ...]:
        if isinstance(sites, str):  # "Sc[2c] Ni[6h]" as in constraints.csv
            return parse_wyckoff_text(sites)
        if not isinstance(sites, (list, tuple)):
            raise InvalidInputError(f"Wyckoff sites must be a list of [element, label] pairs, not {sites!r}")
        parsed = []
        for site in sites:
            if not isinstance(site, (list, tuple)) or len(site) != 2 or not all(isinstance(x, str) for x in site):
                raise InvalidInputError(f"Wyckoff site {site!r} is not an [element, label] pair of strings")
            element, label = site
            split_label(label)
            parsed.append(WyckoffSite(str(element), str(label)))
        return tuple(parsed)

    @model_validator(mode="after")
    def _check(self) -> Self:
        check_wyckoff_assignment(self.counts, self.space_group, self.wyckoff_sites)
        return self

    @property
    def counts(self) -> dict[str, int]:
        """Element -> atoms per conventional cell."""
        return parse_formula(self.cell_formula)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def primitive_atoms(self) -> int:
        """Atoms in the primitive cell: the conventional cell's over the group's centring factor
        (written with the constraint; derived, so ignored when read)."""
        return sum(self.counts.values()) // centring_factor(self.space_group)

    def is_cell_of(self, composition: Composition) -> bool:
        """Whether ``composition`` (a structure's) is exactly this conventional cell's content."""
        return composition == Composition(self.counts)

    @property
    def wyckoff_text(self) -> str:
        """Sites as in constraints.csv: ``Sc[2c] Ni[6h]``."""
        return " ".join(f"{site.element}[{site.label}]" for site in self.wyckoff_sites)


def parse_wyckoff_text(text: str) -> tuple[WyckoffSite, ...]:
    """Parse ``"Sc[2c] Ni[6h]"`` into sites."""
    sites = []
    for token in text.split():
        element, bracket, rest = token.partition("[")
        if not bracket or not rest.endswith("]") or not element:
            raise InvalidInputError(f"malformed Wyckoff site {token!r}: expected Element[label], e.g. Sc[2c]")
        label = rest[:-1]
        split_label(label)
        sites.append(WyckoffSite(element, label))
    if not sites:
        raise InvalidInputError("no Wyckoff sites given")
    return tuple(sites)


class PluginVersion(_Record):
    """Which plugin made something: its registered name, package and version."""

    name: str
    package: str
    version: str


class GeneratedCrystal(_Record):
    """One generated structure with the constraint it came from and how it was made.

    ``request_id`` names the request or constraint line it answers (the key for pairing with
    ground truth); ``request`` is the request itself where G ran in the same job.
    ``space_group_by_symprec`` maps spglib tolerances (``"0.1"``, ``"0.01"``) to the detected
    international number (``None`` where spglib found none). ``plausible``, ``min_distance_ratio``,
    ``closest_pair`` and ``min_distance`` (Å) report the structure's closest pair against the plausibility
    criterion of :mod:`crystalgf.validity` (every pair at least 0.7 x the sum of its covalent radii; a run
    writes only structures that meet it; absent in records of earlier versions).
    """

    id: str
    request_id: str
    request: GenerationRequest | None = None
    constraint: Constraint
    structure_file: str
    structure_index: int = 0
    formula: str
    reduced_formula: str
    space_group_by_symprec: dict[str, int | None]
    seed: int
    generators: dict[str, PluginVersion]
    energy_per_atom: float | None = None
    plausible: bool | None = None
    min_distance_ratio: float | None = None
    closest_pair: str | None = None
    min_distance: float | None = None

    @property
    def composition_matches(self) -> bool:
        """Whether the structure has exactly the constraint's cell composition."""
        return self.constraint.is_cell_of(Composition(self.formula))

    def space_group_matches(self, symprec: float = 0.1) -> bool:
        """Whether spglib found the constrained space group at this tolerance."""
        return self.space_group_by_symprec.get(str(symprec)) == self.constraint.space_group
