"""A text-only encoder tells, per slice, how many frames it did not look at."""

from __future__ import annotations

from configs.encoder import EncoderSettings
from encoder import SliceEncoder, SliceInput


def test_each_outcome_counts_the_frames_a_text_only_encoder_ignored() -> None:
    text_only = SliceEncoder.from_settings(EncoderSettings(device="cpu"))
    outcomes = text_only.encode_each(
        [
            SliceInput(slice_id="two", title="cooking", frames=[b"not read", b"at all"]),
            SliceInput(slice_id="none", title="chess"),
        ]
    )
    assert [(o.slice_id, o.ignored_frames, o.frames_used) for o in outcomes] == [
        ("two", 2, 0),
        ("none", 0, 0),
    ]
    assert all(o.ok for o in outcomes)
    assert text_only.frame_stats.as_dict()["ignored"] == 2
