"""Augmentation recipes keep a line a line: same height, ink in [0, 1], width within the cap,
and a function of the generator's seed only."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.augment import RECIPES, augment


def a_line(width: int, height: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    line = np.zeros((height, width), dtype=np.float32)
    for x in range(4, width - 4, 9):  # vertical strokes, as a crude handwriting
        top = int(rng.integers(4, height // 3))
        line[top: height - 6, x: x + 2] = 1.0
    return line


@settings(max_examples=40, deadline=None)
@given(recipe=st.sampled_from(RECIPES), width=st.integers(12, 600), seed=st.integers(0, 2 ** 20),
       cap=st.sampled_from([8, 20, 64, 512]))
def test_a_variant_keeps_the_height_the_ink_range_and_the_width_cap(recipe, width, seed, cap):
    out = augment(a_line(width), cap, torch.Generator().manual_seed(seed), recipe)
    assert out.dtype == np.float32 and out.shape[0] == 32
    assert 1 <= out.shape[1] <= cap
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("recipe", RECIPES)
def test_the_same_seed_gives_the_same_pixels_and_another_seed_other_pixels(recipe):
    line = a_line(300)
    first, again = (augment(line, 512, torch.Generator().manual_seed(5), recipe) for _ in range(2))
    other = augment(line, 512, torch.Generator().manual_seed(6), recipe)
    assert np.array_equal(first, again)
    assert first.shape != other.shape or not np.array_equal(first, other)


def test_the_full_recipe_keeps_most_of_the_ink():
    """A variant may thin, thicken or fade the strokes but not wipe the line out."""
    line = a_line(300)
    kept = [augment(line, 512, torch.Generator().manual_seed(seed), "full").sum() / line.sum() for seed in range(40)]
    assert min(kept) > 0.3
