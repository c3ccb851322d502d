"""Training augmentation of normalised line images (float32, ink 1 on background 0).

Two recipes (``htr train --augment --augmentation light|full``):

- ``light``: random width scale (0.85-1.15), slant (shear -0.3..0.3 around the middle
  row) and ink gain (0.7-1.0), with PIL.
- ``full``: the field's usual set for handwritten lines, from albumentations (a well-kept
  library; its calls are the ones cited in the HTR literature): width scale 0.8-1.2 and 12 px of background at each end (our
  own step, because it changes the number of CTC frames and so must stay inside the
  width cap), then a small affine (rotation +-1.5 deg, slant +-15 deg, vertical shift
  +-4%, scale 0.9-1.0), a grid distortion of the strokes (local stretch and warp), stroke erosion or dilation,
  contrast/ink gain and a little Gaussian noise.

Both draw every random number from ``generator`` (seeded per (seed, epoch, line) by
:class:`pipeline.data.LineDataset`), so a resumed run and any loading thread see the same
pixels.  albumentations is imported on first use (it costs about a second) with its
online update check switched off: nothing here may reach the network.
"""
from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

RECIPES = ("light", "full")


def augment(array: np.ndarray, max_width: int, generator: torch.Generator, recipe: str = "light") -> np.ndarray:
    """One random variant of a normalised line (the width may change, the height not)."""
    if recipe == "full":
        return _full(array, max_width, generator)
    scale, shear, gain = _uniform(generator, (0.85, 1.15), (-0.3, 0.3), (0.7, 1.0))
    return _scale_and_slant(array, max_width, scale, shear) * gain


def slant(array: np.ndarray, shear: float) -> np.ndarray:
    """``array`` sheared by ``shear`` around its middle row, its width kept (the same CTC frames)."""
    return _scale_and_slant(array, array.shape[1], 1.0, shear)


def _uniform(generator: torch.Generator, *ranges: tuple[float, float]) -> list[float]:
    low = torch.tensor([lo for lo, _ in ranges])
    span = torch.tensor([hi - lo for lo, hi in ranges])
    return (torch.rand(len(ranges), generator=generator) * span + low).tolist()


def _scale_and_slant(array: np.ndarray, max_width: int, scale: float, shear: float) -> np.ndarray:
    height, width = array.shape
    new_width = max(1, min(max_width, round(width * scale)))
    image = Image.fromarray((array * 255).astype(np.uint8))
    # x_in = x_out / scale + shear * (y - h/2): slant around the middle row
    image = image.transform((new_width, height), Image.AFFINE,
                            (width / new_width, shear, -shear * height / 2, 0, 1, 0), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32) / 255.0


_MARGIN = 12  # px of background added at each end: a slanted line keeps its first and last strokes
_LOCK = threading.Lock()  # one albumentations pipeline, reseeded per call: one caller at a time


def _full(array: np.ndarray, max_width: int, generator: torch.Generator) -> np.ndarray:
    (scale,) = _uniform(generator, (0.8, 1.2))
    seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=generator))
    pipeline = _albumentations_pipeline()
    import cv2  # loaded by albumentations

    height, width = array.shape
    margin = min(_MARGIN, (max_width - 1) // 4)  # a tiny width cap keeps room for the line itself
    new_width = max(1, min(max_width - 2 * margin, round(width * scale)))
    scaled = cv2.resize(array, (new_width, height), interpolation=cv2.INTER_LINEAR)
    scaled = np.pad(scaled, ((0, 0), (margin, margin)))  # room for the slant at both ends
    with _LOCK:
        pipeline.set_random_seed(seed)
        out = pipeline(image=scaled)["image"]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


@lru_cache(maxsize=1)
def _albumentations_pipeline():
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network
    import albumentations as A
    import cv2

    cv2.setNumThreads(1)  # the loader thread shares the cores with training: no thread pool of its own

    return A.Compose([
        A.Affine(rotate=(-1.5, 1.5), shear={"x": (-15, 15), "y": (0, 0)}, translate_percent={"x": (0, 0), "y": (-0.04, 0.04)},
                 scale=(0.9, 1.0), fill=0, p=0.8),
        # local stretch and warp of the strokes; GridDistortion rather than ElasticTransform,
        # which costs 35-40 ms per line, more than a training step of the line
        A.GridDistortion(num_steps=8, distort_limit=0.2, border_mode=0, p=0.5),
        A.OneOf([A.Morphological(scale=(2, 2), operation="erosion", p=0.3),  # thin strokes: rarely
                  A.Morphological(scale=(2, 3), operation="dilation")], p=0.3),
        A.RandomBrightnessContrast(brightness_limit=(-0.2, 0.0), contrast_limit=(-0.2, 0.1), p=0.5),
        A.GaussNoise(std_range=(0.01, 0.03), p=0.3),
    ])
