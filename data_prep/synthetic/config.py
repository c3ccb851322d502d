"""Settings of the synthetic data set; every field is also an ``htr prepare`` flag."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.cliconfig import CliConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SyntheticConfig(CliConfig):
    seed: int = field(default=12345, metadata={"help": "random seed; same seed, same pages"})
    train_pages: int = field(default=40, metadata={"help": "pages rendered for training"})
    dev_pages: int = field(default=6, metadata={"help": "pages rendered for model selection and LM tuning"})
    test_pages: int = field(default=6, metadata={"help": "pages rendered for the final evaluation"})
    page_width: int = field(default=1275, metadata={"help": "page width in px (150 dpi US letter)"})
    page_height: int = field(default=1650, metadata={"help": "page height in px"})
    font_size_min: int = field(default=30, metadata={"help": "smallest font size in px"})
    font_size_max: int = field(default=40, metadata={"help": "largest font size in px"})
    max_skew_degrees: float = field(default=1.5, metadata={"help": "largest page rotation"})
    columns: int = field(default=1, metadata={"help": "text columns per page (2, 3: the text flows from column to column)", "choices": (1, 2, 3)})
    margin_notes: float = field(default=0.0, metadata={"help": "share of pages with a note of a few short lines in a margin beside a column"})
    dev_fraction: float = field(default=0.1, metadata={"help": "share of sentences held out for dev"})
    test_fraction: float = field(default=0.1, metadata={"help": "share of sentences held out for test"})
    text_dir: Path = field(default=PROJECT_ROOT / "tools" / "text" / "fortunes",
                           metadata={"help": "folder of fortune files (installed by make setup)"})
    fonts_dir: Path = field(default=PROJECT_ROOT / "tools" / "fonts",
                            metadata={"help": "folder of .ttf/.otf handwriting fonts (installed by make setup)"})
