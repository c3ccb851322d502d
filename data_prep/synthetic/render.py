"""Rendering handwriting-style lines and composing them into page images.

A line is drawn word by word (per-word baseline jitter and spacing), then warped
once by a combined coordinate map: slant (shear about the baseline), a slow
baseline wave and an elastic field; blurred and given an ink darkness.  Because
the warp is analytic apart from the small elastic part, the baseline of the
warped line is known exactly, and the line outline is traced from the ink itself.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import gaussian_filter, map_coordinates

logging.getLogger("fontTools").setLevel(logging.ERROR)


@dataclass
class LineStyle:
    """Per-line variation; :func:`random_style` draws one."""

    size: int
    slant: float  # shear, x shift per px above the baseline
    wave_amplitude: float
    wave_length: float
    wave_phase: float
    elastic_px: float
    elastic_sigma: float
    blur: float
    stroke: int
    word_jitter: float  # vertical jitter of words, in px
    space_factor: float


def random_style(rng: np.random.Generator, size: int) -> LineStyle:
    return LineStyle(
        size=size,
        slant=float(rng.uniform(-0.15, 0.35)),
        wave_amplitude=float(rng.uniform(0, 0.08) * size),
        wave_length=float(rng.uniform(300, 1200)),
        wave_phase=float(rng.uniform(0, 2 * math.pi)),
        elastic_px=float(rng.uniform(0.5, 2.0)),
        elastic_sigma=float(rng.uniform(4, 9)),
        blur=float(rng.uniform(0.0, 1.0)),
        stroke=int(rng.choice([0, 0, 0, 1])),
        word_jitter=float(rng.uniform(0, 0.06) * size),
        space_factor=float(rng.uniform(0.8, 1.5)),
    )


@dataclass
class RenderedLine:
    ink: np.ndarray  # float32 alpha in [0, 1], H x W
    baseline_y: np.ndarray  # baseline row for every column (float, len W)


def text_width(text: str, font_path: Path, size: int) -> float:
    return _font(str(font_path), size).getlength(text)


def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return _FONT_CACHE.setdefault((path, size), ImageFont.truetype(path, size))


_FONT_CACHE: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}


def render_line(text: str, font_path: Path, style: LineStyle, rng: np.random.Generator) -> RenderedLine:
    font = _font(str(font_path), style.size)
    ascent, descent = font.getmetrics()
    space = font.getlength(" ") * style.space_factor
    words = text.split(" ")
    pad = int(style.size * 0.6)
    slant_room = int(abs(style.slant) * (ascent + pad)) + pad
    width = int(sum(font.getlength(w) for w in words) + space * len(words) + 2 * slant_room + 2 * pad)
    height = int(ascent + descent + 2 * pad + 2 * style.word_jitter)
    baseline = pad + ascent + style.word_jitter
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    x = float(slant_room + pad)
    for word in words:
        dy = rng.normal(0, style.word_jitter / 2) if style.word_jitter else 0.0
        draw.text((x, baseline + dy), word, font=font, fill=255, anchor="ls", stroke_width=style.stroke, stroke_fill=255)
        x += font.getlength(word) + space * float(rng.uniform(0.85, 1.15))
    ink = np.asarray(canvas, dtype=np.float32) / 255.0
    return _warp(ink, baseline, style, rng)


def _warp(ink: np.ndarray, baseline: float, style: LineStyle, rng: np.random.Generator) -> RenderedLine:
    height, width = ink.shape
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    columns = np.arange(width, dtype=np.float32)
    wave = style.wave_amplitude * np.sin(2 * math.pi * columns / style.wave_length + style.wave_phase)
    source_rows = rows + wave[None, :]
    source_cols = cols - style.slant * (baseline - source_rows)
    if style.elastic_px > 0:
        for grid in (source_rows, source_cols):
            field = gaussian_filter(rng.uniform(-1, 1, size=(height, width)).astype(np.float32), style.elastic_sigma)
            grid += field * (style.elastic_px / (field.std() + 1e-6))
    warped = map_coordinates(ink, [source_rows, source_cols], order=1, mode="constant", cval=0.0)
    if style.blur > 0.2:
        warped = gaussian_filter(warped, style.blur)
    return RenderedLine(ink=np.clip(warped, 0, 1).astype(np.float32), baseline_y=baseline - wave)


def ink_outline(ink: np.ndarray, baseline_y: np.ndarray, size: int, step: int = 24,
                pad: int = 4) -> tuple[list[list[float]], list[list[float]]] | None:
    """Polygon following the ink (upper and lower envelope per column strip) and the
    baseline as a polyline, in line-image coordinates; None when there is no ink."""
    mask = ink > 0.25
    columns = np.flatnonzero(mask.any(axis=0))
    if columns.size == 0:
        return None
    left, right = int(columns[0]), int(columns[-1])
    edges = list(range(left, right + 1, step)) + [right + 1]
    top, bottom, centres = [], [], []
    for start, stop in zip(edges[:-1], edges[1:]):
        strip = np.flatnonzero(mask[:, start:stop].any(axis=1))
        centre = (start + stop) / 2
        base = float(np.interp(centre, np.arange(len(baseline_y)), baseline_y))
        upper = strip[0] if strip.size else base - 0.55 * size
        lower = strip[-1] if strip.size else base + 0.1 * size
        top.append(max(0.0, float(upper) - pad))
        bottom.append(min(ink.shape[0] - 1.0, float(lower) + pad))
        centres.append(centre)
    xs = [float(left - pad)] + centres + [float(right + pad)]
    upper_points = [[x, y] for x, y in zip(xs, [top[0]] + top + [top[-1]])]
    lower_points = [[x, y] for x, y in zip(xs, [bottom[0]] + bottom + [bottom[-1]])][::-1]
    samples = np.linspace(left, right, num=max(2, (right - left) // 150 + 2))
    baseline = [[float(x), float(np.interp(x, np.arange(len(baseline_y)), baseline_y))] for x in samples]
    return upper_points + lower_points, baseline
