"""An experiment: its TOML config and every path of its folder.

``htr run`` writes the folder, ``htr report`` and ``scripts/export_models.py`` read it;
all three ask :class:`ExperimentFolder` for a path instead of spelling it, as
:mod:`pipeline.folders` does for one model folder.  Experiment folder::

    config.toml          the config the last run used (the report reads it back)
    timings.json         seconds and command of every step run
    stamps/STEP.json     size and SHA-256 of the inputs each step last ran on (pipeline.stamps)
    segment/pred/        predicted lines (ALTO) of the test pages; segment/eval.json their score
    segment/lines/       line crops of the predicted lines (manifest.jsonl, no text)
    models/VARIANT/      a model folder (pipeline.folders) + DONE when its training is finished
    lm/                  lexicon, KenLM binary, lm.json (htr lm)
    tuned/VARIANT.json   the LM weight and word bonus htr tune chose for that variant's model
    logits/VARIANT/SPLIT.npz
    hyp/VARIANT/SPLIT.SYSTEM.tsv
    eval/VARIANT/SPLIT.SYSTEM.json          htr evaluate: line scores
    eval/VARIANT/test-pages.SYSTEM.json     htr page-eval: page-level scores on GT and predicted lines
    eval/VARIANT/SPLIT.SYSTEM.calibration.json  htr calibration: word confidences against word accuracy
    report/              report.md, report.html, metrics.json, plots

Torch-free: the stage configs it checks keys against are imported only when a config
is checked (:func:`check_stage_keys`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.image_files import images_in
from common.files import read_toml
from pipeline.folders import DONE, TRAIN_LOG

CONFIG_COPY = "config.toml"
TIMINGS = "timings.json"


@dataclass
class System:
    """A decoding set-up shown as one column pair (CER, WER) of the report table."""

    name: str
    decoder: str
    options: dict[str, Any] = field(default_factory=dict)  # extra htr decode flags
    tune: bool = False  # use the LM weight and word bonus tuned on dev

    @property
    def slug(self) -> str:
        return system_slug(self)

    @property
    def needs_lm(self) -> bool:
        return self.decoder not in ("greedy", "beam")


def flags(options: dict[str, Any]) -> list[str]:
    """``{"max_minutes": 4, "augment": True}`` -> ``["--max-minutes", "4", "--augment"]``: a config
    table as the flags of its htr command (the runner passes them, the report lists them)."""
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, list):
            argv += [flag, ",".join(str(v) for v in value)]
        else:
            argv += [flag, str(value)]
    return argv


def system_slug(system: System) -> str:
    """'+ lexicon + LM' -> 'lexicon-lm': a file-name part."""
    return "-".join("".join(c if c.isalnum() else " " for c in system.name.lower()).split())


@dataclass(frozen=True)
class ExperimentFolder:
    """Every path of an experiment folder."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_COPY

    @property
    def timings(self) -> Path:
        return self.root / TIMINGS

    @property
    def report(self) -> Path:
        return self.root / "report"

    def stamp(self, step_name: str) -> Path:
        """The input fingerprints of the step called ``step_name`` (``htr run``)."""
        slug = "".join(c if c.isalnum() or c in "-." else "-" for c in step_name.strip())
        return self.root / "stamps" / f"{slug}.json"

    # segmentation of the test pages
    @property
    def segment_pred(self) -> Path:
        return self.root / "segment" / "pred"

    @property
    def segment_eval(self) -> Path:
        return self.root / "segment" / "eval.json"

    @property
    def segment_manifest(self) -> Path:
        return self.root / "segment" / "lines" / "manifest.jsonl"

    def predicted_xml(self, page: Path) -> Path:
        return self.segment_pred / f"{Path(page).stem}.xml"

    # language model
    @property
    def lm(self) -> Path:
        return self.root / "lm"

    @property
    def lexicon(self) -> Path:
        return self.lm / "lexicon.txt"

    @property
    def lm_info(self) -> Path:
        return self.lm / "lm.json"

    def tuned(self, variant: str) -> Path:
        """The tuned LM weights of one variant (``htr tune --out``, ``htr decode --tuned``)."""
        return self.root / "tuned" / f"{variant}.json"

    # models and their outputs
    def model(self, variant: str) -> Path:
        return self.root / "models" / variant

    def done(self, variant: str) -> Path:
        return self.model(variant) / DONE

    def train_log(self, variant: str) -> Path:
        return self.model(variant) / TRAIN_LOG

    def logits(self, variant: str, split: str) -> Path:
        return self.root / "logits" / variant / f"{split}.npz"

    def hyp(self, variant: str, split: str, system: System) -> Path:
        return self.root / "hyp" / variant / f"{split}.{system.slug}.tsv"

    def calibration(self, variant: str, split: str, system: System) -> Path:
        """The ``htr calibration`` JSON of one (variant, split, system)."""
        return self.root / "eval" / variant / f"{split}.{system.slug}.calibration.json"

    def scores(self, variant: str, split: str, system: System) -> Path:
        """The ``htr evaluate`` JSON of one (variant, split, system)."""
        return self.root / "eval" / variant / f"{split}.{system.slug}.json"

    def page_scores(self, variant: str, system: System) -> Path:
        """The ``htr page-eval`` JSON of one (variant, system): the test pages, on ground-truth
        and on predicted lines."""
        return self.root / "eval" / variant / f"test-pages.{system.slug}.json"


@dataclass
class Experiment:
    folder: Path
    train: Path
    dev: Path
    test: Path
    lm_text: list[Path]
    test_pages: Path | None
    variants: dict[str, dict[str, Any]]
    train_options: dict[str, Any]
    lm_options: dict[str, Any]
    systems: list[System]
    jobs: int
    prepare: list[list[str]]  # htr prepare commands that create the data when it is missing
    title: str
    train_until: str = "minutes"  # "minutes": one run of max_minutes is the whole training; "epochs": see below
    train_jobs: int = 1  # variants trained at the same time, the cores split between them
    # exported model folders that unstarted trainings continue: a folder of VARIANT subfolders
    # (models/NAME/VARIANT), or a table naming each variant's folder (a probe kept under its own name)
    resume_from: Path | dict[str, Path] | None = None

    @property
    def tune_decoders(self) -> list[str]:
        """The decoders whose LM weight and word bonus are tuned on dev: those of the systems
        with ``tune = true``, in their order."""
        return list(dict.fromkeys(system.decoder for system in self.systems if system.tune))

    @property
    def paths(self) -> ExperimentFolder:
        return ExperimentFolder(Path(self.folder))

    def page_images(self) -> list[Path]:
        """The test page images to segment ([] without ``test_pages``)."""
        if self.test_pages is None:
            return []
        if not Path(self.test_pages).is_dir():
            raise ValueError(f"{self.test_pages}: the config's test_pages folder does not exist "
                             "(its [data] prepare commands create it; or fix the path)")
        return images_in(self.test_pages)

    def resume_source(self, variant: str) -> Path | None:
        """The exported model folder that ``variant``'s training continues when it has not started."""
        if isinstance(self.resume_from, dict):
            return self.resume_from.get(variant)
        return self.resume_from / variant if self.resume_from is not None else None

    def data_ready(self) -> bool:
        """The train/dev/test manifests exist (else the [data] prepare commands make them)."""
        return all(Path(p).exists() for p in (self.train, self.dev, self.test))


def _require(table: dict, key: str, where: str) -> Any:
    if key not in table:
        raise ValueError(f"config: missing '{key}' in [{where}]")
    return table[key]


def load_experiment(path: Path, folder: Path | None = None, check_stages: bool = True) -> Experiment:
    """Read and check a TOML experiment config; relative paths are relative to the current folder.

    ``check_stages``: refuse a ``[train]``/``[lm]``/variant/system option that the stage's
    config does not have (the runner); the report and the export read a finished folder
    and skip it, so an old experiment stays readable after a stage option is renamed."""
    data = read_toml(path, "config file")
    dataset = _require(data, "data", "top level")
    variants = {v["name"]: {k: x for k, x in v.items() if k != "name"} for v in _require(data, "variants", "top level")}
    if not variants:
        raise ValueError(f"{path}: at least one [[variants]] is needed")
    decode = data.get("decode", {})
    systems = [System(name=s["name"], decoder=s["decoder"], options=s.get("options", {}), tune=s.get("tune", False))
               for s in decode.get("systems", [{"name": "RNN alone", "decoder": "greedy"}])]
    pages = dataset.get("test_pages")
    exp = Experiment(
        folder=Path(folder or data.get("folder") or f"work/experiments/{Path(path).stem}"),
        train=Path(_require(dataset, "train", "data")), dev=Path(_require(dataset, "dev", "data")),
        test=Path(_require(dataset, "test", "data")),
        lm_text=[Path(p) for p in dataset.get("lm_text", [])],
        test_pages=Path(pages) if pages else None,
        variants=variants, train_options=data.get("train", {}), lm_options=data.get("lm", {}),
        systems=systems,
        jobs=int(data.get("jobs", 2)), prepare=_commands(dataset.get("prepare", [])),
        title=data.get("title", Path(path).stem), train_until=data.get("train_until", "minutes"),
        train_jobs=max(1, int(data.get("train_jobs", 1))),
        resume_from=_resume_from(data.get("resume_from"), variants, Path(path)))
    if check_stages:
        check_stage_keys(exp, Path(path))
        if "tune_decoder" in decode:  # an older config; a finished folder's copy is still read as is
            raise ValueError(f"{path}: [decode] tune_decoder is no longer read: the decoder of every system "
                             "with tune = true is tuned; remove the line")
    return exp


def _resume_from(value: Any, variants: dict, path: Path) -> Path | dict[str, Path] | None:
    """``resume_from``: a folder of VARIANT subfolders, or a table ``{variant = folder}``."""
    if not value:
        return None
    if not isinstance(value, dict):
        return Path(value)
    unknown = sorted(set(value) - set(variants))
    if unknown:
        raise ValueError(f"{path}: resume_from names {', '.join(unknown)}, not a variant of the config "
                         f"(variants: {', '.join(variants)})")
    return {variant: Path(str(folder)) for variant, folder in value.items()}


def _commands(value: list) -> list[list[str]]:
    """``prepare`` is one htr argv (a list of strings) or a list of them."""
    if value and all(isinstance(item, str) for item in value):
        return [list(value)]
    return [list(item) for item in value]


def check_stage_keys(exp: Experiment, path: Path) -> None:
    """Each stage's options against the fields of its config dataclass, so a typo fails
    when the config loads, not when its step runs after the earlier stages."""
    from lm.build import LmConfig
    from pipeline.decoders.config import DecodeConfig
    from pipeline.train import TrainConfig  # imports torch: only when a config is checked

    tables = [("[train]", exp.train_options, TrainConfig), ("[lm]", exp.lm_options, LmConfig)]
    tables += [(f"[[variants]] {name!r}", options, TrainConfig) for name, options in exp.variants.items()]
    tables += [(f"[[decode.systems]] {s.name!r} options", s.options, DecodeConfig) for s in exp.systems]
    for where, options, config in tables:
        known = {item.name for item in dataclasses.fields(config)}
        for key in options:
            if key not in known:
                raise ValueError(f"{path}: unknown key '{key}' in {where}; it is not an option of "
                                 f"{config.__name__} (see 'htr {_STAGE_COMMAND[config.__name__]} --help')")


_STAGE_COMMAND = {"TrainConfig": "train", "LmConfig": "lm", "DecodeConfig": "decode"}
