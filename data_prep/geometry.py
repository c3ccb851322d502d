"""Line geometry: parsing coordinate strings and cropping a line by its polygon.

A line crop is the bounding box of the line polygon, with every pixel outside the
polygon set to the page background, so ascenders and descenders of neighbouring
lines that enter the box do not leak into the crop.
"""
from __future__ import annotations

import math
import re

import numpy as np
from PIL import Image, ImageDraw

from common import skips

Polygon = list[list[float]]

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_SEPARATORS = re.compile(r"[\s,]+")
MIN_LINE_HEIGHT = 5  # px: no glyph is legible in fewer rows
MIN_CHAR_WIDTH = 2  # px of line width per character of its transcription


class GeometryError(ValueError):
    """A line's coordinates cannot give a usable crop; ``reason`` is a skips.* key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _quote(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_number(text: str | None) -> float:
    """One coordinate: a finite decimal number, else :class:`GeometryError` with its reason
    (nan/inf/overflow: non-finite; anything else: unreadable; missing: no coordinates)."""
    if text is None or not text.strip():
        raise GeometryError(skips.NO_COORDINATES, "attribute missing or empty")
    text = text.strip()
    if _NUMBER.fullmatch(text):
        value = float(text)
        if math.isfinite(value):
            return value
        raise GeometryError(skips.NON_FINITE, f"{_quote(text)} overflows a float")
    if text.lstrip("+-").lower() in ("nan", "inf", "infinity"):
        raise GeometryError(skips.NON_FINITE, _quote(text))
    raise GeometryError(skips.BAD_GEOMETRY, f"{_quote(text)} is not a number")


def parse_points(text: str | None) -> Polygon:
    """Parse ``"x1,y1 x2,y2"`` (PAGE, ALTO 4.2+) or ``"x1 y1 x2 y2"`` (older ALTO).

    Every token must be a finite number and their count even; otherwise
    :class:`GeometryError` (never a silent re-pairing of the remaining numbers)."""
    if not text or not text.strip():
        return []
    numbers = [parse_number(token) for token in _SEPARATORS.split(text.strip()) if token]
    if len(numbers) % 2:
        raise GeometryError(skips.ODD_COORDINATES, f"{len(numbers)} numbers in {_quote(text)}")
    return [[numbers[i], numbers[i + 1]] for i in range(0, len(numbers), 2)]


def min_line_size(text: str) -> tuple[int, int]:
    """Smallest (width, height) crop that can hold ``text``: MIN_LINE_HEIGHT rows and
    MIN_CHAR_WIDTH columns per character (at least as wide as high)."""
    return max(MIN_LINE_HEIGHT, MIN_CHAR_WIDTH * len(text)), MIN_LINE_HEIGHT


def format_points(points: Polygon, separator: str = " ") -> str:
    """Inverse of :func:`parse_points`; ``separator`` joins x and y (ALTO: ' ', PAGE: ',')."""
    pairs = (f"{round(x)}{separator}{round(y)}" for x, y in points)
    return " ".join(pairs)


def box_polygon(left: float, top: float, width: float, height: float) -> Polygon:
    return [[left, top], [left + width, top], [left + width, top + height], [left, top + height]]


def polygon_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the pixels inside ``points`` (x, y), border included.
    PIL's scanline fill is used: skimage's is O(pixels x vertices), slow for traced outlines."""
    mask = Image.new("L", (shape[1], shape[0]), 0)
    ImageDraw.Draw(mask).polygon([(float(x), float(y)) for x, y in points], fill=255, outline=255)
    return np.asarray(mask) > 0


def polygon_area(points: np.ndarray) -> float:
    """Area by the shoelace formula (absolute value, any orientation)."""
    xs, ys = points[:, 0], points[:, 1]
    return float(abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))) / 2)


def page_background(page: np.ndarray) -> int:
    """Paper level of a grayscale page: the median, since most of a page is paper."""
    sample = page[:: max(1, page.shape[0] // 200), :: max(1, page.shape[1] // 200)]
    return int(np.median(sample))


def check_on_page(points: np.ndarray, width: int, height: int) -> None:
    """Finite, touching the page, and within one page size of its edges (a 1e12 corner
    is an error in the file, not a line to clip)."""
    if not np.isfinite(points).all():
        raise GeometryError(skips.NON_FINITE, "nan or inf in the polygon")
    xs, ys = points[:, 0], points[:, 1]
    extent = f"page is {width}x{height}, polygon x {xs.min():.0f}..{xs.max():.0f}, y {ys.min():.0f}..{ys.max():.0f}"
    if xs.max() < 0 or ys.max() < 0 or xs.min() >= width or ys.min() >= height:
        raise GeometryError(skips.OUTSIDE_PAGE, extent)
    if xs.min() < -width or ys.min() < -height or xs.max() > 2 * width or ys.max() > 2 * height:
        raise GeometryError(skips.FAR_OUTSIDE, extent)


def crop_polygon(page: np.ndarray, polygon: Polygon, background: int, pad: int = 0,
                 min_size: tuple[int, int] = (2, 2)) -> np.ndarray:
    """Crop ``polygon`` from a grayscale ``page`` (H x W uint8), outside masked to ``background``.

    The polygon is clipped to the page; raises :class:`GeometryError` when it is not
    finite, lies outside the page (or far beyond it), encloses no pixel, or its crop is
    smaller than ``min_size`` (width, height) or covers fewer pixels than their product.
    """
    if len(polygon) < 3:
        raise GeometryError(skips.ZERO_AREA, f"{len(polygon)} points")
    points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    height, width = page.shape
    check_on_page(points, width, height)
    if polygon_area(points) < 1.0:
        raise GeometryError(skips.ZERO_AREA, "polygon area below one pixel")
    xs, ys = points[:, 0], points[:, 1]
    left = int(max(0, np.floor(xs.min()) - pad))
    top = int(max(0, np.floor(ys.min()) - pad))
    right = int(min(width, np.ceil(xs.max()) + 1 + pad))
    bottom = int(min(height, np.ceil(ys.max()) + 1 + pad))
    if right - left < 2 or bottom - top < 2:
        raise GeometryError(skips.ZERO_AREA, f"box {right - left}x{bottom - top} px")
    min_width, min_height = min_size
    if right - left < min_width or bottom - top < min_height:
        raise GeometryError(skips.TOO_SMALL, f"crop {right - left}x{bottom - top} px, needs {min_width}x{min_height}")
    inside = polygon_mask(points - [left, top], (bottom - top, right - left))
    if not inside.any():
        raise GeometryError(skips.ZERO_AREA, "polygon encloses no pixel")
    if inside.sum() < min_width * min_height:
        raise GeometryError(skips.TOO_SMALL, f"polygon covers {inside.sum()} px, needs {min_width * min_height}")
    crop = np.full(inside.shape, background, dtype=np.uint8)
    crop[inside] = page[top:bottom, left:right][inside]
    return crop
