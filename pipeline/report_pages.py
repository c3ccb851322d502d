"""The report's two pages, Markdown and self-contained HTML, from the tables, the gallery
and the plots :mod:`pipeline.report` drew (the HTML embeds plots and line images).  A
section's plot (``figures``: section key -> PNG file name in the report folder) follows its
table."""
from __future__ import annotations

import base64
import difflib
import html
from pathlib import Path

from pipeline.experiment import Experiment


def percent(value: float) -> str:
    """A rate as a table cell: one decimal of a percent, "n/a" for NaN."""
    return "n/a" if value != value else f"{100 * value:.1f}"


def interval(pair: list[float] | tuple[float, float]) -> str:
    return f"[{percent(pair[0])}, {percent(pair[1])}]"


def reduction_cell(reduction: dict[str, float]) -> str:
    """A relative reduction with its interval (:func:`pipeline.evaluate.paired_reduction`)."""
    return f"{percent(reduction['reduction'])}% [{percent(reduction['low'])}, {percent(reduction['high'])}]"


def _diff_html(ref: str, hyp: str) -> str:
    """The hypothesis with substituted/inserted characters marked, deletions struck from ref."""
    parts = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=ref, b=hyp, autojunk=False).get_opcodes():
        if tag == "equal":
            parts.append(html.escape(hyp[j1:j2]))
        else:
            if i2 > i1:
                parts.append(f'<del>{html.escape(ref[i1:i2])}</del>')
            if j2 > j1:
                parts.append(f'<ins>{html.escape(hyp[j1:j2])}</ins>')
    return "".join(parts)


def _markdown_table(rows: list[list[str]]) -> str:
    if not rows:
        return "_not available_\n"
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(out) + "\n"


def _html_table(rows: list[list[str]]) -> str:
    if not rows:
        return "<p><em>not available</em></p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image_data(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


SECTIONS = (
    ("Variants", "variants", "The training flags of the config's [train] table, which every variant shares, then each variant's own."),
    ("Test set: RNN alone and complete system", "paper", "CER and WER in %, with bootstrap 95% intervals over lines."),
    ("Relative reduction from dropout", "dropout", "Paired bootstrap over the same test lines; positive = fewer errors than the first variant."),
    ("Over writers", "writers", "Intervals from resampling whole writers (each writer's lines together): how the rates "
     "would vary over another set of hands, which the intervals over lines understate. Reductions: writers resampled in "
     "pairs, same system. Needs a test manifest that names each line's writer (htr prepare --writer-pattern; synthetic pages name their font)."),
    ("Relative reduction from lexicon and language model", "lm", "Each decoding system against the RNN alone, same model."),
    ("Language model and lexicon", "lm_info", "Built by `htr lm` from the training text (lm/lm.json); "
     "the extension (htr lm --extra-words) adds words the n-gram scores as unknown, weighted by their frequency."),
    ("Segmentation of the test pages", "segmentation", "Predicted lines matched one-to-one to ground-truth lines by pixel IoU."),
    ("Recognition on predicted vs ground-truth lines", "pages", "Page-level CER/WER: the lines of a page joined in reading order. "
     "'annotated only' drops predicted lines outside every ground-truth line (text the annotators left out); "
     "'annotated, GT order' also puts them in ground-truth order; the rest of the gap is the crops."),
    ("Confidence calibration", "calibration", "Each output word of the test lines: its optical confidence (htr decode "
     "--confidences) against whether it is right (an edit-distance alignment with the reference's words). "
     "ECE: the gap between confidence and accuracy in 10 confidence bins, weighted by their words (0: calibrated)."),
    ("Cost", "cost", "Training time, model size, decoding speed (from timings.json)."),
)


def markdown_page(exp: Experiment, tables: dict, items: list[dict], unfinished: list[str],
                  figures: dict[str, str]) -> str:
    parts = [f"# {exp.title}\n", f"Experiment folder `{exp.folder}`; test set `{exp.test}`.\n"]
    if unfinished:
        parts.append(f"**{INTERIM_NOTE}** ({', '.join(unfinished)})\n")
    for title, key, note in SECTIONS:
        parts.append(f"## {title}\n\n{note}\n\n{_markdown_table(tables[key])}")
        if key in figures:
            parts.append(f"![{Path(figures[key]).stem}]({figures[key]})\n")
    parts.append("## Learning curves\n\nTraining loss and greedy dev CER per epoch, and dev CER against training CPU-hours.\n\n![learning curves](learning_curves.png)\n")
    if items:
        parts.append(f"## Best and worst test lines ({list(exp.variants)[-1]})\n")
        for item in items:
            parts.append(f"- **{item['kind']}** `{item['id']}` (CER {100 * item['cer']:.0f}%)  \n  ref: {item['ref']}  \n"
                         + "".join(f"  {name}: {text}  \n" for name, text in item["outputs"].items()))
    return "\n".join(parts)


INTERIM_NOTE = ("Interim report: training is not finished; the scores are those of the best weights so far "
                "(see the training rows below)")

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}img.plot{max-width:100%}img.line{max-width:100%;border:1px solid #ddd}
del{background:#fdd;text-decoration:line-through}ins{background:#dfd;text-decoration:none}
.item{margin:1em 0;padding:.5em;border-left:4px solid #ccc}.worst{border-color:#d55}.best{border-color:#5a5}
.note{color:#555;font-size:14px}"""


def html_page(exp: Experiment, tables: dict, items: list[dict], out: Path, unfinished: list[str],
              figures: dict[str, str]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(exp.title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(exp.title)}</h1>"
             f"<p class='note'>Experiment folder <code>{html.escape(str(exp.folder))}</code>; test set "
             f"<code>{html.escape(str(exp.test))}</code>.</p>"]
    if unfinished:
        parts.append(f"<p><b>{html.escape(INTERIM_NOTE)}</b> ({html.escape(', '.join(unfinished))})</p>")
    for title, key, note in SECTIONS:
        parts.append(f"<h2>{html.escape(title)}</h2><p class='note'>{html.escape(note)}</p>{_html_table(tables[key])}")
        if key in figures:
            parts.append(f"<img class='plot' alt='{Path(figures[key]).stem}' src='{_image_data(out / figures[key])}'>")
    parts.append(f"<h2>Learning curves</h2><img class='plot' alt='learning curves' "
                 f"src='{_image_data(out / 'learning_curves.png')}'>")
    if items:
        parts.append(f"<h2>Best and worst test lines ({html.escape(list(exp.variants)[-1])})</h2>"
                     "<p class='note'>Red: reference characters missed; green: characters output wrongly.</p>")
        for item in items:
            image = (f"<img class='line' alt='{html.escape(item['id'])}' src='{_image_data(item['image'])}'>"
                     if item["image"] and Path(item["image"]).is_file() else "")
            outputs = "".join(f"<tr><th>{html.escape(name)}</th><td>{_diff_html(item['ref'], text)}</td></tr>"
                              for name, text in item["outputs"].items())
            parts.append(f"<div class='item {item['kind']}'><b>{item['kind']}</b> <code>{html.escape(item['id'])}</code> "
                         f"(CER {100 * item['cer']:.0f}%)<br>{image}<table><tr><th>reference</th>"
                         f"<td>{html.escape(item['ref'])}</td></tr>{outputs}</table></div>")
    parts.append("</body></html>")
    return "".join(parts)
