"""Schema checks for the ALTO and PAGE files the project writes.

PAGE: the official PAGE 2019-07-15 schema, as shipped in the ocrd-validators package
(``make setup`` installs it, without its dependencies: only the .xsd file is used).
ALTO: no package ships the ALTO schema, so ``tests/schemas/alto-4-2-subset.xsd`` is a strict
subset of ALTO 4.2 written for these tests (see its header).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lxml import etree

SCHEMAS = Path(__file__).resolve().parent / "schemas"


@lru_cache(maxsize=None)
def _schema(kind: str) -> etree.XMLSchema:
    if kind == "alto":
        path = SCHEMAS / "alto-4-2-subset.xsd"
    else:
        from importlib.metadata import PackageNotFoundError, distribution
        try:
            path = Path(distribution("ocrd-validators").locate_file("ocrd_validators/page.xsd"))
        except PackageNotFoundError:
            raise AssertionError("ocrd-validators (the PAGE 2019 schema) is not installed: run 'make setup'") from None
    return etree.XMLSchema(etree.parse(str(path)))


def check(data: bytes | Path, kind: str) -> etree._Element:
    """Parse ALTO (``kind="alto"``) or PAGE (``"page"``) bytes or file; fail with the
    schema's messages unless valid.  Returns the root element."""
    root = etree.parse(str(data)).getroot() if isinstance(data, Path) else etree.fromstring(data)
    schema = _schema(kind)
    if not schema.validate(root):
        raise AssertionError(f"{kind} file not valid:\n" + "\n".join(str(e) for e in schema.error_log))
    return root


def xml_kind(path: Path) -> str:
    return "page" if etree.QName(etree.parse(str(path)).getroot()).localname == "PcGts" else "alto"
