"""Joining a slice's text fields into one model input under a per-field token budget.

The text model sees one string such as ``title: ... | ocr: ... | asr: ...``.
Each field is cut to its share before joining, so that a long ASR transcript
cannot crowd out the title:

1. every present field gets ``min(its length, its budget)`` tokens;
2. tokens the budgets leave unused within ``max_length`` go to the fields that
   want more, in ``TEXT_FIELDS`` order (title first);
3. if the budgets alone overflow ``max_length``, the last fields in that order
   give tokens back first.

Fields are cut at token boundaries (the fast tokenizer's character offsets), so
a cut never splits a word piece. The tokenizer then adds the model's own special
tokens, and its truncation is only a safety net.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from transformers import PreTrainedTokenizerBase

from configs.encoder import TEXT_FIELDS
from encoder.errors import EncoderError

SEPARATOR = " | "


def allocate(wanted: Sequence[int], budgets: Sequence[int], capacity: int) -> list[int]:
    """Tokens per field: budgets first, leftover to earlier fields, overflow taken from later."""
    take = [min(w, b) for w, b in zip(wanted, budgets, strict=True)]
    for i in reversed(range(len(take))):
        excess = sum(take) - capacity
        if excess <= 0:
            break
        take[i] -= min(take[i], excess)
    for i, w in enumerate(wanted):
        room = capacity - sum(take)
        if room <= 0:
            break
        take[i] += min(w - take[i], room)
    return take


class TextComposer:
    """Builds the joined, budgeted text of slices (and of queries) for one tokenizer."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        field_budget: Mapping[str, int],
    ) -> None:
        if not tokenizer.is_fast:
            raise EncoderError(
                f"text model tokenizer {type(tokenizer).__name__} is not a fast tokenizer; "
                "the field budget needs character offsets (save the model with tokenizer.json)"
            )
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.budget = dict(field_budget)
        self._special = len(tokenizer("x")["input_ids"]) - len(
            tokenizer("x", add_special_tokens=False)["input_ids"]
        )

    def _marker_cost(self, name: str) -> int:
        return len(self.tokenizer(f"{SEPARATOR}{name}: ", add_special_tokens=False)["input_ids"])

    def compose(self, fields: Mapping[str, str]) -> str:
        """One budgeted string of the non-empty ``fields`` (keys from TEXT_FIELDS, or ``query``)."""
        names = [name for name in (*TEXT_FIELDS, "query") if fields.get(name, "").strip()]
        if not names:
            return ""
        texts = [" ".join(fields[name].split()) for name in names]
        encoded = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        markers = sum(self._marker_cost(name) for name in names)
        capacity = max(self.max_length - self._special - markers, 0)
        wanted = [len(ids) for ids in encoded["input_ids"]]
        budgets = [self.budget.get(name, self.max_length) for name in names]
        parts = []
        for name, text, offsets, keep in zip(
            names,
            texts,
            encoded["offset_mapping"],
            allocate(wanted, budgets, capacity),
            strict=True,
        ):
            if keep:
                parts.append(f"{name}: {text[: offsets[keep - 1][1]]}")
        return SEPARATOR.join(parts)
