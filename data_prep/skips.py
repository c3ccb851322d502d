"""Counting what could not be loaded, so bad input never stops a whole run.

Readers call :meth:`SkipLog.skip_line` or :meth:`SkipLog.skip_file` with the
offending file and a reason; the message is printed at once (with the file name,
so the user can find and fix it) and the reason is counted for the summary.
"""
from __future__ import annotations

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
        message = f"skipped: {where}: {reason}" + (f" ({detail})" if detail else "")
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
