"""The two-stage trainer: what each stage trains, its files, and an exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
import torch
from safetensors.torch import load_file

from configs.encoder import AlignStage, EncoderSettings, JointStage, TrainSettings
from encoder import EncoderError, SliceEncoder
from encoder.slices import SliceLine
from encoder.training import PairLine, Trainer, train_encoder, write_pairs
from tests.unit.encoder.checkpoints import image_bytes

TOPICS = ["ramen cooking", "chess endgames", "football highlights", "guitar lessons"]


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    """16 pairs over 4 topics and 2 domains, each slice with a real PNG frame on disk."""
    lines = []
    for i in range(16):
        topic = TOPICS[i % 4]
        frame = tmp_path / f"f{i}.png"
        frame.write_bytes(image_bytes((60 * (i % 4), 40, 200 - 40 * (i % 4))))
        item = SliceLine(
            slice_id=f"s{i}",
            title=f"{topic} stream {i}",
            frames=[frame.name],
            domain="live" if i % 2 else "short_video",
        )
        lines.append(PairLine(query=f"{topic} please", slice=item, group=f"room-{i % 6}"))
    write_pairs(lines, tmp_path / "pairs.jsonl")
    return tmp_path / "pairs.jsonl"


def small(settings: EncoderSettings, **train: object) -> EncoderSettings:
    base = TrainSettings(
        batch_size=4,
        query_max_length=12,
        eval_fraction=0.25,
        align=AlignStage(epochs=2, lr=5e-3),
        joint=JointStage(epochs=1, text_layers=1),
    )
    return msgspec.structs.replace(settings, train=msgspec.structs.replace(base, **train))


def trainable(encoder: SliceEncoder) -> set[str]:
    return {name.split(".")[0] for name, p in encoder.model.named_parameters() if p.requires_grad}


def test_align_trains_heads_only_and_joint_adds_the_last_text_layer(fused_settings, tmp_path):
    encoder = SliceEncoder.from_settings(fused_settings)
    trainer = Trainer(encoder, small(fused_settings).train, tmp_path, progress=False)
    trainer._configure("align")
    assert trainable(encoder) == {"projector", "head"} and trainer.loss.log_scale.requires_grad
    assert not encoder.model.text.training and not encoder.model.vision.training
    trainer._configure("joint")
    text = {n for n, p in encoder.model.text.named_parameters() if p.requires_grad}
    assert text and all(n.startswith("model.encoder.layer.5.") for n in text)
    assert "vision" not in trainable(encoder) and encoder.model.text.training
    assert encoder.trained_text and not encoder.trained_vision


def test_joint_with_train_vision_also_trains_the_vision_tower_and_all_text_layers(
    fused_settings, tmp_path
):
    settings = small(fused_settings, joint=JointStage(epochs=1, text_layers=0, train_vision=True))
    encoder = SliceEncoder.from_settings(settings)
    trainer = Trainer(encoder, settings.train, tmp_path, progress=False)
    groups = trainer._configure("joint")
    vision = list(encoder.model.vision.parameters())
    assert vision and all(p.requires_grad for p in vision) and encoder.model.vision.training
    assert all(p.requires_grad for p in encoder.model.text.parameters())  # text_layers 0: all
    assert {"vision", "text", "projector", "head"} <= trainable(encoder)
    in_optimizer = {id(p) for g in groups for p in g["params"]}
    assert {id(p) for p in vision} <= in_optimizer
    assert encoder.trained_text and encoder.trained_vision
    trainer._configure("align")  # back to stage 1: both towers frozen again
    assert trainable(encoder) == {"projector", "head"} and not encoder.model.vision.training


def test_training_writes_its_files_and_lowers_the_loss(fused_settings, pairs_file, tmp_path):
    out = tmp_path / "run"
    report = train_encoder(small(fused_settings), pairs_file, out, progress=False)
    assert set(report) == {"untrained", "align", "joint"}
    assert report["joint"]["queries"] == 4  # the held-out rooms' distinct queries
    steps = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert [s["stage"] for s in steps] == ["align"] * 6 + ["joint"] * 3
    align = [s["loss"] for s in steps[:6]]
    assert sum(align[3:]) < sum(align[:3])
    assert json.loads((out / "report.json").read_text()) == report
    # The joint stage changed the text tower, so its folder embeds it.
    assert (out / "encoder-joint" / "text" / "model.safetensors").is_file()
    assert not (out / "encoder-align" / "text").exists()
    SliceEncoder.from_pretrained(out / "encoder-joint", device="cpu")


def test_an_interrupted_run_resumes_to_the_same_weights(
    fused_settings, pairs_file, tmp_path, monkeypatch
):
    settings = small(fused_settings, stages=["align"], eval_fraction=0.0)
    train_encoder(settings, pairs_file, tmp_path / "straight", progress=False)

    calls = {"n": 0}
    real_step = Trainer._step

    def interrupted(self, *args):
        calls["n"] += 1
        if calls["n"] == 5:  # first step of epoch 2 (4 steps per epoch)
            raise KeyboardInterrupt
        return real_step(self, *args)

    monkeypatch.setattr(Trainer, "_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_encoder(settings, pairs_file, tmp_path / "cut", progress=False)
    monkeypatch.setattr(Trainer, "_step", real_step)
    with pytest.raises(EncoderError, match="not empty"):
        train_encoder(settings, pairs_file, tmp_path / "cut", progress=False)
    train_encoder(settings, pairs_file, tmp_path / "cut", resume=True, progress=False)

    straight = load_file(str(tmp_path / "straight" / "encoder-align" / "heads.safetensors"))
    resumed = load_file(str(tmp_path / "cut" / "encoder-align" / "heads.safetensors"))
    assert straight.keys() == resumed.keys()
    for name in straight:
        torch.testing.assert_close(straight[name], resumed[name])
    lines = (tmp_path / "cut" / "loss.jsonl").read_text().splitlines()
    assert len(lines) == 8


def test_a_training_slice_with_a_missing_frame_stops_with_its_name(fused_settings, tmp_path):
    lines = [
        PairLine(query="q", slice=SliceLine(slice_id=f"s{i}", frames=["gone.png"]))
        for i in range(4)
    ]
    write_pairs(lines, tmp_path / "pairs.jsonl")
    settings = small(fused_settings, eval_fraction=0.0)
    with pytest.raises(EncoderError, match=r"training slice 's\d': frame .*gone.png"):
        train_encoder(settings, tmp_path / "pairs.jsonl", tmp_path / "run", progress=False)
