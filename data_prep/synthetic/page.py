"""Composing rendered lines into a page: paper, margins, line spacing, skew, noise."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.transform import rotate

from data_prep.alto_writer import AltoLine
from data_prep.synthetic.render import ink_outline, random_style, render_line, text_width


@dataclass
class PageLayout:
    width: int
    height: int
    font: Path
    size: int
    left_margin: int
    right_margin: int
    top_margin: int
    bottom_margin: int
    line_spacing: float  # baseline to baseline, px
    skew_degrees: float


def random_layout(rng: np.random.Generator, width: int, height: int, font: Path, size: int,
                  max_skew: float) -> PageLayout:
    return PageLayout(
        width=width, height=height, font=font, size=size,
        left_margin=int(rng.uniform(0.06, 0.14) * width),
        right_margin=int(rng.uniform(0.04, 0.10) * width),
        top_margin=int(rng.uniform(0.05, 0.12) * height),
        bottom_margin=int(rng.uniform(0.05, 0.10) * height),
        line_spacing=float(rng.uniform(1.7, 2.5) * size),
        skew_degrees=float(rng.uniform(-max_skew, max_skew)),
    )


def wrap_words(words: list[str], layout: PageLayout, rng: np.random.Generator,
               available: float | None = None, size: int | None = None) -> list[str]:
    """Greedy wrap to a ragged right edge (each line's allowed width varies a little);
    ``available``: the width to fill (default: between the margins), ``size``: the font size."""
    available = layout.width - layout.left_margin - layout.right_margin if available is None else available
    size = layout.size if size is None else size
    lines: list[str] = []
    current: list[str] = []
    limit = available * rng.uniform(0.85, 1.0)
    for word in words:
        candidate = " ".join(current + [word])
        if current and text_width(candidate, layout.font, size) * 1.1 > limit:
            lines.append(" ".join(current))
            current = [word]
            limit = available * rng.uniform(0.85, 1.0)
        else:
            current.append(word)
    if current:
        lines.append(" ".join(current))
    return lines


def running_text(sentences: list[str], start: int, wanted: int, layout: PageLayout, rng: np.random.Generator,
                 available: float | None = None) -> list[str]:
    """``wanted`` lines of running text: sentences from ``start`` on (wrapping round the
    list), wrapped as :func:`wrap_words` does."""
    words: list[str] = []
    while True:
        words += sentences[start % len(sentences)].split()
        start += 1
        texts = wrap_words(words, layout, rng, available)
        if len(texts) > wanted:
            return texts[:wanted]


def lines_per_page(layout: PageLayout) -> int:
    usable = layout.height - layout.top_margin - layout.bottom_margin - 1.5 * layout.size
    return max(1, int(usable // layout.line_spacing) + 1)


@dataclass
class Block:
    """A block of lines before the page is rotated: a column or a margin note."""

    texts: list[str]  # one per line
    left: float  # where its lines start
    first_baseline: float
    size: int  # font size
    spacing: float  # baseline to baseline
    indent_width: float  # the first line may be indented by 2-8% of this


def compose_page(texts: list[str], layout: PageLayout,
                 rng: np.random.Generator) -> tuple[np.ndarray, list[AltoLine]]:
    """Render ``texts`` (one per line) onto a page; returns the grayscale page and its lines."""
    block = Block(texts, layout.left_margin, layout.top_margin + layout.size, layout.size, layout.line_spacing, layout.width)
    page, placed = compose_blocks([block], layout, rng)
    return page, placed[0][0]


def compose_blocks(blocks: list[Block], layout: PageLayout,
                   rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[list[AltoLine], list[list[float]]]]]:
    """Render ``blocks`` onto one page; returns the grayscale page and, per block, its
    lines and its outline (the box of its lines, rotated with the page)."""
    paper = float(rng.uniform(205, 245))
    ink_level = float(rng.uniform(15, 80))
    darkness = np.zeros((layout.height, layout.width), dtype=np.float32)
    placed, number = [], 0
    for block in blocks:
        lines = _place_block(darkness, block, layout, number, rng)
        number += len(block.texts)
        box = [p for line in lines for p in line.polygon]
        outline = _box(box) if box else []
        placed.append((lines, outline))
    darkness = rotate(darkness, layout.skew_degrees, order=1, preserve_range=True, mode="constant", cval=0)
    for lines, outline in placed:
        for line in lines:
            line.polygon = _rotate_points(line.polygon, layout)
            line.baseline = _rotate_points(line.baseline, layout)
        outline[:] = _rotate_points(outline, layout)
    page = _paper(rng, layout, paper) * (1 - darkness) + ink_level * darkness
    page += rng.normal(0, rng.uniform(2, 6), size=page.shape)
    return np.clip(page, 0, 255).astype(np.uint8), placed


def _place_block(darkness: np.ndarray, block: Block, layout: PageLayout, first_number: int,
                 rng: np.random.Generator) -> list[AltoLine]:
    """Render the lines of ``block`` into ``darkness`` (until the page ends); their ground truth."""
    lines: list[AltoLine] = []
    baseline_y = block.first_baseline
    for number, text in enumerate(block.texts):
        style = random_style(rng, int(block.size * rng.uniform(0.93, 1.07)))
        rendered = render_line(text, layout.font, style, rng)
        outline = ink_outline(rendered.ink, rendered.baseline_y, style.size)
        if outline is None:
            continue
        polygon, baseline = outline
        indent = 0.0 if number else float(rng.choice([0.0, rng.uniform(0.02, 0.08) * block.indent_width]))
        x0 = block.left + indent + rng.normal(0, 4) - polygon[0][0]
        y0 = baseline_y + rng.normal(0, 0.05 * block.size) - float(np.median([p[1] for p in baseline]))
        placed = _paste(darkness, rendered.ink * float(rng.uniform(0.75, 1.0)), int(round(x0)), int(round(y0)))
        if not placed:
            break
        shift = lambda points: [[x + round(x0), y + round(y0)] for x, y in points]  # noqa: E731
        lines.append(AltoLine(id=f"l{first_number + number:02d}", polygon=shift(polygon),
                              baseline=shift(baseline), text=text))
        baseline_y += block.spacing * rng.uniform(0.95, 1.05)
    return lines


def _box(points: list[list[float]]) -> list[list[float]]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return [[min(xs), min(ys)], [max(xs), min(ys)], [max(xs), max(ys)], [min(xs), max(ys)]]


def _paste(canvas: np.ndarray, ink: np.ndarray, x: int, y: int) -> bool:
    height, width = ink.shape
    if y < 0 or y + height > canvas.shape[0]:
        return False
    left, right = max(0, x), min(canvas.shape[1], x + width)
    region = canvas[y:y + height, left:right]
    np.maximum(region, ink[:, left - x:right - x], out=region)
    return True


def _rotate_points(points: list[list[float]], layout: PageLayout) -> list[list[float]]:
    """Where skimage's ``rotate(angle)`` (counter-clockwise about the centre) moves points."""
    angle = math.radians(layout.skew_degrees)
    cx, cy = (layout.width - 1) / 2, (layout.height - 1) / 2
    cos, sin = math.cos(angle), math.sin(angle)
    return [[round(cx + (x - cx) * cos + (y - cy) * sin, 1), round(cy - (x - cx) * sin + (y - cy) * cos, 1)]
            for x, y in points]


def _paper(rng: np.random.Generator, layout: PageLayout, level: float) -> np.ndarray:
    """Paper with uneven illumination: a smooth low-frequency field around ``level``."""
    coarse = rng.normal(0, 1, size=(layout.height // 64 + 2, layout.width // 64 + 2))
    coarse = gaussian_filter(coarse, 1.5)
    coarse /= coarse.std() + 1e-6
    rows = np.linspace(0, coarse.shape[0] - 1, layout.height)
    cols = np.linspace(0, coarse.shape[1] - 1, layout.width)
    field = coarse[np.ix_(rows.astype(int), cols.astype(int))]
    field = gaussian_filter(field, 20)
    return level + rng.uniform(2, 8) * field
