"""Two-stage Q2I contrastive training, in nanoGPT's spirit: one loop, one resumable checkpoint.

Stages (FLUID's recipe):

- ``align``: the projector, the head and the temperature learn; both towers are
  frozen (and kept in eval mode, so no dropout).
- ``joint``: the text tower learns too (every layer, or the last
  ``text_layers``), at its own small learning rate; the vision tower only with
  ``train_vision``.

The output folder holds ``checkpoint.pt`` (after every epoch: trainable
weights, optimizer, scheduler, loss, stage and epoch: ``resume`` continues at
the next epoch), ``loss.jsonl`` (one line per step), ``report.json`` (held-out
recall@k of the untrained encoder and after each stage) and ``encoder-<stage>/``
(the encoder after each stage, a ``from_pretrained`` folder).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from configs.encoder import TrainSettings
from encoder.errors import EncoderError
from encoder.slice_encoder import SliceEncoder
from encoder.training.evaluate import recall_at_k
from encoder.training.loss import InfoNCE, false_negative_mask
from encoder.training.pairs import Pair, mixed_batches

CHECKPOINT = "checkpoint.pt"
LOSS_LOG = "loss.jsonl"
REPORT = "report.json"


@dataclass
class Progress:
    """Where training stands: the resumable part of the checkpoint."""

    stage_index: int = 0
    epoch: int = 0  # epochs finished in the current stage
    step: int = 0
    report: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Trains a :class:`SliceEncoder` on Q2I pairs and reports held-out recall after each stage."""

    def __init__(
        self, encoder: SliceEncoder, settings: TrainSettings, out: Path, progress: bool = True
    ) -> None:
        self.encoder = encoder
        self.model = encoder.model
        self.settings = settings
        self.out = out
        self.progress = progress
        self.loss = InfoNCE(settings.temperature, settings.learn_temperature).to(encoder.device)

    # --- what each stage trains ----------------------------------------------------------

    def _configure(self, stage: str) -> list[dict[str, Any]]:
        """Freeze and unfreeze for ``stage``; the optimizer's parameter groups."""
        model, joint = self.model, self.settings.joint
        model.requires_grad_(False)
        heads = [*model.head.parameters()]
        if model.projector is not None:
            heads += model.projector.parameters()
        if self.settings.learn_temperature:
            heads.append(self.loss.log_scale)
        lr = self.settings.align.lr if stage == "align" else joint.lr
        groups = [{"params": heads, "lr": lr}]
        train_text = stage == "joint"
        train_vision = stage == "joint" and joint.train_vision and model.vision is not None
        if train_text:
            text = model.text
            modules = [text.layers()[-joint.text_layers :]] if joint.text_layers else [text]
            params = [p for m in modules for p in m.parameters()]
            groups.append({"params": params, "lr": joint.text_lr})
            self.encoder.trained_text = True
        if train_vision:
            assert model.vision is not None
            groups.append({"params": list(model.vision.parameters()), "lr": joint.vision_lr})
            self.encoder.trained_vision = True
        for group in groups:
            for param in group["params"]:
                param.requires_grad_(True)
        model.train()
        model.text.train(train_text)
        if model.vision is not None:
            model.vision.train(train_vision)
        return groups

    # --- the loop -------------------------------------------------------------------------

    def fit(self, train: list[Pair], held_out: list[Pair], resume: bool = False) -> dict[str, Any]:
        """Run the configured stages; returns (and writes) the recall report."""
        self.out.mkdir(parents=True, exist_ok=True)
        state = self._load() if resume else None
        progress = state["progress"] if state else Progress()
        if not progress.report and held_out:
            progress.report["untrained"] = self.evaluate(held_out)
        for index, stage in enumerate(self.settings.stages):
            if index < progress.stage_index:
                continue
            epochs = getattr(self.settings, stage).epochs
            groups = self._configure(stage)
            optimizer = torch.optim.AdamW(groups, weight_decay=self.settings.weight_decay)
            steps = epochs * math.ceil(len(train) / self.settings.batch_size)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(steps))
            if state and index == progress.stage_index and progress.epoch > 0:
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
            for epoch in range(progress.epoch, epochs):
                rng = np.random.default_rng([self.settings.seed, index, epoch])
                batches = mixed_batches(train, self.settings.batch_size, rng)
                bar = tqdm(batches, desc=f"{stage} {epoch + 1}/{epochs}", disable=not self.progress)
                for batch in bar:
                    loss = self._step([train[i] for i in batch], optimizer, scheduler)
                    progress.step += 1
                    self._log(stage, epoch, progress.step, loss, scheduler.get_last_lr()[0])
                    bar.set_postfix(loss=f"{loss:.3f}", t=f"{self.loss.temperature:.3f}")
                progress.epoch = epoch + 1
                self._save(progress, optimizer, scheduler)
            if held_out:
                progress.report[stage] = self.evaluate(held_out)
            target = self.out / f"encoder-{stage}"
            if not target.exists():
                self.encoder.save_pretrained(target)
            progress.stage_index, progress.epoch = index + 1, 0
            self._save(progress, None, None)
            self._write_report(progress.report)
        return progress.report

    def _step(
        self,
        pairs: list[Pair],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
    ) -> float:
        collator, device = self.encoder.collator, self.encoder.device
        prepared = collator.slices([p.slice for p in pairs])
        for pair, outcome in zip(pairs, prepared.outcomes, strict=True):
            if outcome.error is not None:
                raise EncoderError(f"training slice {pair.slice.slice_id!r}: {outcome.error}")
        assert prepared.batch is not None
        queries = collator.queries([p.query for p in pairs], self.settings.query_max_length)
        mask = false_negative_mask(
            [p.query for p in pairs], [p.group for p in pairs], [p.slice.slice_id for p in pairs]
        )
        items = self.model(prepared.batch.to(device))
        loss = self.loss(self.model(queries.to(device)), items, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for group in optimizer.param_groups for p in group["params"]]
        nn.utils.clip_grad_norm_(params, self.settings.grad_clip)
        optimizer.step()
        scheduler.step()
        return float(loss.detach())

    def evaluate(self, held_out: list[Pair]) -> dict[str, float]:
        """recall@k on the held-out pairs, in eval mode (the model is put back afterwards)."""
        modes = {module: module.training for module in self.model.modules()}
        try:
            return recall_at_k(self.encoder, held_out, self.settings.recall_k)
        finally:
            for module, mode in modes.items():
                module.training = mode

    # --- files --------------------------------------------------------------------------

    def _log(self, stage: str, epoch: int, step: int, loss: float, lr: float) -> None:
        line = {"stage": stage, "epoch": epoch, "step": step, "loss": loss, "lr": lr}
        line["temperature"] = self.loss.temperature
        with (self.out / LOSS_LOG).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        """Weights that any stage may change (heads always, towers once trained)."""
        prefixes = ["projector.", "head."]
        if self.encoder.trained_text:
            prefixes.append("text.")
        if self.encoder.trained_vision:
            prefixes.append("vision.")
        return {k: v for k, v in self.model.state_dict().items() if k.startswith(tuple(prefixes))}

    def _save(self, progress: Progress, optimizer: Any, scheduler: Any) -> None:
        state = {
            "progress": progress.__dict__,
            "model": self._trainable_state(),
            "loss": self.loss.state_dict(),
            "trained": [self.encoder.trained_text, self.encoder.trained_vision],
            "optimizer": optimizer.state_dict() if optimizer else None,
            "scheduler": scheduler.state_dict() if scheduler else None,
        }
        tmp = self.out / f".{CHECKPOINT}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.out / CHECKPOINT)

    def _load(self) -> dict[str, Any] | None:
        path = self.out / CHECKPOINT
        if not path.is_file():
            return None
        state = torch.load(path, map_location=self.encoder.device, weights_only=False)
        self.model.load_state_dict(state["model"], strict=False)
        self.loss.load_state_dict(state["loss"])
        self.encoder.trained_text, self.encoder.trained_vision = state["trained"]
        state["progress"] = Progress(**state["progress"])
        return state

    def _write_report(self, report: dict[str, Any]) -> None:
        (self.out / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def cosine_with_warmup(total_steps: int, warmup_fraction: float = 0.1):
    """Multiplier of the base learning rate: linear warm-up, then cosine decay to 10%."""
    warmup = max(1, round(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        done = (step - warmup) / max(1, total_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))

    return factor
