"""The fused encoder on the real MiniLM text tower and a tiny SigLIP saved to disk."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from configs.encoder import EncoderSettings, TextSettings
from encoder import EncoderError, SliceEncoder, SliceInput, SliceInputError
from encoder.batching import Collator
from encoder.towers.text import packaged_minilm
from tests.unit.encoder.checkpoints import image_bytes

RED, BLUE = image_bytes((220, 20, 20)), image_bytes((20, 20, 220), (64, 32))


def slices() -> list[SliceInput]:
    return [
        SliceInput(slice_id="both", title="ramen cooking live", tags=["food"], frames=[RED, BLUE]),
        SliceInput(slice_id="text", title="chess endgame lesson", asr="the rook goes to e8"),
        SliceInput(slice_id="frames", frames=[BLUE]),
        SliceInput(slice_id="empty"),
    ]


def test_fused_sequence_shapes_and_masks(fused: SliceEncoder) -> None:
    collator: Collator = fused.collator
    prepared = collator.slices(slices())
    batch = prepared.batch
    assert batch is not None and batch.pixels is not None
    # Three usable frames: slots 0, 1 (row 0) and 4 (row 2, first frame), with F = 2.
    assert batch.frame_slots.tolist() == [0, 1, 4]
    assert batch.pixels["pixel_values"].shape == (3, 3, 32, 32)
    model = fused.model
    assert model.visual_length == 2 * 4
    with torch.inference_mode():
        slots, slot_mask = model.visual_slots(batch, 4)
    assert slots.shape == (4, 8, 384) and slot_mask.shape == (4, 8)
    assert slot_mask.sum(1).tolist() == [8, 0, 4, 0]
    assert torch.all(slots[slot_mask == 0] == 0)


def test_every_slice_encodes_to_a_unit_vector_with_or_without_modalities(
    fused: SliceEncoder,
) -> None:
    z = fused.encode(slices(), batch_size=3)
    assert z.shape == (4, 128) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    assert len({tuple(np.round(row, 5)) for row in z}) == 4


def test_encoding_is_deterministic_and_independent_of_batch_company(fused: SliceEncoder) -> None:
    together = fused.encode(slices(), batch_size=4)
    alone = np.concatenate([fused.encode([s], batch_size=1) for s in slices()])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_array_equal(together, fused.encode(slices(), batch_size=4))


def test_frames_change_the_embedding(fused: SliceEncoder) -> None:
    base = SliceInput(slice_id="x", title="ramen cooking live")
    with_red = SliceInput(slice_id="x", title="ramen cooking live", frames=[RED])
    with_blue = SliceInput(slice_id="x", title="ramen cooking live", frames=[BLUE])
    z = fused.encode([base, with_red, with_blue])
    assert not np.allclose(z[0], z[1], atol=1e-4) and not np.allclose(z[1], z[2], atol=1e-4)


def test_a_corrupt_frame_is_dropped_and_counted_not_the_batch(fused: SliceEncoder) -> None:
    before = fused.frame_stats.as_dict()["dropped"].get("corrupt", 0)
    clean = SliceInput(slice_id="c", title="ramen cooking live", frames=[RED])
    dirty = SliceInput(slice_id="c", title="ramen cooking live", frames=[RED, b"\x89PNG broken"])
    results = fused.encode_each([clean, dirty])
    assert all(r.ok for r in results)
    assert results[1].frames_used == 1 and results[1].dropped_frames[0].startswith("corrupt")
    np.testing.assert_allclose(results[0].embedding, results[1].embedding, atol=1e-5)
    assert fused.frame_stats.as_dict()["dropped"]["corrupt"] == before + 1


def test_a_missing_frame_path_fails_only_its_slice(fused: SliceEncoder, tmp_path) -> None:
    bad = SliceInput(slice_id="bad", title="x", frames=[str(tmp_path / "gone.jpg")])
    results = fused.encode_each([slices()[1], bad, slices()[3]])
    assert [r.ok for r in results] == [True, False, True]
    assert "gone.jpg' does not exist" in results[1].error and results[1].embedding is None
    with pytest.raises(SliceInputError, match=r"slice 1 \('bad'\): frame .* does not exist"):
        fused.encode([slices()[1], bad])


def test_the_text_tower_pools_like_sentence_transformers(fused: SliceEncoder) -> None:
    """Mean pooling over MiniLM's tokens equals the real all-MiniLM-L6-v2 pipeline's output."""
    text_only = SliceEncoder.from_settings(EncoderSettings(device="cpu"))
    text = text_only.collator.composer.compose(slices()[1].text_fields())
    model = text_only.model
    with torch.inference_mode():
        inputs = model.text.tokenize([text])
        ours = model.text(model.text.embed(inputs["input_ids"]), inputs["attention_mask"])
    reference = SentenceTransformer(str(packaged_minilm()), device="cpu")
    theirs = reference.encode([text], convert_to_tensor=True, normalize_embeddings=False)
    torch.testing.assert_close(
        torch.nn.functional.normalize(ours, dim=-1),
        torch.nn.functional.normalize(theirs, dim=-1),
        atol=1e-5,
        rtol=1e-4,
    )
    assert model.vision is None and model.visual_length == 0
    assert text_only.encode(slices()).shape == (4, 128)


def test_a_text_only_encoder_ignores_frames_and_counts_them() -> None:
    text_only = SliceEncoder.from_settings(EncoderSettings(device="cpu"))
    with_frames, without = (
        slices()[0],
        SliceInput(slice_id="both", title="ramen cooking live", tags=["food"]),
    )
    z = text_only.encode([with_frames, without])
    np.testing.assert_allclose(z[0], z[1], atol=1e-6)
    frames = len(with_frames.frames)
    assert frames > 0
    assert text_only.frame_stats.as_dict() == {
        "seen": 0,
        "used": 0,
        "dropped": {},
        "ignored": frames,
    }


def test_queries_encode_as_text_only_unit_vectors(fused: SliceEncoder) -> None:
    q = fused.encode_queries(["ramen cooking", "chess lesson"])
    assert q.shape == (2, 128)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, rtol=1e-5)


def test_a_fused_sequence_longer_than_the_model_allows_is_refused(fused_settings) -> None:
    too_long = EncoderSettings(vision=fused_settings.vision, text=TextSettings(max_length=510))
    with pytest.raises(EncoderError, match=r"8 visual \+ 510 text tokens exceeds .* 512 positions"):
        SliceEncoder.from_settings(too_long)


def test_fresh_encoders_agree_whatever_the_global_seed(fused_settings: EncoderSettings) -> None:
    """Two processes (workers) building the same untrained encoder embed a slice alike."""
    slices = [SliceInput(slice_id="s", title="pasta live", tags=["cooking"])]
    torch.manual_seed(1)
    first = SliceEncoder.from_settings(fused_settings).encode(slices)
    torch.manual_seed(2)
    second = SliceEncoder.from_settings(fused_settings).encode(slices)
    np.testing.assert_array_equal(first, second)
