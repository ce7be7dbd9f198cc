"""Int64 keys: stable ids for the strings the API receives, and packed LUCID n-gram keys.

Every table is keyed by int64 and never hashes keys into a smaller space, so two
keys never share a row. Room and user ids arrive as strings and become keys with
a stable 64-bit hash (blake2b, the same in every process and on every machine).
A LUCID prefix is packed exactly, bit by bit, so distinct prefixes always get
distinct keys:

    bit 62..59  table id (room LUCID, slice LUCID, ...)
    bit 58..55  level l (1..L)
    bit 54..0   codes c1..cl, ``code_bits(N)`` bits each, c1 highest; unused levels 0

With the default L=4, N=64 a key uses 4 + 4 + 24 bits. Unigram keys (the
ablation) pack (table, l, c_l) the same way, with c_l in the c1 position.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

import numpy as np

from configs.ranker import KEY_CODE_BITS, code_bits
from ranker.errors import RankerError

KeyMode = Literal["prefix", "unigram"]
_MASK63 = (1 << 63) - 1
TABLE_BITS = 4


def id_key(text: str) -> int:
    """A stable non-negative int64 key of a room or user id (first 8 bytes of blake2b)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK63


def id_keys(texts: Iterable[str]) -> np.ndarray:
    """:func:`id_key` of many ids at once, as an int64 array."""
    digests = b"".join(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest() for t in texts)
    return (np.frombuffer(digests, dtype="<u8") & np.uint64(_MASK63)).astype(np.int64)


class LucidKeys:
    """Packs LUCID codes (…, L) into one key per level (…, L) for one table."""

    def __init__(self, table_id: int, levels: int, codes: int, mode: KeyMode = "prefix") -> None:
        bits = code_bits(codes)
        if not 0 <= table_id < 1 << TABLE_BITS:
            raise RankerError(f"table id {table_id} does not fit {TABLE_BITS} bits")
        if not 1 <= levels < 16 or levels * bits > KEY_CODE_BITS:
            raise RankerError(
                f"levels={levels} x codes={codes} does not fit a packed int64 key "
                f"({KEY_CODE_BITS} bits for codes); use fewer levels or codes"
            )
        self.levels, self.codes, self.mode = levels, codes, mode
        level_ids = np.arange(1, levels + 1, dtype=np.int64)
        self._base = (np.int64(table_id) << np.int64(59)) | (level_ids << np.int64(55))
        # shift of code j (0-based) in the c1..cL layout, c1 highest
        self._shifts = (bits * (levels - 1 - np.arange(levels))).astype(np.int64)

    def check(self, codes: np.ndarray, what: str = "LUCID codes") -> np.ndarray:
        """``codes`` as int64 (…, L) within [0, N), or an error naming ``what``."""
        codes = np.asarray(codes)
        if codes.ndim < 1 or codes.shape[-1] != self.levels:
            raise RankerError(
                f"{what} must have {self.levels} levels in the last axis, got shape {codes.shape}"
            )
        if not np.issubdtype(codes.dtype, np.integer):
            raise RankerError(f"{what} must be integers, got {codes.dtype}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.codes):
            raise RankerError(
                f"{what} must lie in [0, {self.codes}); check that the ranker's lucid.codes "
                "matches the quantizer's"
            )
        return codes.astype(np.int64, copy=False)

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        """Keys (…, L) int64 of checked codes (…, L): column l-1 is the level-l key."""
        codes = codes.astype(np.int64, copy=False)
        if self.mode == "unigram":
            return self._base | (codes << self._shifts[0])
        shifted = codes << self._shifts  # (…, L): code j at its place
        # level l ORs codes 0..l-1: a cumulative OR, i.e. a cumulative sum of disjoint bits
        return self._base | np.cumsum(shifted, axis=-1)
