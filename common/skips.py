"""Counting what could not be loaded, so bad input never stops a whole run.

Readers call :meth:`SkipLog.skip_line` or :meth:`SkipLog.skip_file` with the
offending file and a reason; the message is printed at once (with the file name,
so the user can find and fix it) and the reason is counted for the summary.
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

# Reasons are short, stable keys: they are counted and written to summary.json.
MISSING_IMAGE = "missing image"
UNREADABLE_IMAGE = "unreadable image"
BAD_XML = "XML does not parse"
NOT_A_LAYOUT = "not an ALTO/PAGE/Rimes/IAM file"
OUTSIDE_PAGE = "polygon outside the page"
EMPTY_TEXT = "empty transcription"
ZERO_AREA = "zero-area line"
BAD_GEOMETRY = "unreadable coordinates"
MISSING_TEXT_FILE = "missing transcription file"
MISSING_FILE = "missing file"
UNSUPPORTED_UNIT = "unsupported measurement unit"
NON_FINITE = "non-finite coordinate"  # nan, inf, or a number too large for a float
ODD_COORDINATES = "odd number of coordinates"
NO_COORDINATES = "no coordinates"
FAR_OUTSIDE = "coordinates far outside the page"  # beyond one page size from its edges
TOO_SMALL = "line too small for its text"
UNWRITABLE = "line image could not be written"


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"


def one_line(text: str, limit: int = 300) -> str:
    """``text`` fit for a one-line message: control characters escaped, and the middle of
    an over-long text (a 5,000-character line id) elided."""
    text = _CONTROL.sub(_escape, text)
    if len(text) <= limit:
        return text
    keep = limit // 2 - 10
    return f"{text[:keep]}...[{len(text) - 2 * keep} characters]...{text[-keep:]}"


@dataclass
class SkipLog:
    """Collects skipped lines and files with their reasons."""

    stream: TextIO | None = field(default_factory=lambda: sys.stderr)
    lines: Counter = field(default_factory=Counter)
    files: Counter = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)

    def skip_line(self, where: str | Path, reason: str, detail: str = "") -> None:
        self.lines[reason] += 1
        self._say(where, reason, detail)

    def skip_file(self, where: str | Path, reason: str, detail: str = "", lines: int = 0) -> None:
        """A whole file could not be used; ``lines`` of its lines are lost with it."""
        self.files[reason] += 1
        if lines:
            self.lines[reason] += lines
        self._say(where, reason, detail)

    def _say(self, where: str | Path, reason: str, detail: str) -> None:
        message = f"skipped: {one_line(str(where))}: {reason}" + (f" ({one_line(detail)})" if detail else "")
        self.messages.append(message)
        if self.stream is not None:
            print(message, file=self.stream)

    def merge(self, other: "SkipLog") -> None:
        """Add another log's counts and messages (from a worker process), printing them."""
        self.lines.update(other.lines)
        self.files.update(other.files)
        for message in other.messages:
            self.messages.append(message)
            if self.stream is not None:
                print(message, file=self.stream)

    def summary(self) -> dict:
        return {
            "lines_skipped": sum(self.lines.values()),
            "line_skip_reasons": dict(sorted(self.lines.items())),
            "files_skipped": sum(self.files.values()),
            "file_skip_reasons": dict(sorted(self.files.items())),
        }
