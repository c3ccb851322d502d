"""A :class:`~data_prep.layout.PageLayout` as the bytes of one XML format.

Its own module so that the layout model sits below both writers: the writers import the
layout, this module imports the writers, and nothing imports back up.
"""
from __future__ import annotations

from data_prep.alto_writer import alto_bytes
from data_prep.layout import PageLayout
from data_prep.page_writer import page_bytes

FORMATS = ("alto", "page")


def layout_bytes(page: PageLayout, fmt: str = "alto") -> bytes:
    """The XML file of ``page`` in ``fmt`` (``alto`` or ``page``)."""
    if fmt == "alto":
        return alto_bytes(page)
    if fmt == "page":
        return page_bytes(page)
    raise ValueError(f"unknown XML format {fmt!r}; use one of {', '.join(FORMATS)}")
