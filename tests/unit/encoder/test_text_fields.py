"""The per-field token budget: a long field never crowds out the title, room is shared."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from transformers import AutoTokenizer

from encoder.text_fields import TextComposer, allocate
from encoder.towers.text import packaged_minilm

lengths = st.lists(st.integers(0, 300), min_size=1, max_size=6)


@given(st.data())
def test_allocation_fits_capacity_and_never_exceeds_a_field(data: st.DataObject) -> None:
    wanted = data.draw(lengths)
    budgets = data.draw(st.lists(st.integers(1, 100), min_size=len(wanted), max_size=len(wanted)))
    capacity = data.draw(st.integers(0, 400))
    take = allocate(wanted, budgets, capacity)
    assert sum(take) <= capacity
    assert all(0 <= t <= w for t, w in zip(take, wanted, strict=True))
    # Nothing is wasted: either every field is whole or the capacity is used up.
    assert take == wanted or sum(take) == capacity


@given(st.data())
def test_budgets_are_guaranteed_when_they_fit(data: st.DataObject) -> None:
    wanted = data.draw(lengths)
    budgets = data.draw(st.lists(st.integers(1, 60), min_size=len(wanted), max_size=len(wanted)))
    capacity = sum(budgets) + data.draw(st.integers(0, 50))
    take = allocate(wanted, budgets, capacity)
    assert all(t >= min(w, b) for t, w, b in zip(take, wanted, budgets, strict=True))


def test_leftover_goes_to_earlier_fields_and_overflow_comes_from_later_ones() -> None:
    assert allocate([5, 500, 3], [32, 96, 16], 120) == [5, 112, 3]
    assert allocate([50, 500, 30], [32, 96, 16], 100) == [32, 68, 0]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(packaged_minilm())


def test_long_asr_does_not_crowd_out_the_title(tokenizer) -> None:
    composer = TextComposer(tokenizer, 48, {"title": 12, "asr": 16, "tags": 8})
    text = composer.compose(
        {"title": "Late night ramen cooking live", "asr": "stir the broth " * 200, "tags": "food"}
    )
    assert text.startswith("title: Late night ramen cooking live | asr: stir the broth")
    assert text.endswith("| tags: food")
    assert len(tokenizer(text)["input_ids"]) <= 48


def test_fields_are_cut_at_token_boundaries_and_empty_fields_are_left_out(tokenizer) -> None:
    composer = TextComposer(tokenizer, 16, {"title": 4, "ocr": 4})
    text = composer.compose({"title": "  ", "ocr": "unbelievable transformations everywhere today"})
    assert text.startswith("ocr: ") and "title" not in text
    body = text.removeprefix("ocr: ")
    assert "unbelievable transformations everywhere today".startswith(body)
    assert composer.compose({}) == ""
