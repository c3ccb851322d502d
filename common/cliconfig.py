"""Config dataclasses that double as command-line flags (the PyLaia style).

A field ``font_size_min: int = 30`` becomes ``--font-size-min INT``; its help text
comes from ``field(metadata={"help": ...})``.  Configs save to and load from JSON.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

T = TypeVar("T", bound="CliConfig")


class CliConfig:
    """Mixin for dataclasses: ``add_arguments``, ``from_args``, ``save``, ``load``."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
        hints = get_type_hints(cls)
        for item in dataclasses.fields(cls):  # type: ignore[arg-type]
            flag = "--" + item.name.replace("_", "-")
            kind = hints[item.name]
            default = item.default if item.default is not dataclasses.MISSING else item.default_factory()  # type: ignore[misc]
            help_text = item.metadata.get("help", "") + f" (default: {default})"
            if kind is bool:
                parser.add_argument(flag, dest=item.name, action=argparse.BooleanOptionalAction,
                                    default=None, help=help_text)
            else:
                converter = Path if kind in (Path, Path | None) else (
                    kind if kind in (int, float, str) else str)
                parser.add_argument(flag, dest=item.name, type=converter, default=None,
                                    choices=item.metadata.get("choices"), help=help_text)

    @classmethod
    def from_args(cls: type[T], args: argparse.Namespace, base: T | None = None) -> T:
        """Values given on the command line override ``base`` (or the defaults)."""
        config = base if base is not None else cls()
        changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                   if getattr(args, f.name, None) is not None}
        return dataclasses.replace(config, **changes)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v)
                for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]

    def save(self, path: Path) -> None:
        from common.files import atomic_write_text
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls: type[T], path: Path) -> T:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        hints = get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        values = {k: (Path(v) if hints[k] in (Path, Path | None) and v is not None else v) for k, v in data.items()}
        return cls(**values)
