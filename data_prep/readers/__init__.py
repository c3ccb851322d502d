"""Readers turn one kind of source into page specs (lines on a page image) or
line-image specs (already cropped lines); :mod:`data_prep.line_crops` does the rest."""
from __future__ import annotations

from data_prep.readers.base import LineImageSpec, LineSpec, PageSpec, Reader
from data_prep.readers.alto import read_alto
from data_prep.readers.folder import read_folder
from data_prep.readers.iam import read_iam
from data_prep.readers.pagexml import read_pagexml
from data_prep.readers.rimes import read_rimes

READERS: dict[str, Reader] = {
    "alto": read_alto,
    "page": read_pagexml,
    "iam": read_iam,
    "rimes": read_rimes,
    "folder": read_folder,
}

__all__ = ["READERS", "LineImageSpec", "LineSpec", "PageSpec", "Reader"]
