"""Frame guards: bad images are dropped with a reason, the caller's mistakes are reported."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from encoder.errors import SliceInputError
from encoder.images import BadFrameError, FrameLoader, FrameStats, sample_evenly
from tests.unit.encoder.checkpoints import image_bytes

LOADER = FrameLoader(max_pixels=25_000_000, max_bytes=1 << 20)


def test_png_jpeg_and_paths_open_as_rgb(tmp_path: Path) -> None:
    path = tmp_path / "frame.jpg"
    path.write_bytes(image_bytes((10, 200, 30), fmt="JPEG"))
    for frame in (image_bytes((1, 2, 3)), str(path), path):
        image = LOADER.open(frame)
        assert image.mode == "RGB" and image.size == (40, 30)


@pytest.mark.parametrize(
    "data",
    [
        b"definitely not an image",
        image_bytes((5, 5, 5), (64, 64), "JPEG")[:300],  # truncated mid-scan
        image_bytes((5, 5, 5), (64, 64), "PNG")[:60],  # truncated in the header chunks
    ],
    ids=["garbage", "truncated-jpeg", "truncated-png"],
)
def test_corrupt_and_truncated_images_are_bad_frames(data: bytes) -> None:
    with pytest.raises(BadFrameError) as caught:
        LOADER.open(data)
    assert caught.value.reason == "corrupt"


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, "PNG")  # 400M pixels in a small file
    assert len(buffer.getvalue()) < 1 << 20
    with pytest.raises(BadFrameError) as caught:
        LOADER.open(buffer.getvalue())
    assert caught.value.reason == "oversized"


def test_the_configured_pixel_cap_applies_before_decoding() -> None:
    capped = FrameLoader(max_pixels=1000, max_bytes=1 << 20)
    with pytest.raises(BadFrameError, match="40x30 pixels > 1,000 allowed"):
        capped.open(image_bytes((9, 9, 9)))


def test_too_many_bytes_is_refused_before_decoding(tmp_path: Path) -> None:
    small = FrameLoader(max_pixels=10_000, max_bytes=100)
    path = tmp_path / "big.png"
    path.write_bytes(image_bytes((0, 0, 0)) + b"\0" * 200)
    for frame in (path.read_bytes(), path):
        with pytest.raises(BadFrameError, match="bytes >"):
            small.open(frame)


def test_missing_paths_folders_and_wrong_types_are_the_callers_fault(tmp_path: Path) -> None:
    with pytest.raises(SliceInputError, match="does not exist"):
        LOADER.open(tmp_path / "nope.jpg")
    with pytest.raises(SliceInputError, match="is not a file"):
        LOADER.open(tmp_path)
    with pytest.raises(SliceInputError, match="image bytes or a file path, got int"):
        LOADER.open(42)


def test_open_all_drops_bad_frames_logs_them_and_keeps_the_rest(caplog) -> None:
    images, dropped = LOADER.open_all([image_bytes((1, 1, 1)), b"junk"], "s1")
    assert len(images) == 1 and dropped == [dropped[0]] and dropped[0].startswith("corrupt:")
    assert "slice s1: frame 1 dropped" in caplog.text
    stats = FrameStats()
    stats.record(len(images), dropped)
    stats.record(2, [])
    stats.ignore(2)
    assert stats.as_dict() == {"seen": 4, "used": 3, "dropped": {"corrupt": 1}, "ignored": 2}


def test_frames_are_sampled_evenly_keeping_first_and_last() -> None:
    frames = list(range(10))
    assert sample_evenly(frames, 4) == [0, 3, 6, 9]
    assert sample_evenly(frames, 1) == [0]
    assert sample_evenly(frames[:3], 4) == [0, 1, 2]
