"""A plain folder of line images with their transcriptions: ``NAME.png`` + ``NAME.gt.txt``
(the OCR-D / kraken / Calamari convention; any common image suffix works)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from common import skips
from common.image_files import IMAGE_SUFFIXES
from data_prep.readers.base import LineImageSpec, clean_text, safe_id
from common.skips import SkipLog


def read_folder(path: Path, log: SkipLog) -> Iterator[LineImageSpec]:
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: folder not found")
    images = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    for image in images:
        name = image.name[: -len(image.suffix)]
        text_file = image.with_name(f"{name}.gt.txt")
        if not text_file.is_file():
            log.skip_line(image, skips.MISSING_TEXT_FILE, f"expected {text_file.name} beside it")
            continue
        text = clean_text(text_file.read_text(encoding="utf-8-sig", errors="replace"))  # -sig: Notepad BOM
        line_id = safe_id(str(image.relative_to(path).with_suffix("")))
        yield LineImageSpec(source=text_file, id=line_id, image=image, text=text)
    texts_without_image = [t for t in sorted(path.rglob("*.gt.txt"))
                           if not any(t.with_name(t.name[:-7] + s).is_file() for s in IMAGE_SUFFIXES)]
    for text_file in texts_without_image:
        log.skip_line(text_file, skips.MISSING_IMAGE, "no image with the same name")
