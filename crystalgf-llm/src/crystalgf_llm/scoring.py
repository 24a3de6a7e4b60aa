"""Constrained decoding by scoring: the log-probability of each valid answer under the model.

G's answers are restricted to a candidate set that is valid by construction (space groups
in which the composition has a Wyckoff assignment; assignments that realise the group), so
decoding is an exact ranking of those candidates by log P(answer | prompt): the prompt is run
once (batched, left-padded) and its KV cache is shared by all of its candidates.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from crystalgf_llm.prompts import Prompt

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
        self.format = ChatFormat(tokenizer)
        self.pad_id = tokenizer.pad_token_id
        self.batch_size = batch_size

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

    def _score_batch(self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        device = self.device
        encoded = [self.format.prompt_ids(p) for p in prompts]
        width = max(len(ids) for ids in encoded)
        ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, tokens in enumerate(encoded):
            ids[row, width - len(tokens):] = torch.tensor(tokens)
            mask[row, width - len(tokens):] = 1
        ids, mask = ids.to(device), mask.to(device)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                         use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)

        owners = [row for row, options in enumerate(candidates) for _ in options]
        answers = [self.format.answer_ids(text) for options in candidates for text in options]
        if not answers:
            return [[] for _ in prompts]
        length = max(len(a) for a in answers)
        answer_ids = torch.full((len(answers), length), self.pad_id, dtype=torch.long)
        answer_mask = torch.zeros((len(answers), length), dtype=torch.long)
        for row, tokens in enumerate(answers):
            answer_ids[row, :len(tokens)] = torch.tensor(tokens)
            answer_mask[row, :len(tokens)] = 1
        answer_ids, answer_mask = answer_ids.to(device), answer_mask.to(device)
        owner = torch.tensor(owners, device=device)
        cache = out.cache
        cache.reorder_cache(owner)
        positions = mask.sum(-1)[owner, None] + torch.arange(length, device=device)
        logits = self.model(input_ids=answer_ids, attention_mask=torch.cat([mask[owner], answer_mask], dim=1),
                            position_ids=positions, cache=cache).logits
        log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        rest = log_probs.gather(-1, answer_ids[:, 1:, None]).squeeze(-1) * answer_mask[:, 1:]
        totals = (first[owner].gather(-1, answer_ids[:, :1]).squeeze(-1) + rest.sum(-1)).tolist()
        grouped: list[list[float]] = [[] for _ in prompts]
        for row, total in zip(owners, totals):
            grouped[row].append(total)
        return grouped
