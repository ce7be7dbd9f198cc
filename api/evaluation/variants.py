"""The replay's variants: which ranker, which LUCID keys, which codes and inputs each one gets.

Each variant differs from a neighbour in one thing, so a difference in the table
has one cause: ``lucid_only`` against ``random_codes`` (the codes' semantics),
against ``lucid_unigram`` (prefix n-grams), against ``multimodal`` and
``lucid_q2i`` (the encoder). ``popularity`` is no model at all: the room's decayed
count of engagements, the floor any learned ranker has to clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from configs.ranker import RankerVariant

CodeSource = Literal["text", "random", "multimodal", "text_q2i"]
ENCODERS: tuple[CodeSource, ...] = ("text", "multimodal", "text_q2i")  # sources that encode


@dataclass(frozen=True)
class Variant:
    """One replayed variant: a ranker variant (None: the popularity count) and its inputs.

    ``codes``: where the rooms' LUCIDs come from; every learned variant reads them,
    even ``id_only`` and ``stats_only``, whose engagement statistics shrink a
    room's rates toward its code's. ``content``: the rooms' text embeddings go into
    every batch (``dense_content``).
    """

    ranker: RankerVariant | None
    keys: Literal["prefix", "unigram"] = "prefix"
    codes: CodeSource | None = "text"
    content: bool = False


VARIANTS: dict[str, Variant] = {
    "id_only": Variant("id_only"),
    "lucid_only": Variant("lucid_only"),
    "hybrid": Variant("hybrid"),
    "staged": Variant("staged"),
    "random_codes": Variant("lucid_only", codes="random"),
    "stats_only": Variant("stats_only"),
    "dense_content": Variant("dense_content", content=True),
    "popularity": Variant(None, codes=None),
    # on request only: ablations of the code pipeline
    "lucid_unigram": Variant("lucid_only", keys="unigram"),
    "multimodal": Variant("lucid_only", codes="multimodal"),
    "lucid_q2i": Variant("lucid_only", codes="text_q2i"),
}

# what a run replays unless told otherwise (the CLI's --variants default spells it out)
DEFAULT_VARIANTS: tuple[str, ...] = (
    "id_only",
    "lucid_only",
    "hybrid",
    "staged",
    "random_codes",
    "stats_only",
    "dense_content",
    "popularity",
)

# the ID-based reference of the paired comparisons
REFERENCE = "id_only"
