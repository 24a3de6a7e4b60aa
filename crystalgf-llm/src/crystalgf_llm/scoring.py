"""Constrained decoding by scoring: the log-probability of each valid answer under the model.

G's answers are restricted to a candidate set that is valid by construction (space groups
in which the composition has a Wyckoff assignment; assignments that realise the group), so
decoding is an exact ranking of those candidates by log P(answer | prompt): the prompt is run
once (batched), then all of its candidates in one row after it, each seeing only the prompt and
its own tokens (a tree attention mask); the instruction that every prompt of a batch starts with is
run once and its KV cache kept for later batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache

from crystalgf_llm.prompts import Prompt

_POSITIONS_PER_CHUNK = 512
_ALPACA = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"


class ChatFormat:
    """Token ids of a prompt (chat template, or Alpaca text without one) and of an answer."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.end_id = tokenizer.eos_token_id

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        if self.tokenizer.chat_template:
            messages = [{"role": "system", "content": prompt.instruction}, {"role": "user", "content": prompt.input}]
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = _ALPACA.format(instruction=prompt.instruction, input=prompt.input)
        return self.tokenizer(text + prompt.answer_prefix, add_special_tokens=False)["input_ids"]

    def answer_ids(self, answer: str) -> list[int]:
        return self.tokenizer(answer, add_special_tokens=False)["input_ids"] + [self.end_id]


class TransformersScorer:
    """Scores candidate answers with a (possibly LoRA-adapted) transformers causal LM."""

    def __init__(self, model, tokenizer, batch_size: int = 8):
        self.model = model
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a LoRA-adapted model
        self._decoder, self._head = base.get_decoder(), model.get_output_embeddings()
        self._softcap = getattr(base.config, "final_logit_softcapping", None)
        # The last positions of the hidden states reach the output layer as a strided view; with its
        # weight frozen (as under a LoRA adapter) torch's matmul then copies the weight once per row
        # (a batched product) instead of reshaping the input: hand the layer a contiguous input.
        model.get_output_embeddings().register_forward_pre_hook(lambda _, inputs: (inputs[0].contiguous(),))
        self.format = ChatFormat(tokenizer)
        self.pad_id = tokenizer.pad_token_id
        self.batch_size = batch_size
        self._prefixes: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def score(self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        """log P(candidate | prompt) for every candidate of every prompt (sum over its tokens)."""
        scores: list[list[float]] = []
        for start in range(0, len(prompts), self.batch_size):
            scores += self._score_batch(prompts[start:start + self.batch_size],
                                        candidates[start:start + self.batch_size])
        return scores

    def _prefix_cache(self, prefix: list[int], rows: int) -> DynamicCache | None:
        """A fresh cache holding the shared ``prefix`` for ``rows`` prompts (computed once per prefix)."""
        if not prefix:
            return None
        key = tuple(prefix)
        if key not in self._prefixes:
            if len(self._prefixes) >= 16:
                self._prefixes.pop(next(iter(self._prefixes)))
            out = self.model(input_ids=torch.tensor([prefix], device=self.device), use_cache=True, logits_to_keep=1)
            self._prefixes[key] = [(layer.keys, layer.values) for layer in out.cache.layers]
        cache = DynamicCache()
        for index, (keys, values) in enumerate(self._prefixes[key]):
            cache.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1), index)
        return cache

    def _known_prefix(self, tokens: list[int]) -> int:
        """Length of the longest cached prefix that ``tokens`` start with (leaving one of its own)."""
        return max((len(key) for key in self._prefixes if len(key) < len(tokens) and tuple(tokens[:len(key)]) == key),
                   default=0)

    def _score_batch(self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        device = self.device
        answers = [[self.format.answer_ids(text) for text in options] for options in candidates]
        # the tokens all of a prompt's answers start with (e.g. " " before a number) join the prompt pass
        leads = [options[0][:_common_prefix_length(options)] if options else [] for options in answers]
        encoded = [self.format.prompt_ids(p) + lead for p, lead in zip(prompts, leads)]
        shared = _common_prefix_length(encoded) if len(encoded) > 1 else self._known_prefix(encoded[0])
        cache = self._prefix_cache(encoded[0][:shared], len(encoded))
        width = max(len(ids) for ids in encoded) - shared
        ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        own = torch.zeros((len(encoded), width), dtype=torch.long)  # each prompt's own tokens, left-padded
        for row, tokens in enumerate(encoded):
            ids[row, width - len(tokens) + shared:] = torch.tensor(tokens[shared:])
            own[row, width - len(tokens) + shared:] = 1
        ids, own = ids.to(device), own.to(device)
        mask = torch.cat([torch.ones((len(encoded), shared), dtype=torch.long, device=device), own], dim=1)
        kept = 1 + max(len(lead) for lead in leads)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=shared + (own.cumsum(-1) - 1).clamp(min=0),
                         cache=cache, use_cache=True, logits_to_keep=kept)
        prompt_log_probs = torch.log_softmax(out.logits.float(), dim=-1)
        first = prompt_log_probs[:, -1]
        lead_scores = torch.tensor([sum(prompt_log_probs[row, kept - 1 - len(lead) + i, token].item()
                                        for i, token in enumerate(lead)) for row, lead in enumerate(leads)],
                                   device=device)
        lengths = shared + own.sum(-1)

        rests = [[tokens[len(lead):] for tokens in options] for options, lead in zip(answers, leads)]
        if not any(rests):
            return [[] for _ in prompts]
        totals = [[lead_scores[row] + first[row, tokens[0]] for tokens in options] for row, options in enumerate(rests)]
        width = max(sum(len(tokens) - 1 for tokens in options) for options in rests)
        if width > 0:
            log_probs = self._answer_log_probs(out.cache, mask, lengths, rests, width)
            for row, options in enumerate(rests):
                start = 0
                for index, tokens in enumerate(options):
                    totals[row][index] = totals[row][index] + log_probs[row, start:start + len(tokens) - 1].sum()
                    start += len(tokens) - 1
        return [[float(t) for t in options] for options in totals]

    def _answer_log_probs(self, cache: DynamicCache, mask: torch.Tensor, lengths: torch.Tensor,
                          answers: list[list[list[int]]], width: int) -> torch.Tensor:
        """log P of each answer token after its earlier ones (``[row, step]``, 0 on padding): all answers of a
        prompt in one row after its cached prompt, each fed all but its last token and seeing the prompt and
        its own earlier tokens (a tree mask), at the positions it would have alone, so the prompt's KV cache
        is never copied per answer."""
        device = mask.device
        rows = len(answers)
        ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        targets = torch.full((rows, width), -1, dtype=torch.long)
        positions = torch.zeros((rows, width), dtype=torch.long)
        own = torch.zeros((rows, width, width), dtype=torch.bool)
        for row, options in enumerate(answers):
            start = 0
            for tokens in options:
                end = start + len(tokens) - 1
                ids[row, start:end] = torch.tensor(tokens[:-1], dtype=torch.long)
                targets[row, start:end] = torch.tensor(tokens[1:], dtype=torch.long)
                positions[row, start:end] = torch.arange(end - start)
                own[row, start:end, start:end] = torch.ones(end - start, end - start, dtype=torch.bool).tril()
                start = end
            own[row, start:, start:] = torch.eye(width - start, dtype=torch.bool)  # padding sees itself
        seen = mask.bool()[:, None, :].expand(rows, width, -1)
        attention = torch.cat([seen, own.to(device)], dim=-1)[:, None]
        hidden = self._decoder(input_ids=ids.to(device), position_ids=lengths[:, None] + positions.to(device),
                               cache=cache, attention_mask=attention).last_hidden_state
        return self._target_log_probs(hidden, targets.to(device))

    def _target_log_probs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log-softmax of the output layer at ``targets`` (-1: skipped), a few hundred positions at a time:
        the full logits of every answer token (positions x vocabulary) would take gigabytes."""
        result = torch.zeros(targets.shape, dtype=torch.float32, device=targets.device)
        rows, columns = (targets >= 0).nonzero(as_tuple=True)
        for start in range(0, len(rows), _POSITIONS_PER_CHUNK):
            r, c = rows[start:start + _POSITIONS_PER_CHUNK], columns[start:start + _POSITIONS_PER_CHUNK]
            logits = self._head(hidden[r, c]).float()
            if self._softcap:
                logits = torch.tanh(logits / self._softcap) * self._softcap
            result[r, c] = logits.gather(-1, targets[r, c, None])[:, 0] - logits.logsumexp(-1)
        return result


def _common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Tokens all sequences start with, leaving each at least one of its own."""
    shortest = min(len(s) for s in sequences)
    length = 0
    while length < shortest - 1 and all(s[length] == sequences[0][length] for s in sequences):
        length += 1
    return length
