"""vLLM backend of the scorer (GPU only): the same candidate log-probabilities, with prefix caching."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from crystalgf.errors import InvalidInputError

from crystalgf_llm.backbones import Backbone
from crystalgf_llm.prompts import Prompt
from crystalgf_llm.scoring import ChatFormat


class VLLMScorer:
    """log P(candidate | prompt) from vLLM's prompt log-probabilities (LoRA adapters served by vLLM)."""

    def __init__(self, backbone: Backbone, weights: str | None, adapter_dir: Path | None):
        if importlib.util.find_spec("vllm") is None:
            raise InvalidInputError("backend=vllm needs vLLM: pip install 'crystalgf-llm[vllm]' (or use backend=transformers)")
        import torch

        if not torch.cuda.is_available():
            raise InvalidInputError("backend=vllm needs a CUDA GPU; none is visible (use backend=transformers)")
        folder, gguf = backbone.locate(weights)
        if gguf:
            raise InvalidInputError(f"backend=vllm needs {backbone.model} in Hugging Face format: pass weights=DIR")
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        self.llm = LLM(model=str(folder), enable_lora=adapter_dir is not None, enable_prefix_caching=True, max_lora_rank=64)
        self.lora = LoRARequest("crystalgf", 1, str(adapter_dir)) if adapter_dir else None
        self.format = ChatFormat(self.llm.get_tokenizer())

    def score(self, prompts: Sequence[Prompt], candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        from vllm import SamplingParams, TokensPrompt

        jobs, starts = [], []
        for prompt, options in zip(prompts, candidates):
            ids = self.format.prompt_ids(prompt)
            for text in options:
                jobs.append(TokensPrompt(prompt_token_ids=ids + self.format.answer_ids(text)))
                starts.append(len(ids))
        outputs = self.llm.generate(jobs, SamplingParams(max_tokens=1, prompt_logprobs=0), lora_request=self.lora,
                                    use_tqdm=False)
        totals = iter(
            sum(out.prompt_logprobs[i][out.prompt_token_ids[i]].logprob for i in range(start, len(out.prompt_token_ids)))
            for out, start in zip(outputs, starts))
        return [[next(totals) for _ in options] for options in candidates]
