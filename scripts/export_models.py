"""Copy an experiment's trained models and LM into a small, committable folder with a model card.

    .venv/bin/python scripts/export_models.py work/experiments/copiste --out models/copiste \
        --lm-variant dropout-all --data "Copiste d'un jour (BAnQ, CC-BY 4.0): ..."

Writes ``OUT/VARIANT/`` (``model.json`` + ``weights.pt``, what ``htr recognize --model`` reads,
plus ``metrics.json/csv`` and ``train_config.json``, so that ``resume_from`` in an experiment
config continues the training from these folders), ``OUT/lm/`` (``lexicon.txt``, ``words.txt``, ``lm.bin``, ``lm.json``, the character
n-gram ``char.bin`` and the lexicon extension's ``wordlist.txt`` + ``extension.json`` if it has them, and, as ``tuned.json``, the
tuned weights of ``--lm-variant``, or the file ``--lm-tuned``: what ``htr decode --lm`` reads without ``--tuned``) and ``OUT/MODEL_CARD.md``:
data, settings, training state and the dev/test scores found in the experiment folder.
With ``--card META.toml`` (licence, training data and its licence, language, script, period,
reproduce commands; see ``configs/copiste-card.toml``) the card starts with a YAML header
(:mod:`pipeline.model_card`) that also lists each model's alphabet and dev CER/WER.
``--refresh-card OUT`` rewrites only that header of an exported card, from OUT's own files
and the card's score table (no experiment folder needed); ``--replace-default OUT --default
MODEL_DIR`` (with ``--lm-tuned``, ``--default-note``, ``--card`` as in an export) replaces only
OUT/default, its tuned LM weights and what the card says of them (``make copiste-default``).
Every file is written atomically; rerun after more training to refresh the export.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.files import atomic_write_bytes, atomic_write_text  # noqa: E402
from lm.extend import EXTENSION, WORDLIST, surface_oov_summary  # noqa: E402
from pipeline import model_card as card_header  # noqa: E402
from pipeline.decoders.config import TUNED_KEYS  # noqa: E402
from lm.folder import TUNED, char_model  # noqa: E402
from pipeline.experiment import Experiment, ExperimentFolder, load_experiment  # noqa: E402
from pipeline.folders import CONFIG_FILE, DONE, EXPORTED_FILES, METRICS_JSON, ensemble_members  # noqa: E402
from pipeline.model_folder import write_ensemble  # noqa: E402
from pipeline.metrics import best_epoch_row  # noqa: E402

DEFAULT = "default"  # OUT/default: the model `htr transcribe` uses without --model (pipeline.folders)
MODEL_FILES = EXPORTED_FILES  # what `htr run` needs to continue a training (resume_from)
LM_FILES = ("lexicon.txt", "words.txt", "lm.bin", "lm.json")
LM_OPTIONAL_FILES = ("char.bin", WORDLIST, EXTENSION)  # htr lm --char, --extra-words
SETTINGS = ("arch", "mdlstm_hidden", "mdlstm_conv", "height", "dropout", "dropout_where", "optimizer", "lr",
            "batch_size", "scheduler", "max_epochs", "patience", "seed")


def copy(source: Path, target: Path) -> None:
    if not source.is_file():
        raise FileNotFoundError(f"{source}: missing (train the experiment first: htr run CONFIG)")
    atomic_write_bytes(target, source.read_bytes())


def training_state(model: Path) -> dict:
    for name in (METRICS_JSON, CONFIG_FILE):
        if not (model / name).is_file():
            raise FileNotFoundError(f"{model / name}: missing (htr train writes it beside the weights; copy it with them)")
    metrics = json.loads((model / METRICS_JSON).read_text())
    config = json.loads((model / CONFIG_FILE).read_text())
    best = best_epoch_row(metrics)
    return {"epochs": len(metrics), "max_epochs": config["max_epochs"], "finished": (model / DONE).is_file(),
            "best_epoch": best["epoch"], "best_dev_cer": best["dev_cer"],
            "settings": {key: config[key] for key in SETTINGS if key in config}}


def scores(exp: Experiment, variant: str) -> list[tuple[str, float, float]]:
    """(system, CER %, WER %) of each system scored on the test split."""
    rows = []
    for system in exp.systems:
        path = exp.paths.scores(variant, "test", system)
        if path.is_file():
            data = json.loads(path.read_text())
            rows.append((system.name, 100 * data["cer"], 100 * data["wer"]))
    return rows


def extension_note(lm_info: dict) -> list[str]:
    """The model card's paragraph on the lexicon extension (htr lm --extra-words), if any."""
    extension, dev = lm_info.get("extension"), lm_info.get("dev", {})
    if not extension:
        return []
    oov = f" Dev surface-word OOV rate {surface_oov_summary(dev)}." if "extended_surface_oov_rate" in dev else ""
    return [f"Lexicon extension (`wordlist.txt`, `extension.json`): the strict lexicon also spells the "
            f"{extension['listed_words']} most frequent words of `{extension['source']}` in the word shapes of the "
            f"training text ({', '.join(f'`{s}`' for s in extension['shapes'])}): "
            f"{extension['surface_words_added']} surface words; the n-gram is unchanged.{oov} "
            "`htr decode --no-extra-lexicon` leaves it out.\n"]


def char_note(lm_info: dict, lm: Path) -> list[str]:
    """The model card's paragraph on the character n-gram (htr lm --char), if it was exported."""
    if not char_model(lm).is_file():
        return []
    perplexity = lm_info.get("dev", {}).get("char_perplexity")
    measured = f" (dev perplexity {perplexity} per character)" if perplexity else ""
    return [f"Character {lm_info['config'].get('char_order', 'n')}-gram (`char.bin`, KenLM) from the same text{measured}: "
            "the open-vocabulary `char-lm` decoder, which `htr transcribe` uses with this folder when "
            "given no `--decoder`.\n"]


def model_card(exp: Experiment, out: Path, states: dict, data: str, lm_variant: str,
               lm_tuned: Path | None = None, default_note: str = "") -> str:
    lm_info = json.loads(exp.paths.lm_info.read_text())
    tuned_path = lm_tuned or exp.paths.tuned(lm_variant)
    tuned_for = tuned_for_default(lm_tuned) if lm_tuned else lm_variant
    tuned = tuned_values(tuned_path)
    char = char_note(lm_info, out / "lm")
    lines = [f"# Model card: {exp.title}\n", f"**Data.** {data}\n",
             f"Training manifest `{exp.train}`, model selection and test on `{exp.test}`; "
             f"experiment config `{exp.paths.config}` (rerun: `htr run` with that config).\n",
             "## Optical models\n",
             "| variant | epochs trained | state | best greedy dev CER | at epoch |", "|---|---|---|---|---|"]
    for variant, state in states.items():
        lines.append(f"| {variant} | {state['epochs']} of {state['max_epochs']} | "
                     f"{'finished' if state['finished'] else 'unfinished (interim)'} | "
                     f"{state['best_dev_cer']:.1f}% | {state['best_epoch']} |")
    source = out / DEFAULT / "SOURCE"
    if source.is_file():
        lines += ["", default_paragraph(source.read_text().strip(), default_note)]
    settings = next(iter(states.values()))["settings"]
    lines += ["", "Settings (all variants; only `dropout_where` differs): "
              + ", ".join(f"`{k}={v}`" for k, v in settings.items() if k != "dropout_where") + ".\n",
              "## Scores on the test set (%)\n", "| variant | system | CER | WER |", "|---|---|---|---|"]
    for variant in states:
        for name, cer, wer in scores(exp, variant):
            lines.append(f"| {variant} | {name} | {cer:.1f} | {wer:.1f} |")
    dev = lm_info.get("dev", {})
    lines += ["", "## Language model\n",
              f"Word {lm_info['config']['order']}-gram (KenLM) and lexicon from {', '.join(lm_info['texts'])}: "
              f"{lm_info['lexicon_size']} tokens, {lm_info['surface_words']} surface words; dev perplexity "
              f"{dev.get('perplexity', 'n/a')}, OOV rate {100 * dev.get('oov_rate', float('nan')):.1f}%. "
              f"{tuned_sentence(tuned_for, tuned)}\n",
              *extension_note(lm_info), *char,
              "## Use\n", "```bash",
              f"htr recognize --model {out}/{lm_variant} --manifest LINES.jsonl --out logits.npz",
              f"htr decode --logits logits.npz --decoder lexicon --lm {out}/lm --out hyp.tsv",
              *([f"htr decode --logits logits.npz --decoder char-lm --lm {out}/lm --out hyp.tsv"] if char else []),
              f"htr transcribe PAGE.jpg --model {out}/{lm_variant} --lm {out}/lm --out transcripts",
              "```\n"]
    return "\n".join(lines)


# how the card's paragraph on OUT/default and its sentence on the tuned LM weights begin: written
# by default_paragraph / tuned_sentence, found again by replace_default
DEFAULT_PARAGRAPH_START = f"`{DEFAULT}/` is a copy of "
TUNED_SENTENCE_START = "`tuned.json` holds the LM weight, word bonus and blank penalty tuned on dev for "


def default_paragraph(label: str, note: str = "") -> str:
    """The card's paragraph on OUT/default: what it is a copy of, then the --default-note text."""
    return (f"{DEFAULT_PARAGRAPH_START}`{label}`: the model `htr transcribe` reads with when it is given "
            "no `--model`." + (f" {note}" if note else ""))


def tuned_values(path: Path) -> dict:
    """The tuned LM weights in ``path`` (htr tune --out), without the search behind them."""
    found = json.loads(path.read_text()) if path.is_file() else {}
    return {decoder: {key: values[key] for key in TUNED_KEYS if key in values} for decoder, values in found.items()}


def tuned_sentence(tuned_for: str, tuned: dict) -> str:
    return f"{TUNED_SENTENCE_START}{tuned_for}: {json.dumps(tuned)}."


def tuned_for_default(lm_tuned: Path) -> str:
    return f"the default model (`{lm_tuned}`)"


def note_text(default_note: Path | None) -> str:
    """The --default-note file as one paragraph of the card ("" without one)."""
    return " ".join(default_note.read_text(encoding="utf-8").split()) if default_note is not None else ""


def default_source(exp: Experiment, states: dict, default: str) -> tuple[str, Path]:
    """(name, folder) of the model that becomes OUT/default: a variant of the experiment, the
    variant with the lowest best dev CER (``best``), or any model folder (e.g. a wider layout's
    training, named by its path)."""
    if default == "best":
        default = min(states, key=lambda variant: states[variant]["best_dev_cer"])
    if default in states:
        return default, exp.paths.model(default)
    folder = Path(default)
    if not (folder / "model.json").is_file():
        raise ValueError(f"--default {default}: neither a variant ({', '.join(states)}), 'best', nor a model folder")
    return str(folder), folder


def export_default(source: Path, target: Path) -> None:
    """Copy a model folder, or an ensemble folder with its members, to ``target``."""
    members = ensemble_members(source)
    # read every training state before writing anything: a member without its metrics must
    # stop the export while the previous default is still whole
    if members:
        cers = ", ".join(f"{m.name} {training_state(m)['best_dev_cer']:.2f}%" for m in members)
        write_ensemble(target, members)
        print(f"default model: the ensemble {source} (members' best dev CER: {cers})")
        return
    best = training_state(source)["best_dev_cer"]
    for old in ensemble_members(target):  # an ensemble before: its members go
        shutil.rmtree(old, ignore_errors=True)
    for name in MODEL_FILES:
        copy(source / name, target / name)
    print(f"default model: {source} (best dev CER {best:.2f}%)")


def export(exp_folder: Path, out: Path, lm_variant: str, data: str, meta: dict | None = None,
           default: str | None = None, lm_tuned: Path | None = None, default_note: Path | None = None) -> Path:
    exp = load_experiment(ExperimentFolder(exp_folder).config, exp_folder, check_stages=False)
    states = {}
    for variant in exp.variants:
        model = exp.paths.model(variant)
        for name in MODEL_FILES:
            copy(model / name, out / variant / name)
        states[variant] = training_state(model)
    if default is not None:  # what `htr transcribe` reads with when given no --model
        label, source = default_source(exp, states, default)
        export_default(source, out / DEFAULT)
        atomic_write_text(out / DEFAULT / "SOURCE", f"{label}\n")
    lm = exp.paths.lm
    for name in LM_FILES:
        copy(lm / name, out / "lm" / name)
    for name in LM_OPTIONAL_FILES:
        if (lm / name).is_file():
            copy(lm / name, out / "lm" / name)
        else:
            (out / "lm" / name).unlink(missing_ok=True)
    tuned = lm_tuned or exp.paths.tuned(lm_variant)
    if lm_tuned is not None or tuned.is_file():
        copy(tuned, out / "lm" / TUNED)
    note = note_text(default_note)
    card = model_card(exp, out, states, data, lm_variant, lm_tuned, note)
    if meta is not None:
        found = {variant: scores(exp, variant) for variant in exp.variants}
        card = card_header.front_matter(meta, out, list(exp.variants), found, lm_variant) + card
    atomic_write_text(out / "MODEL_CARD.md", card)
    return out / "MODEL_CARD.md"


def replace_default(out: Path, default: Path, meta: dict | None, lm_variant: str, lm_tuned: Path | None = None,
                    default_note: Path | None = None) -> Path:
    """Make the model folder ``default`` OUT/default, ship ``lm_tuned`` as OUT/lm/tuned.json and rewrite
    what the card says of them as an export would, without the experiment folder (a fresh checkout
    has none); the other models, the LM and the scores stay as exported."""
    path = out / "MODEL_CARD.md"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (export the models first)")
    if not (default / "model.json").is_file():
        raise ValueError(f"--default {default}: not a model folder (no model.json)")
    if lm_tuned is not None and not lm_tuned.is_file():  # checked before anything is written
        raise FileNotFoundError(f"{lm_tuned}: missing (htr tune --out writes it)")
    text = path.read_text(encoding="utf-8")
    _, body = card_header.split_card(text)
    header_text = text[:len(text) - len(body)]
    note = note_text(default_note)
    body, found = re.subn(rf"^{re.escape(DEFAULT_PARAGRAPH_START)}.*$", lambda _: default_paragraph(str(default), note), body,
                          count=1, flags=re.M)
    if not found:
        raise ValueError(f"{path}: no paragraph on `{DEFAULT}/` to replace (export with --default first)")
    if lm_tuned is not None:
        sentence = tuned_sentence(tuned_for_default(lm_tuned), tuned_values(lm_tuned))
        body, found = re.subn(rf"{re.escape(TUNED_SENTENCE_START)}.*?: \{{.*\}}\.$",
                              lambda _: sentence, body, count=1, flags=re.M)
        if not found:  # else tuned.json would change while the card still named the old weights
            raise ValueError(f"{path}: no sentence on the tuned LM weights to replace (export the models again)")
    export_default(default, out / DEFAULT)
    atomic_write_text(out / DEFAULT / "SOURCE", f"{default}\n")
    if lm_tuned is not None:
        copy(lm_tuned, out / "lm" / TUNED)
    atomic_write_text(path, header_text + body)
    return refresh_card(out, meta, lm_variant) if meta is not None else path


def refresh_card(out: Path, meta: dict, lm_variant: str) -> Path:
    """Rewrite the YAML header of ``out/MODEL_CARD.md``, keeping its body."""
    path = out / "MODEL_CARD.md"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (export the models first)")
    old, body = card_header.split_card(path.read_text(encoding="utf-8"))
    variants = sorted(p.parent.name for p in out.glob("*/model.json"))
    scores = card_header.scores_from_body(body)  # the body's table rounds to 0.1
    if old is not None:  # keep the export's order of the models and its scores to 0.01
        listed = [model["name"] for model in old.get("models", [])]
        variants = [v for v in listed if v in variants] + [v for v in variants if v not in listed]
        scores.update({model["name"]: [(row["system"], row["cer"], row["wer"]) for row in model["dev"]]
                       for model in old.get("models", []) if model.get("dev")})
    header = card_header.front_matter(meta, out, variants, scores, lm_variant)
    atomic_write_text(path, header + body)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", type=Path, nargs="?", help="experiment folder (holds config.toml, models/, lm/)")
    parser.add_argument("--out", type=Path, help="export folder, e.g. models/copiste")
    parser.add_argument("--lm-variant", default="dropout-all", help="variant whose tuned LM weights ship in OUT/lm")
    parser.add_argument("--lm-tuned", type=Path, metavar="FILE",
                        help="ship these tuned LM weights (htr tune --out FILE, e.g. tuned on dev for the default "
                             "model) instead of those of --lm-variant")
    parser.add_argument("--data", default="", help="one paragraph on the training data and its licence")
    parser.add_argument("--default", metavar="VARIANT|best|MODEL_DIR",
                        help="also copy this model into OUT/default (what htr transcribe uses without --model): "
                             "a variant, the variant with the best dev CER, or any model folder")
    parser.add_argument("--default-note", type=Path, metavar="FILE",
                        help="a Markdown paragraph on the --default model (what it is, its measured scores and "
                             "the commands behind them) that the card prints after naming it")
    parser.add_argument("--card", type=Path, help="card metadata (TOML): the card gets a YAML header")
    parser.add_argument("--refresh-card", type=Path, metavar="OUT", help="only rewrite the YAML header of OUT/MODEL_CARD.md")
    parser.add_argument("--replace-default", type=Path, metavar="OUT",
                        help="only make the --default model folder OUT/default (with --lm-tuned and --default-note "
                             "as in an export, --card to rewrite the header), without the experiment folder")
    args = parser.parse_args()
    if args.refresh_card is not None and args.card is None:
        parser.error("--refresh-card needs --card META.toml")
    if args.replace_default is not None and args.default is None:
        parser.error("--replace-default needs --default MODEL_DIR")
    if args.refresh_card is None and args.replace_default is None and (args.experiment is None or args.out is None):
        parser.error("give EXPERIMENT and --out (or --refresh-card OUT --card META.toml)")
    try:
        meta = card_header.read_meta(args.card) if args.card else None
        if args.replace_default is not None:
            card = replace_default(args.replace_default, Path(args.default), meta, args.lm_variant, args.lm_tuned,
                                   args.default_note)
            print(f"replaced {args.replace_default / DEFAULT} with {args.default} ({card})")
            return 0
        if args.refresh_card is not None:
            card = refresh_card(args.refresh_card, meta, args.lm_variant)
            print(f"rewrote the header of {card}")
            return 0
        card = export(args.experiment, args.out, args.lm_variant, args.data, meta, args.default, args.lm_tuned,
                      args.default_note)
    except (FileNotFoundError, ValueError, KeyError) as error:
        print(f"export_models: {error}", file=sys.stderr)
        return 1
    print(f"exported to {args.out} ({card})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
