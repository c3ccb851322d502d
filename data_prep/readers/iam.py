"""IAM Handwriting Database.

Two layouts are read, the first found wins:

* ``ascii/lines.txt`` (or ``lines.txt``) with the line images in ``lines/a01/a01-000u/``:
  the standard line-level set; writers come from ``xml/*.xml`` when present;
* ``xml/*.xml`` forms with the page images in ``forms*/``: lines are cropped from the
  pages by the union of their word components' boxes (page-level line boxes).
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Iterator

from common import skips
from data_prep.geometry import box_polygon, parse_number
from data_prep.readers.base import (LineImageSpec, LineSpec, PageSpec, Spec, clean_text,
                                    parse_xml, safe_id, skip_geometry)
from common.skips import SkipLog


def read_iam(path: Path, log: SkipLog) -> Iterator[Spec]:
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: IAM folder not found")
    lines_txt = next((p for p in (path / "ascii" / "lines.txt", path / "lines.txt") if p.is_file()), None)
    xml_dir = path / "xml"
    if lines_txt is not None:
        writers = _writers(xml_dir, log) if xml_dir.is_dir() else {}
        yield from _line_images(path, lines_txt, writers, log)
    elif xml_dir.is_dir():
        yield from _forms(path, xml_dir, log)
    else:
        raise FileNotFoundError(f"{path}: neither ascii/lines.txt nor xml/ found; is this the IAM root folder?")


def _iam_text(raw: str) -> str:
    return clean_text(html.unescape(raw.replace("|", " ")))


def _line_images(root: Path, lines_txt: Path, writers: dict[str, str], log: SkipLog) -> Iterator[LineImageSpec]:
    with lines_txt.open(encoding="utf-8", errors="replace") as handle:
        for number, row in enumerate(handle, start=1):
            if row.startswith("#") or not row.strip():
                continue
            fields = row.rstrip("\n").split(" ")
            if len(fields) < 9:
                log.skip_line(f"{lines_txt}:{number}", skips.BAD_GEOMETRY, "expected 9 fields")
                continue
            line_id = fields[0]
            parts = line_id.split("-")
            form = "-".join(parts[:2])
            image = root / "lines" / parts[0] / form / f"{line_id}.png"
            yield LineImageSpec(source=lines_txt, id=safe_id(line_id), image=image,
                                text=_iam_text(" ".join(fields[8:])), writer=writers.get(form))


def _writers(xml_dir: Path, log: SkipLog) -> dict[str, str]:
    writers = {}
    for xml_path in sorted(xml_dir.glob("*.xml")):
        root = parse_xml(xml_path, log)
        if root is not None and root.get("id"):
            writers[root.get("id")] = root.get("writer-id")
    return writers


def _find_form_image(root: Path, form: str) -> Path | None:
    for folder in sorted(root.glob("forms*")):
        for suffix in (".png", ".jpg", ".tif"):
            if (folder / f"{form}{suffix}").is_file():
                return folder / f"{form}{suffix}"
    return None


def _forms(root: Path, xml_dir: Path, log: SkipLog) -> Iterator[PageSpec]:
    for xml_path in sorted(xml_dir.glob("*.xml")):
        form = parse_xml(xml_path, log)
        if form is None:
            continue
        if form.tag != "form":
            log.skip_file(xml_path, skips.NOT_A_LAYOUT, f"root element is <{form.tag}>, expected IAM <form>")
            continue
        specs = []
        for line in form.iter("line"):
            try:
                boxes = [[parse_number(c.get(k)) for k in ("x", "y", "width", "height")] for c in line.iter("cmp")]
            except ValueError as error:
                skip_geometry(log, f"{xml_path} line {line.get('id')} <cmp> box", error)
                continue
            if not boxes:
                log.skip_line(f"{xml_path} line {line.get('id')}", skips.ZERO_AREA, "no word components")
                continue
            left = min(b[0] for b in boxes)
            top = min(b[1] for b in boxes)
            right = max(b[0] + b[2] for b in boxes)
            bottom = max(b[1] + b[3] for b in boxes)
            specs.append(LineSpec(id=safe_id(line.get("id", f"{form.get('id')}_{len(specs)}")),
                                  text=_iam_text(line.get("text", "")),
                                  polygon=box_polygon(left, top, right - left, bottom - top)))
        yield PageSpec(source=xml_path, image=_find_form_image(root, form.get("id", xml_path.stem)),
                       lines=specs, writer=form.get("writer-id"))
