"""Synthetic pages in columns, with margin notes (``htr prepare synthetic --columns 2
--margin-notes 0.5``): ground truth for the segmenter's text regions and reading order.

* Columns: the text area between the margins is split into ``columns`` columns with a
  gutter of at least 2.5-4 font sizes (1-2.4 line spacings) of white between them (lines
  are wrapped short of the column's edge, so wide word spacing stays out of the gutter); the running text fills
  the first column and flows on into the next (the last one holds half to all of its lines).
* A margin note, on a share ``margin_notes`` of the pages: 2-4 lines of one to three short
  words in smaller writing (0.8 of the font size and line spacing), in a margin widened
  for it, left of the first column or right of the last, 2-3 font sizes from the column's
  text, beside one of the column's lines in its upper half.

The ground truth has one region per column and per note, in reading order: the columns
left to right, each note right after the column it sits beside (the rule
``pipeline.segment_regions`` reads by).  Each region's polygon is the box of its lines,
rotated with the page.
"""
from __future__ import annotations

import numpy as np

from data_prep.layout import Region
from data_prep.synthetic.page import Block, PageLayout, compose_blocks, lines_per_page, running_text, wrap_words
from data_prep.synthetic.render import text_width

NOTE_SCALE = 0.8  # a note's font size and line spacing, relative to the page's
WRAP_SHARE = 0.85  # lines are wrapped to this share of their column's width


def compose_columns(sentences: list[str], start: int, wanted: int, layout: PageLayout, rng: np.random.Generator,
                    columns: int, margin_notes: float) -> tuple[np.ndarray, list[Region]]:
    """Render a page of ``columns`` columns (the last one ``wanted`` lines long), with a
    margin note on a share ``margin_notes`` of the pages; the page and its regions."""
    note_side = str(rng.choice(["left", "right"])) if rng.random() < margin_notes else None
    note_width = 0.0
    if note_side:  # widen that margin to hold the note and its gap to the column
        outer, note_width = rng.uniform(0.03, 0.05) * layout.width, rng.uniform(0.12, 0.18) * layout.width
        margin = int(outer + note_width + rng.uniform(2.0, 3.0) * layout.size)
        if note_side == "left":
            layout.left_margin, note_left = margin, outer
        else:
            layout.right_margin, note_left = margin, layout.width - outer - note_width
    gutter = rng.uniform(2.5, 4.0) * layout.size
    width = (layout.width - layout.left_margin - layout.right_margin - gutter * (columns - 1)) / columns
    full = lines_per_page(layout)
    counts = [full] * (columns - 1) + [wanted]
    # wrapped short of the column's edge: the rendered word spacing (up to 1.5 spaces)
    # must not run into the gutter, which is the white between the columns
    texts = running_text(sentences, start, sum(counts), layout, rng, available=WRAP_SHARE * width)
    blocks, ends = [], np.cumsum([0] + counts)
    for number in range(columns):
        blocks.append(Block(texts[ends[number]:ends[number + 1]], layout.left_margin + number * (width + gutter),
                            layout.top_margin + layout.size, layout.size, layout.line_spacing, width))
    host = None
    if note_side:
        host = 0 if note_side == "left" else columns - 1
        beside = int(rng.integers(0, max(1, counts[host] // 2)))
        note = _note(sentences, layout, rng, note_width)
        blocks.append(Block(note, note_left, blocks[host].first_baseline + beside * layout.line_spacing,
                            int(round(NOTE_SCALE * layout.size)), NOTE_SCALE * layout.line_spacing, 0.0))
    page, placed = compose_blocks(blocks, layout, rng)
    order = list(range(columns))
    if host is not None:
        order.insert(host + 1, columns)  # the note right after its column
    regions = [Region(f"r{index + 1}", placed[index][0], placed[index][1]) for index in order if placed[index][0]]
    return page, regions


def _note(sentences: list[str], layout: PageLayout, rng: np.random.Generator, width: float) -> list[str]:
    """2-4 lines of short words that fit the note's width (a long word would run into the gutter)."""
    size = int(round(NOTE_SCALE * layout.size))
    words: list[str] = []
    for _ in range(20):  # bounded: on a very narrow margin few words fit
        sentence = sentences[int(rng.integers(len(sentences)))]
        words += [w for w in sentence.split() if text_width(w, layout.font, size) * 1.1 <= 0.8 * width]
        if len(words) >= 12:
            break
    lines = wrap_words(words, layout, rng, available=WRAP_SHARE * width, size=size)
    return lines[:int(rng.integers(2, 5))]
