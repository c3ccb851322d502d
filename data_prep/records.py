"""The canonical line manifest: one JSON object per text line (JSONL).

Every data source is turned into this form by ``htr prepare``; every later stage
(training, recognition, evaluation) reads only this form.  Image paths are stored
relative to the manifest's folder so a prepared data set can be moved as a whole.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from common.files import atomic_write_text

Point = tuple[float, float]


@dataclass
class LineRecord:
    """One text line: its cropped image, transcription and where it came from."""

    id: str
    image: str  # path of the grayscale line crop, relative to the manifest folder
    text: str
    page: str = ""  # page image the line was cropped from ("" for line-image sources)
    polygon: list[list[float]] = field(default_factory=list)  # page coordinates
    baseline: list[list[float]] = field(default_factory=list)  # page coordinates
    writer: str | None = None
    split: str | None = None

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict) -> "LineRecord":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def write_manifest(path: Path, records: Iterable[LineRecord]) -> int:
    """Write records as JSONL atomically; returns the number written."""
    lines = [record.to_json() for record in records]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_manifest(path: Path) -> list[LineRecord]:
    """Read a manifest; raises ``ValueError`` naming the file and line on bad JSON."""
    return list(iter_manifest(path))


def iter_manifest(path: Path) -> Iterator[LineRecord]:
    """Records of a manifest; a bad line raises ``ValueError`` naming the file, the line
    number and the fix (one line, whatever JSON or UTF-8 error was behind it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found (create one with 'htr prepare')")
    fix = "fix or delete that line, or rerun 'htr prepare'"
    number = 0  # lines read so far
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield _record(line, f"{path}:{number}", fix)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} after line {number}); "
                         "re-save it as UTF-8 or rerun 'htr prepare'") from None


_REQUIRED = {"id": str, "image": str, "text": str}
_OPTIONAL = {"page": str, "polygon": list, "baseline": list, "writer": (str, type(None)), "split": (str, type(None))}


def _record(line: str, where: str, fix: str) -> LineRecord:
    try:
        data = json.loads(line.rstrip("\r\n"))
    except json.JSONDecodeError as error:  # its own "line 1 column 5" would be about the JSON text
        raise ValueError(f"{where}: not valid JSON ({error.msg} at column {error.colno}); {fix}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a JSON {type(data).__name__}, not a record object; {fix}")
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise ValueError(f"{where}: no {', '.join(missing)} field; {fix}")
    for key, kind in {**_REQUIRED, **_OPTIONAL}.items():
        if key in data and not isinstance(data[key], kind):
            raise ValueError(f"{where}: field {key} is a JSON {type(data[key]).__name__}; {fix}")
    return LineRecord.from_dict(data)


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{n}" for n in range(10)), *(f"lpt{n}" for n in range(10))}
MAX_NAME = 100  # characters of a line image name kept as is (file systems allow 255 bytes)


def line_image_path(line_id: str) -> str:
    """``lines/NAME.png`` for a line id: the id itself when it is a short, plain file
    name, else a readable prefix and a hash of the id (stable across runs); the id is
    kept whole in the manifest either way."""
    stem = line_id.split(".")[0].casefold()
    if len(line_id) <= MAX_NAME and _PLAIN_NAME.fullmatch(line_id) and stem not in _RESERVED:
        return f"lines/{line_id}.png"
    digest = hashlib.sha1(line_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    prefix = re.sub(r"[^A-Za-z0-9_-]+", "_", line_id)[:40].strip("_-")
    return f"lines/{prefix}_{digest}.png" if prefix else f"lines/{digest}.png"


def resolve_image(manifest_path: Path, record: LineRecord) -> Path:
    """Absolute path of a record's line image."""
    image = Path(record.image)
    return image if image.is_absolute() else Path(manifest_path).parent / image


def line_writers(manifest: Path, ids: Iterable[str], flag: str) -> list[str]:
    """The writer of each of ``ids``, from a manifest that names one for each of them;
    ``flag`` (the option that needs them) goes into the error message."""
    manifest = Path(manifest)
    if manifest.suffix != ".jsonl":
        raise ValueError(f"{manifest}: {flag} needs a manifest (.jsonl) that names each line's writer")
    writers = {record.id: record.writer for record in iter_manifest(manifest)}
    ids = list(ids)
    unnamed = [line_id for line_id in ids if not writers.get(line_id)]
    if unnamed:
        raise ValueError(f"{manifest}: {len(unnamed)} lines are not there or name no writer (e.g. {unnamed[0]}), "
                         f"which {flag} needs; prepare the manifest with --writer-pattern")
    return [writers[line_id] for line_id in ids]
