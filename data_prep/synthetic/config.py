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


@dataclass
class SyntheticLinesConfig(CliConfig):
    """``htr prepare synthetic-lines:MANIFEST``: single rendered text lines for pretraining.

    ``seed``, ``font_size_min``/``max``, ``max_skew_degrees`` and ``fonts_dir`` are the
    flags of :class:`SyntheticConfig` (same names, meaning and defaults): one flag serves
    both sources, so :meth:`add_arguments` adds only the others."""

    lines: int = field(default=20000, metadata={"help": "synthetic-lines: lines rendered"})
    wordfreq_share: float = field(default=0.3, metadata={
        "help": "synthetic-lines: share of lines made of French words from wordfreq instead of "
                "the manifest's transcriptions"})
    wordfreq_words: int = field(default=50000, metadata={
        "help": "synthetic-lines: the wordfreq vocabulary, the N most frequent French words"})
    wordfreq_smoothing: float = field(default=0.5, metadata={
        "help": "synthetic-lines: words are drawn with probability proportional to frequency**this "
                "(1: as often as in French text, 0: uniformly over the vocabulary)"})
    seed: int = SyntheticConfig.seed
    font_size_min: int = SyntheticConfig.font_size_min
    font_size_max: int = SyntheticConfig.font_size_max
    max_skew_degrees: float = SyntheticConfig.max_skew_degrees
    fonts_dir: Path = SyntheticConfig.fonts_dir

    SHARED = ("seed", "font_size_min", "font_size_max", "max_skew_degrees", "fonts_dir")

    @classmethod
    def add_arguments(cls, parser) -> None:
        super().add_arguments(_Without(parser, {"--" + name.replace("_", "-") for name in cls.SHARED}))

    def validate(self) -> None:
        """ValueError naming the flag whose value cannot work."""
        if self.lines < 0:
            raise ValueError(f"--lines {self.lines}: must be 0 or more")
        if not 0.0 <= self.wordfreq_share <= 1.0:
            raise ValueError(f"--wordfreq-share {self.wordfreq_share}: must be between 0 and 1")
        if self.wordfreq_words < 1:
            raise ValueError(f"--wordfreq-words {self.wordfreq_words}: must be 1 or more")
        if self.wordfreq_smoothing < 0:
            raise ValueError(f"--wordfreq-smoothing {self.wordfreq_smoothing}: must be 0 or more")
        if not 6 <= self.font_size_min <= self.font_size_max:
            raise ValueError(f"--font-size-min {self.font_size_min} --font-size-max {self.font_size_max}: "
                             "need 6 <= min <= max")


class _Without:
    """An argument parser that ignores the flags in ``skip`` (those another config added)."""

    def __init__(self, parser, skip: set[str]):
        self.parser, self.skip = parser, skip

    def add_argument(self, flag: str, **kwargs) -> None:
        if flag not in self.skip:
            self.parser.add_argument(flag, **kwargs)
