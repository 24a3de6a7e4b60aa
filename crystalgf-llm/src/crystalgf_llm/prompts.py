"""The method's two prompts (space group, then Wyckoff sites) in English or in its original Chinese.

Each prompt is an Alpaca record: a fixed ``instruction`` per task and input mode, an ``input``
stating the composition and the targets (three decimals, with units), and an ``output``
"the most suitable ...". The three tricks of the method are kept: the valid range 1-230 of
space groups, the candidate Wyckoff positions of the chosen group, and normalised properties.
English prompts may also list the nearest known compounds with their space groups (retrieval).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crystalgf.errors import InvalidInputError
from crystalgf.symmetry import wyckoff_positions
from crystalgf.symmetry.wyckoff import WyckoffSite

LANGUAGES = ("en", "zh")
PROPERTY_ORDER = ("band_gap", "formation_energy_per_atom")


@dataclass(frozen=True)
class _Language:
    property_names: Mapping[str, str]
    units: Mapping[str, str]
    composition: Mapping[str, str]  # mode -> noun
    space_group_instruction: str
    wyckoff_instruction: str
    formula_input: str
    elements_input: str
    target: str
    space_group_input: str
    candidates_input: str
    neighbours_input: str
    space_group_answer: str  # the scored part follows it
    wyckoff_answer: str
    joiner: str
    stop: str


_EN = _Language(
    property_names={"band_gap": "band gap", "formation_energy_per_atom": "formation energy"},
    units={"band_gap": " eV", "formation_energy_per_atom": " eV/atom"},
    composition={"formula": "full chemical formula", "elements": "elements"},
    space_group_instruction="Given the {composition} and the target {properties}, generate the space group type of a "
                            "crystal structure that reaches these target properties. The space group type is an "
                            "integer from 1 to 230.",
    wyckoff_instruction="Given the {composition}, the target {properties} and the space group type, generate the "
                        "Wyckoff position of every atom of a crystal structure that reaches these target properties.",
    formula_input="The full chemical formula is {value}",
    elements_input="The elements are {value}",
    target=", the target {name} is {value}",
    space_group_input=", the space group type is {value}",
    candidates_input=", the candidate Wyckoff positions are: {value}",
    neighbours_input=" Known similar compounds (space group type): {value}.",
    space_group_answer="The most suitable space group type is",
    wyckoff_answer="The most suitable Wyckoff positions of the atoms are:",
    joiner=", ",
    stop=".",
)
_ZH = _Language(
    property_names={"band_gap": "带隙", "formation_energy_per_atom": "形成能"},
    units={"band_gap": "eV", "formation_energy_per_atom": "eV/atom"},
    composition={"formula": "化学全式", "elements": "元素"},
    space_group_instruction="请根据输入的{composition}和{properties},生成可以达到该目标材料性能的晶体结构空间群类型,"
                            "其中空间群类型的取值范围为0~230.",
    wyckoff_instruction="请根据输入的{composition},{properties}和空间群类型,生成各原子可以达到该目标材料性能的Wyckoff位置.",
    formula_input="输入的化学全式是{value}",
    elements_input="输入的元素是{value}",
    target=",目标{name}是{value}",
    space_group_input=",空间群类型是{value}",
    candidates_input=",候选的wyckoff位置有:{value}",
    neighbours_input="相似的已知化合物(空间群类型):{value}.",
    space_group_answer="最合适的空间群类型是",
    wyckoff_answer="各原子最合适的Wyckoff位置是:",
    joiner=",",
    stop=".",
)
_TEMPLATES = {"en": _EN, "zh": _ZH}


def cell_formula_text(counts: Mapping[str, int]) -> str:
    """The method's full formula, every count written: ``Ba1Nd1Co2O5``."""
    return "".join(f"{element}{count}" for element, count in counts.items())


def sites_text(sites: Sequence[WyckoffSite], element_order: Sequence[str]) -> str:
    """Sites in a canonical order (formula order, then multiplicity and letter): ``Sc[2c] Ni[6h]``."""
    rank = {element: i for i, element in enumerate(element_order)}
    ordered = sorted(sites, key=lambda s: (rank.get(s.element, len(rank)), s.multiplicity, s.letter))
    return " ".join(f"{site.element}[{site.label}]" for site in ordered)


@dataclass(frozen=True)
class Prompt:
    """One Alpaca record; ``answer_prefix`` + ``output`` is the full response."""

    instruction: str
    input: str
    answer_prefix: str
    output: str = ""

    def to_alpaca(self) -> dict[str, str]:
        return {"instruction": self.instruction, "input": self.input, "output": self.answer_prefix + self.output}


class PromptBuilder:
    """Writes the two prompts of the method for a request-like description of a crystal."""

    def __init__(self, language: str = "en"):
        if language not in _TEMPLATES:
            raise InvalidInputError(f"unknown prompt language {language!r} (choose from {', '.join(LANGUAGES)})")
        self.language = language
        self._t = _TEMPLATES[language]

    def space_group(self, composition: Mapping[str, int] | Sequence[str], properties: Mapping[str, float],
                    neighbours: Sequence[tuple[str, int]] = (), answer: int | None = None) -> Prompt:
        """Stage 1. ``composition`` is a cell formula (counts) or an element list."""
        t = self._t
        text = self._composition(composition) + self._targets(properties) + t.stop
        if neighbours:
            text += t.neighbours_input.format(value=t.joiner.join(f"{f} ({g})" for f, g in neighbours))
        return Prompt(t.space_group_instruction.format(**self._nouns(composition, properties)), text,
                      t.space_group_answer, "" if answer is None else self.space_group_answer(answer))

    def wyckoff(self, composition: Mapping[str, int] | Sequence[str], properties: Mapping[str, float],
                space_group: int, answer: str | None = None) -> Prompt:
        """Stage 2, conditioned on the group; ``answer`` is a :func:`sites_text`."""
        t = self._t
        labels = t.joiner.join(p.label for p in reversed(wyckoff_positions(space_group)))
        text = (self._composition(composition) + self._targets(properties)
                + t.space_group_input.format(value=space_group) + t.candidates_input.format(value=labels) + t.stop)
        return Prompt(t.wyckoff_instruction.format(**self._nouns(composition, properties)), text,
                      t.wyckoff_answer, "" if answer is None else self.wyckoff_answer(answer))

    def space_group_answer(self, space_group: int) -> str:
        """The scored continuation of stage 1."""
        return f"{' ' if self.language == 'en' else ''}{space_group}{self._t.stop}"

    def wyckoff_answer(self, sites: str) -> str:
        """The scored continuation of stage 2."""
        return f"{' ' if self.language == 'en' else ''}{sites}{self._t.stop}"

    def _composition(self, composition: Mapping[str, int] | Sequence[str]) -> str:
        t = self._t
        if isinstance(composition, Mapping):
            return t.formula_input.format(value=cell_formula_text(composition))
        return t.elements_input.format(value=t.joiner.join(composition))

    def _targets(self, properties: Mapping[str, float]) -> str:
        t = self._t
        return "".join(t.target.format(name=t.property_names[name], value=f"{properties[name]:.3f}{t.units[name]}")
                       for name in PROPERTY_ORDER if name in properties)

    def _nouns(self, composition: Mapping[str, int] | Sequence[str], properties: Mapping[str, float]) -> dict[str, str]:
        t = self._t
        names = [t.property_names[name] for name in PROPERTY_ORDER if name in properties]
        both = " and " if self.language == "en" else "和"
        return {"composition": t.composition["formula" if isinstance(composition, Mapping) else "elements"],
                "properties": both.join(names) or ("properties" if self.language == "en" else "性能")}
