"""Line images and labels for training and recognition.

* Alphabet: the characters of the training texts; index 0 is the CTC blank (``""``),
  so ``alphabet[k]`` is the symbol of output ``k`` for every model and decoder.
* Normalisation: grayscale, inverted (ink = 1), the line's background level (its
  median) subtracted, scaled to a fixed height keeping the aspect ratio, squeezed to
  ``max_width`` if wider.  Background is 0, so zero padding *is* background padding.
  The levels are a model's choice (``--line-norm``, :data:`LINE_NORMS`); the default
  subtracts the median and stretches the darkest ink to 1.
* Batches: widths are read from image headers up front; lines are shuffled, sorted by
  width within chunks and cut into batches (width bucketing: little padding) and the
  batch order is a function of (seed, epoch) so a resumed run sees the same order; with a
  curriculum (``--curriculum-epochs N``) the first N epochs take the lines shortest first.
* Lines whose label cannot fit the network's output frames (CTC needs
  frames >= label length + repeated letters) are skipped and counted, by name.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from common import skips
from data_prep.records import LineRecord, read_manifest, resolve_image
from common.skips import SkipLog
from pipeline.augment import augment

BLANK = ""
TOO_SHORT = "line too short for its label"
UNKNOWN_CHARS = "characters not in the alphabet"
# the grey levels of a normalised line: the median (the background) subtracted or not, the
# darkest ink stretched to 1 or not; every line is inverted (ink high) and scaled in size.
# Without the subtraction (peak, none) the paper keeps its grey, so the batch's zero padding
# and the augmentation's zero fill are not the paper's level: part of what those variants measure
LINE_NORMS = ("median-peak", "median", "peak", "none")


def build_alphabet(texts: Sequence[str]) -> list[str]:
    """Blank first, then every character of ``texts`` in code-point order."""
    return [BLANK] + sorted(set("".join(texts)))


def encode(text: str, index: dict[str, int]) -> list[int]:
    """Class ids of the characters of ``text`` that are in the alphabet."""
    return [index[char] for char in text if char in index]


def min_frames(labels: Sequence[int]) -> int:
    """Frames CTC needs for a label: one per symbol plus a blank between repeats."""
    repeats = sum(1 for a, b in zip(labels, labels[1:]) if a == b)
    return len(labels) + repeats


def normalise_image(image: Image.Image, height: int, max_width: int, norm: str = "median-peak") -> np.ndarray:
    """Grayscale line -> float32 (height, width) array, ink high; with the default ``norm``
    the darkest ink is 1 and the background 0 (see :data:`LINE_NORMS`)."""
    if norm not in LINE_NORMS:
        raise ValueError(f"line normalisation {norm!r}: choose one of {', '.join(LINE_NORMS)}")
    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    ink = 1.0 - gray
    if norm.startswith("median"):
        ink = np.clip(ink - np.median(ink), 0.0, None)
    peak = ink.max()
    if norm.endswith("peak") and peak > 0:
        ink /= peak
    width = scaled_width(gray.shape[1], gray.shape[0], height, max_width)
    scaled = Image.fromarray((ink * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR)
    return np.asarray(scaled, dtype=np.float32) / 255.0


def scaled_width(width: int, height: int, target_height: int, max_width: int) -> int:
    return max(1, min(max_width, round(width * target_height / max(1, height))))


@dataclass
class Line:
    """One usable line: where its image is, its label and its normalised width."""

    id: str
    path: Path
    text: str
    labels: list[int]
    width: int


def load_lines(manifest: Path, alphabet: list[str], height: int, max_width: int,
               frames: Callable[[int], int] | None, log: SkipLog) -> list[Line]:
    """Usable lines of a manifest.  Missing/unreadable images are skipped and counted;
    with ``frames`` (training) lines too short for their label are too."""
    index = {char: i for i, char in enumerate(alphabet) if i}
    lines = []
    for record in read_manifest(Path(manifest)):
        line = _load_line(Path(manifest), record, index, height, max_width, frames, log)
        if line is not None:
            lines.append(line)
    return lines


def _load_line(manifest: Path, record: LineRecord, index: dict[str, int], height: int,
               max_width: int, frames: Callable[[int], int] | None, log: SkipLog) -> Line | None:
    path = resolve_image(manifest, record)
    if not path.is_file():
        log.skip_line(path, skips.MISSING_IMAGE, f"line {record.id}")
        return None
    try:
        with Image.open(path) as image:
            width, image_height = image.size
    except (UnidentifiedImageError, OSError) as error:
        log.skip_line(path, skips.UNREADABLE_IMAGE, str(error))
        return None
    labels = encode(record.text, index)
    if frames is not None:
        if len(labels) != len(record.text):
            missing = "".join(sorted(set(record.text) - set(index)))
            log.skip_line(path, UNKNOWN_CHARS, f"line {record.id}: {missing!r}")
            return None
        if not labels:
            log.skip_line(path, skips.EMPTY_TEXT, f"line {record.id}")
            return None
        norm_width = scaled_width(width, image_height, height, max_width)
        if frames(norm_width) < min_frames(labels):
            log.skip_line(path, TOO_SHORT, f"line {record.id}: {frames(norm_width)} frames for "
                          f"{len(labels)} characters, {min_frames(labels)} needed")
            return None
    return Line(record.id, path, record.text, labels, scaled_width(width, image_height, height, max_width))


class LineDataset(torch.utils.data.Dataset):
    """Normalised line images (cached in memory as uint8) with optional augmentation.

    Augmentation (``augment``: a recipe of :mod:`pipeline.augment`, or None) draws from a
    generator seeded by (seed, epoch, line) (:meth:`set_epoch`), not from the global RNG, so
    that it gives the same numbers whichever thread loads the line and in whatever order
    (training loads the next batch in a background thread), and a resumed run draws the
    same numbers.
    """

    def __init__(self, lines: list[Line], height: int, max_width: int, augment: str | None = None, cache: bool = True,
                 norm: str = "median-peak"):
        self.lines, self.height, self.max_width, self.norm = lines, height, max_width, norm
        self.augment, self.cache = augment, cache
        self._cache: dict[int, np.ndarray] = {}
        self.seed, self.epoch = 0, 0

    def set_epoch(self, seed: int, epoch: int) -> None:
        """The augmentation of every line from now on is a function of (seed, epoch, line)."""
        self.seed, self.epoch = seed, epoch

    def __len__(self) -> int:
        return len(self.lines)

    def image(self, i: int) -> np.ndarray:
        """Normalised line, quantised to 8 bits whether cached or not (so a resumed run,
        with an empty cache, sees exactly the same pixels)."""
        pixels = self._cache.get(i)
        if pixels is None:
            with Image.open(self.lines[i].path) as image:
                pixels = np.round(normalise_image(image, self.height, self.max_width, self.norm) * 255).astype(np.uint8)
            if self.cache:
                self._cache[i] = pixels
        return pixels.astype(np.float32) / 255.0

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Line]:
        if not self.augment:
            return self.plain(i)
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + i)
        return torch.from_numpy(augment(self.image(i), self.max_width, generator, self.augment))[None], self.lines[i]

    def plain(self, i: int) -> tuple[torch.Tensor, Line]:
        """Line ``i`` as it is, without augmentation (from the same cache)."""
        return torch.from_numpy(self.image(i))[None], self.lines[i]


@dataclass
class Batch:
    images: torch.Tensor  # (B, 1, H, Wmax), zero (background) padded on the right
    widths: torch.Tensor  # (B,)
    targets: torch.Tensor  # concatenated labels
    target_lengths: torch.Tensor  # (B,)
    lines: list[Line]


def collate(items: list[tuple[torch.Tensor, Line]]) -> Batch:
    widths = torch.tensor([image.shape[-1] for image, _ in items])
    images = torch.zeros(len(items), 1, items[0][0].shape[1], int(widths.max()))
    for k, (image, _) in enumerate(items):
        images[k, :, :, : image.shape[-1]] = image
    lines = [line for _, line in items]
    targets = torch.tensor([label for line in lines for label in line.labels], dtype=torch.long)
    lengths = torch.tensor([len(line.labels) for line in lines], dtype=torch.long)
    return Batch(images, widths, targets, lengths, lines)


def bucket_batches(widths: Sequence[int], batch_size: int, seed: int, epoch: int,
                   chunk_batches: int = 20) -> list[list[int]]:
    """Batches of indices for one epoch: shuffle, sort by width within chunks of
    ``chunk_batches`` batches, cut, shuffle the batches.  Deterministic in (seed, epoch)."""
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(widths)))
    rng.shuffle(order)
    chunk = batch_size * chunk_batches
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start: start + chunk], key=lambda i: widths[i])
        batches += [part[k: k + batch_size] for k in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def epoch_batches(widths: Sequence[int], batch_size: int, seed: int, epoch: int,
                  curriculum_epochs: int = 0) -> list[list[int]]:
    """One training epoch's batches: for the first ``curriculum_epochs`` epochs the lines
    shortest first (SortaGrad, Amodei et al. 2016: CTC learns its alignments on short lines
    sooner), then :func:`bucket_batches`."""
    if epoch <= curriculum_epochs:
        return sorted_batches(widths, batch_size)
    return bucket_batches(widths, batch_size, seed, epoch)


def sorted_batches(widths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Inference batches: indices sorted by width (least padding), in fixed order."""
    order = sorted(range(len(widths)), key=lambda i: widths[i])
    return [order[k: k + batch_size] for k in range(0, len(order), batch_size)]


def rank_share(batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """This process's batches under data parallelism: every ``world``-th batch, all ranks
    getting the same count (the tail is dropped) so gradient all-reduces stay in step."""
    usable = len(batches) // world * world if world > 1 else len(batches)
    return batches[rank:usable:world]

