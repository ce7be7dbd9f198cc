"""Code migration: new prefix rows start from the count-weighted mean of the old rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from configs.ranker import SparseSettings
from ranker import CollisionlessTable, LucidKeys, RankerError, migrate_prefix_rows

KEYS = LucidKeys(table_id=1, levels=2, codes=8)


def table_with(rows: dict[tuple[int, ...], float]) -> CollisionlessTable:
    """A table whose prefix (c1,) or (c1, c2) row is filled with the given value."""
    table = CollisionlessTable("room", SparseSettings(dim=3, min_count=1), seed=0)
    for prefix, value in rows.items():
        codes = np.array([[*prefix, 0][:2]])
        key = KEYS(codes)[0, len(prefix) - 1]
        table.assign(np.array([key]), torch.full((1, 3), value), version=1)
    return table


def row(table: CollisionlessTable, *prefix: int) -> torch.Tensor:
    key = KEYS(np.array([[*prefix, 0][:2]]))[0, len(prefix) - 1]
    return table.lookup(np.array([key]))[0]


def test_new_prefixes_start_from_the_count_weighted_mean_of_old_rows() -> None:
    table = table_with({(1,): 1.0, (4,): 5.0, (1, 2): 10.0, (4, 2): 20.0, (3,): 7.0, (3, 3): 8.0})
    old = np.array([[1, 2], [4, 2], [3, 3]])
    new = np.array([[7, 2], [7, 2], [3, 3]])  # rooms A and B now share the prefix (7, 2)
    state_before = table.state[table.rows(KEYS(np.array([[3, 3]]))[0])].clone()
    written = migrate_prefix_rows(
        table, KEYS, old, new, np.array([3.0, 1.0, 2.0]), version=2, now=0.0
    )
    assert written == 2  # (7,) and (7, 2); (3,) and (3, 3) did not move
    torch.testing.assert_close(row(table, 7), torch.full((3,), (3 * 1.0 + 1 * 5.0) / 4))
    torch.testing.assert_close(row(table, 7, 2), torch.full((3,), (3 * 10.0 + 1 * 20.0) / 4))
    torch.testing.assert_close(row(table, 3, 3), torch.full((3,), 8.0))
    unchanged_rows = table.rows(KEYS(np.array([[3, 3]]))[0])
    torch.testing.assert_close(table.state[unchanged_rows], state_before)


def test_rooms_whose_old_prefix_had_no_row_do_not_count() -> None:
    table = table_with({(1,): 2.0})
    old = np.array([[1, 2], [5, 5]])  # (5,) and both level-2 keys never had rows
    new = np.array([[6, 2], [6, 2]])
    assert migrate_prefix_rows(table, KEYS, old, new, version=2, now=0.0) == 1
    torch.testing.assert_close(row(table, 6), torch.full((3,), 2.0))
    assert table.rows(KEYS(np.array([[6, 2]]))[:, 1])[0] == 0  # still reads the default row


def test_mismatched_codes_are_refused() -> None:
    table = table_with({})
    with pytest.raises(RankerError, match="same rooms"):
        migrate_prefix_rows(
            table, KEYS, np.zeros((3, 2), int), np.zeros((2, 2), int), version=1, now=0
        )
    with pytest.raises(RankerError, match="counts"):
        migrate_prefix_rows(
            table,
            KEYS,
            np.zeros((2, 2), int),
            np.zeros((2, 2), int),
            np.array([1.0, -1.0]),
            version=1,
            now=0,
        )
