"""What the line segmenter takes and gives: its settings, its regions and lines, its error.

How a segmented line relates to the other line types of the project (one line, seen at
the stages it goes through; the polygon and baseline are the same page pixel
coordinates all the way):

* :class:`SegmentedLine` (here): geometry only, as the segmenter finds it (polygon,
  baseline; its box derived from the polygon);
* :class:`data_prep.layout.LayoutLine`: the same geometry with an XML id and a text, what
  the ALTO/PAGE writers take (``pipeline.segment.page_layout`` makes one per line);
* :class:`data_prep.readers.base.LineSpec`: a line read back from ALTO/PAGE (PAGE
  rounds the points to non-negative integers);
* :class:`data_prep.records.LineRecord`: the manifest line of ``htr prepare``, the read
  line plus its crop, page, writer and split (``polygon`` and ``baseline`` as read).

``pipeline.data.Line`` is a different thing: a training sample (a crop file and its label).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common import skips
from common.cliconfig import CliConfig
from data_prep.geometry import Polygon
from data_prep.layout import bounds


@dataclass
class SegmentConfig(CliConfig):
    """Parameters of the segmenter (the defaults suit 150-300 dpi handwriting)."""

    work_height: int = field(default=850, metadata={"help": "rows of the internal working image; pages are downscaled to about this"})
    sauvola_window: int = field(default=31, metadata={"help": "Sauvola window (working pixels, odd)"})
    sauvola_k: float = field(default=0.1, metadata={"help": "Sauvola k"})
    min_contrast: int = field(default=30, metadata={"help": "ink is at least this many grey levels darker than the paper"})
    max_skew: float = field(default=5.0, metadata={"help": "largest page skew searched, degrees"})
    max_rotation: float = field(default=45.0, metadata={"help": "pages whose lines run at more than max-skew and up to this many degrees are rotated upright first (0: never)"})
    rule_contrast: int = field(default=15, metadata={"help": "grey levels below the paper at which ruling lines are looked for"})
    max_glyph_height: float = field(default=4.0, metadata={"help": "ink components taller than this many line spacings are drawings, not text"})
    min_line_ink: float = field(default=0.06, metadata={"help": "drop lines with fewer ink pixels than this x (line spacing)^2: specks, stray dots"})
    min_text_height: float = field(default=0.0, metadata={"help": "drop lines whose typical glyph (component) height is below this x the page median: small print such as a form header; 0 keeps all (lines without ascenders can fall to ~0.35)"})
    min_gutter: float = field(default=0.8, metadata={"help": "text regions (columns, margin notes) are split at vertical gaps at least this many line spacings wide that run the region's height; 0: one region per page"})


@dataclass
class SegmentedLine:
    """A segmented line in full-page pixel coordinates (see the module docstring for
    how it becomes a LayoutLine, a LineSpec and a manifest LineRecord)."""

    polygon: Polygon
    baseline: Polygon

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Left, top, right, bottom: the integer box enclosing the polygon."""
        return bounds(self.polygon)


@dataclass
class SegmentedRegion:
    """A text region (a column, a margin note, a header block): its outline and its
    lines in reading order, in full-page pixel coordinates."""

    polygon: Polygon
    lines: list[SegmentedLine]
    margin: bool = False  # a margin note, read after the column it sits beside


@dataclass
class PageResult:
    image: Path
    width: int
    height: int
    regions: list[SegmentedRegion]  # in reading order
    skew: float

    @property
    def lines(self) -> list[SegmentedLine]:
        """Every line of the page in reading order (region by region)."""
        return [line for region in self.regions for line in region.lines]


class SegmentError(ValueError):
    """The page cannot be segmented (unreadable image); the message names the file, and
    ``detail`` is the cause alone (for ``skipped: FILE: reason (detail)``, said once)."""

    def __init__(self, path: Path, detail: str):
        super().__init__(f"{path}: {skips.UNREADABLE_IMAGE} ({detail})")
        self.detail = detail
