"""LoRA fine-tuning of a backbone on both tasks of G (the method's settings by default).

q/k/v attention projections, rank 16, learning rate 1e-4, cosine schedule with 10 % warm-up;
the loss covers the answer tokens only. Each epoch draws one input mode per crystal (seeded),
saves the adapter and a resumable training state.
"""

from __future__ import annotations

import json
import math
import pickle
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from crystalgf.errors import InvalidInputError
from crystalgf.manifest import now, package_versions

from crystalgf_llm.adapter import AdapterSettings
from crystalgf_llm.instructions import LabelledCrystal, build_records
from crystalgf_llm.prompts import PromptBuilder
from crystalgf_llm.retrieval import NeighbourIndex
from crystalgf_llm.scoring import ChatFormat

STATE_FILE = "train_state.pt"
_STATE_KEYS = {"lora", "optimizer", "scheduler", "epoch", "record"}


@dataclass
class LoraSettings:
    """Fine-tuning hyper-parameters."""

    epochs: int = 3
    batch_size: int = 16
    learning_rate: float = 1e-4
    warmup_fraction: float = 0.1
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    modes_per_crystal: int = 1
    seed: int = 0


def _batches(format_: ChatFormat, prompts, batch_size: int, pad_id: int, rng: random.Random):
    pairs = [(format_.prompt_ids(p), format_.answer_ids(p.output)) for p in prompts]
    rng.shuffle(pairs)
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        width = max(len(a) + len(b) for a, b in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (prompt, answer) in enumerate(chunk):
            tokens = torch.tensor(prompt + answer)
            ids[row, :len(tokens)] = tokens
            labels[row, len(prompt):len(tokens)] = torch.tensor(answer)
            mask[row, :len(tokens)] = 1
        yield ids, labels, mask


def load_training_state(path: Path) -> dict:
    """The resumable state that :func:`train_adapter` saved at ``path``, loaded with
    ``torch.load(weights_only=True)``: tensors and plain data only, so a crafted file cannot run code
    (a pickle that would is refused with a one-line error, as is anything but such a state)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):
            raise InvalidInputError(f"{path}: refused: loading it would run code (it holds objects other than "
                                    "tensors and plain data); not a training state of `crystalgf train g`") from None
        raise InvalidInputError(f"{path}: not a training state of `crystalgf train g` ({_first_line(error)})") from None
    except Exception as error:  # truncated or foreign files fail in many ways inside torch.load
        raise InvalidInputError(f"{path}: not a training state of `crystalgf train g` ({_first_line(error)})") from None
    if not isinstance(state, dict) or not _STATE_KEYS <= set(state) or not isinstance(state["epoch"], int):
        raise InvalidInputError(f"{path}: not a training state of `crystalgf train g` "
                                f"(needs {', '.join(sorted(_STATE_KEYS))})")
    return state


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def _answer_loss(model, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the answer tokens; the output layer runs on those positions only."""
    base = model.get_base_model()
    hidden = base.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    rows, columns = (labels[:, 1:] != -100).nonzero(as_tuple=True)
    logits = base.get_output_embeddings()(hidden[rows, columns])
    return torch.nn.functional.cross_entropy(logits.float(), labels[rows, columns + 1])


def train_adapter(model, tokenizer, crystals: Sequence[LabelledCrystal], adapter: AdapterSettings,
                  settings: LoraSettings, output: Path, sources: dict | None = None, resume: bool | dict = False,
                  stop_after: int | None = None,
                  on_step: Callable[[int, int, float], None] | None = None) -> dict:
    """Fine-tune ``model`` (a base model) with LoRA; returns the training record written to OUTPUT.

    ``sources`` (data and weights hashes) go into the record; ``stop_after`` ends the run after that
    epoch of the schedule (continue it with ``resume``: True loads OUTPUT's state, a dict is a state
    already loaded with :func:`load_training_state`)."""
    from peft import LoraConfig, get_peft_model
    from transformers import get_cosine_schedule_with_warmup

    torch.manual_seed(settings.seed)
    model = get_peft_model(model, LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=["q_proj", "k_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.peft_config["default"].base_model_name_or_path = adapter.backbone  # a plugin name, not a local path
    builder = PromptBuilder(adapter.language)
    index = NeighbourIndex.fit(c.constraint for c in crystals) if adapter.neighbours else None
    format_ = ChatFormat(tokenizer)
    per_epoch = math.ceil(len(crystals) * settings.modes_per_crystal * 2 / settings.batch_size)
    total = per_epoch * settings.epochs
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(settings.warmup_fraction * total), total)
    record = {"settings": asdict(settings), "adapter": asdict(adapter), "sources": sources or {},
              "crystals": len(crystals), "epochs": []}
    first_epoch = 0
    if resume:
        state = resume if isinstance(resume, dict) else load_training_state(output / STATE_FILE)
        model.load_state_dict(state["lora"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        first_epoch, record = state["epoch"], state["record"]
    device = next(model.parameters()).device
    model.train()
    for epoch in range(first_epoch, min(settings.epochs, stop_after or settings.epochs)):
        rng = random.Random(f"{settings.seed}/{epoch}")
        prompts = list(build_records(crystals, builder, index=index, neighbours=adapter.neighbours,
                                     modes_per_crystal=settings.modes_per_crystal, seed=rng.randrange(2**32)))
        losses = []
        for step, (ids, labels, mask) in enumerate(_batches(format_, prompts, settings.batch_size,
                                                            tokenizer.pad_token_id, rng)):
            loss = _answer_loss(model, ids.to(device), mask.to(device), labels.to(device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            if on_step:
                on_step(epoch * per_epoch + step + 1, total, loss.item())
        record["epochs"].append({"epoch": epoch + 1, "train_loss": sum(losses) / max(len(losses), 1),
                                 "examples": len(prompts)})
        record.update(finished=now(), versions=package_versions())
        model.save_pretrained(output, save_embedding_layers=False)  # only q/k/v are adapted; no Hub look-up
        if index is not None:
            index.save(output / adapter.index_file)
        adapter.save(output)
        (output / "training.json").write_text(json.dumps(record, indent=2) + "\n")
        lora = {k: v for k, v in model.state_dict().items() if "lora_" in k}
        torch.save({"lora": lora, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "epoch": epoch + 1, "record": record}, output / STATE_FILE)
    return record
