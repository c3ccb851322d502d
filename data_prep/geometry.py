"""Line geometry: parsing coordinate strings and cropping a line by its polygon.

A line crop is the bounding box of the line polygon, with every pixel outside the
polygon set to the page background, so ascenders and descenders of neighbouring
lines that enter the box do not leak into the crop.
"""
from __future__ import annotations

import re

import numpy as np
from PIL import Image, ImageDraw

Polygon = list[list[float]]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


class GeometryError(ValueError):
    """A line's coordinates cannot give a usable crop; ``reason`` is a skips.* key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def parse_points(text: str | None) -> Polygon:
    """Parse ``"x1,y1 x2,y2"`` (PAGE, ALTO 4.2+) or ``"x1 y1 x2 y2"`` (older ALTO)."""
    if not text or not text.strip():
        return []
    numbers = [float(value) for value in _NUMBER.findall(text)]
    if len(numbers) % 2:
        raise ValueError(f"odd number of coordinates in {text[:60]!r}")
    return [[numbers[i], numbers[i + 1]] for i in range(0, len(numbers), 2)]


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


def crop_polygon(page: np.ndarray, polygon: Polygon, background: int, pad: int = 0) -> np.ndarray:
    """Crop ``polygon`` from a grayscale ``page`` (H x W uint8), outside masked to ``background``.

    The polygon is clipped to the page; raises :class:`GeometryError` when it lies
    entirely outside the page or encloses no pixel.
    """
    from data_prep import skips

    if len(polygon) < 3:
        raise GeometryError(skips.ZERO_AREA, f"{len(polygon)} points")
    points = np.asarray(polygon, dtype=np.float64)
    if polygon_area(points) < 1.0:
        raise GeometryError(skips.ZERO_AREA, "polygon area below one pixel")
    height, width = page.shape
    xs, ys = points[:, 0], points[:, 1]
    if xs.max() < 0 or ys.max() < 0 or xs.min() >= width or ys.min() >= height:
        raise GeometryError(skips.OUTSIDE_PAGE, f"page is {width}x{height}, polygon x {xs.min():.0f}..{xs.max():.0f}, y {ys.min():.0f}..{ys.max():.0f}")
    left = int(max(0, np.floor(xs.min()) - pad))
    top = int(max(0, np.floor(ys.min()) - pad))
    right = int(min(width, np.ceil(xs.max()) + 1 + pad))
    bottom = int(min(height, np.ceil(ys.max()) + 1 + pad))
    if right - left < 2 or bottom - top < 2:
        raise GeometryError(skips.ZERO_AREA, f"box {right - left}x{bottom - top} px")
    inside = polygon_mask(points - [left, top], (bottom - top, right - left))
    if not inside.any():
        raise GeometryError(skips.ZERO_AREA, "polygon encloses no pixel")
    crop = np.full(inside.shape, background, dtype=np.uint8)
    crop[inside] = page[top:bottom, left:right][inside]
    return crop
