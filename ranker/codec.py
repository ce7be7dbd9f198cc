"""Flat tensor dictionaries for the model store: deltas, dense weights, snapshots.

safetensors holds one flat ``name -> tensor`` mapping, so nested state is named
with dotted prefixes (``table.room.weight``, ``adam.3.exp_avg``); numbers and
small structures that are not tensors go into the file's JSON meta.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from configs.ranker import RankerSettings
from ranker.core import RankerCore
from ranker.table import CollisionlessTable, TableDelta


def prefixed(prefix: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{name}": t for name, t in tensors.items()}


def section(prefix: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors named ``prefix.*``, with the prefix taken off."""
    start = len(prefix) + 1
    return {name[start:]: t for name, t in tensors.items() if name.startswith(prefix + ".")}


def as_tensors(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}


# --- sparse deltas -----------------------------------------------------------------------


def delta_tensors(deltas: Mapping[str, TableDelta]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, delta in deltas.items():
        out |= prefixed(
            name,
            {
                "keys": torch.from_numpy(delta.keys),
                "values": delta.values,
                "default": delta.default,
                "evicted": torch.from_numpy(delta.evicted),
            },
        )
    return out


def deltas_from_tensors(
    tensors: Mapping[str, torch.Tensor], since: int, version: int
) -> dict[str, TableDelta]:
    names = {name.split(".", 1)[0] for name in tensors}
    out = {}
    for name in sorted(names):
        part = section(name, tensors)
        out[name] = TableDelta(
            keys=part["keys"].numpy(),
            values=part["values"],
            default=part["default"],
            evicted=part["evicted"].numpy(),
            since=since,
            version=version,
        )
    return out


# --- optimizer state ---------------------------------------------------------------------


def optimizer_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """A torch optimizer's per-parameter state as tensors, its param groups as JSON-able data."""
    state = optimizer.state_dict()
    tensors = {
        f"{index}.{key}": value
        for index, entries in state["state"].items()
        for key, value in entries.items()
    }
    return tensors, state["param_groups"]


def load_optimizer(
    optimizer: torch.optim.Optimizer,
    tensors: Mapping[str, torch.Tensor],
    param_groups: list[dict[str, Any]],
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})


# --- the model and its tables ------------------------------------------------------------


def core_tensors(core: RankerCore) -> dict[str, torch.Tensor]:
    """Dense weights and every table's full state."""
    out = prefixed("dense", core.model.state_dict())
    for name, table in core.tables.items():
        out |= prefixed(f"table.{name}", table.state_tensors())
    return out


def core_from_tensors(
    settings: RankerSettings, tensors: Mapping[str, torch.Tensor], step: int, *, trainable: bool
) -> RankerCore:
    """The :class:`RankerCore` that :func:`core_tensors` saved at ``step``."""
    table_names = {name.split(".")[1] for name in tensors if name.startswith("table.")}
    tables = {
        name: CollisionlessTable.from_state_tensors(
            name, settings.sparse, section(f"table.{name}", tensors), trainable=trainable
        )
        for name in sorted(table_names)
    }
    core = RankerCore(settings, trainable=trainable, tables=tables)
    core.load_dense(section("dense", tensors), step)
    return core
