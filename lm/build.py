"""``htr lm``: lexicon and KenLM n-gram models from plain text.

Writes into ``--out DIR`` (everything a decoder needs, found by directory):

* ``lexicon.txt``   LM tokens (:func:`lm.text.tokenize`) with counts, most frequent first,
  after the ``--max-words`` / ``--min-count`` cut;
* ``words.txt``     surface words (what a CTC line shows between spaces, punctuation
  attached, case kept) whose tokens are all in the lexicon: the strict lexicon decoder's
  vocabulary;
* ``lm.arpa``, ``lm.bin``  word-token n-gram (``lmplz`` + ``build_binary``);
* ``char.arpa``, ``char.bin``  with ``--char``: character n-gram, space written ``<sp>``;
* ``lm.json``       settings and statistics (perplexity and OOV rate on ``--dev``);
* ``wordlist.txt``, ``extension.json``  with ``--extra-words``: the words taken from the
  word list and the word shapes learned from the text, from which the strict lexicon
  decoder spells words beyond the training text (:mod:`lm.extend`).

KenLM's query code (the ``kenlm`` module and flashlight-text) is compiled for n-gram
orders up to 6, so both orders are capped at 6.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from common.cliconfig import CliConfig
from common.files import atomic_write_text
from data_prep.records import read_manifest
from lm.extend import EXTENSION, WORDLIST, extend_lexicon, learn_shapes, read_word_list, save_extension, surface_oov_rate
from lm.folder import SPACE, folder_tuned, write_counts
from lm.text import normalize, surface_words, tokenize

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TOOLS = PROJECT_ROOT / "tools" / "bin"
MAX_ORDER = 6  # KENLM_MAX_ORDER of the kenlm and flashlight-text wheels


@dataclass
class LmConfig(CliConfig):
    order: int = field(default=3, metadata={"help": "word n-gram order (2-6)"})
    max_words: int = field(default=0, metadata={"help": "keep only the N most frequent tokens (0: all)"})
    min_count: int = field(default=1, metadata={"help": "drop tokens seen fewer times"})
    lowercase: bool = field(default=False, metadata={"help": "fold case in the word LM and lexicon (the character LM keeps case)"})
    char: bool = field(default=False, metadata={"help": "also build a character n-gram (for --decoder char-lm)"})
    char_order: int = field(default=6, metadata={"help": "character n-gram order (2-6)"})
    memory: str = field(default="1G", metadata={"help": "lmplz memory budget (-S)"})
    extra_words: str = field(default="", metadata={"help": "extend the strict lexicon with a word list: wordfreq:LANG or a word<TAB>count file; the n-gram stays on --text ('': no extension)"})
    extra_limit: int = field(default=20000, metadata={"help": "--extra-words: take the N most frequent words of the list"})
    shape_min_count: int = field(default=20, metadata={"help": "--extra-words: word shapes (clitic prefix, punctuation suffix) seen fewer times in the text are not used"})


def tool(name: str) -> Path:
    path = TOOLS / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: KenLM tool missing; run 'make setup' to build lmplz and build_binary")
    return path


def read_lines(path: Path) -> list[str]:
    """Sentences of a text file (one per line) or the texts of a line manifest (.jsonl)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: text file not found")
    if path.suffix == ".jsonl":
        return [record.text for record in read_manifest(path)]
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def count_vocabulary(lines: list[str], config: LmConfig) -> tuple[Counter, Counter, list[list[str]]]:
    """Token counts, surface-word counts and the tokenised sentences."""
    tokens, surfaces, sentences = Counter(), Counter(), []
    for line in lines:
        sentence = tokenize(line, config.lowercase)
        if not sentence:
            continue
        sentences.append(sentence)
        tokens.update(sentence)
        surfaces.update(surface_words(line))
    return tokens, surfaces, sentences


def cut_vocabulary(tokens: Counter, config: LmConfig) -> Counter:
    kept = [(t, c) for t, c in tokens.most_common() if c >= config.min_count]
    if config.max_words > 0:
        kept = kept[:config.max_words]
    return Counter(dict(kept))


def run_lmplz(corpus: Path, arpa: Path, order: int, config: LmConfig, tmp: Path,
              vocab: Path | None = None) -> bool:
    """Run lmplz; retries with ``--discount_fallback`` when the corpus is too small for
    Kneser-Ney discount estimation.  Returns whether the fallback was needed."""
    base = [str(tool("lmplz")), "-o", str(order), "-S", config.memory, "-T", str(tmp),
            "--arpa", str(arpa), "--text", str(corpus)]
    if vocab is not None:
        base += ["--limit_vocab_file", str(vocab)]
    for fallback in (False, True):
        command = base + (["--discount_fallback"] if fallback else [])
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0:
            return fallback
        if "discount" not in result.stderr.lower() or fallback:
            tail = "\n".join(result.stderr.strip().splitlines()[-5:])
            raise RuntimeError(f"lmplz failed on {corpus} (order {order}):\n{tail}")
    raise AssertionError("unreachable")


def build_binary(arpa: Path, binary: Path) -> None:
    tmp = binary.with_name(f".{binary.name}.tmp")
    result = subprocess.run([str(tool("build_binary")), "-S", "1G", str(arpa), str(tmp)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"build_binary failed on {arpa}:\n{result.stderr.strip()[-800:]}")
    tmp.replace(binary)


def char_sequence(line: str) -> list[str]:
    """Characters of a line for the character LM.  Case is kept: the char-lm decoder maps
    each output label to one LM symbol."""
    return [SPACE if c == " " else c for c in normalize(line)]


def perplexity(model_path: Path, sentences: list[list[str]], vocabulary: set[str]) -> dict:
    """Perplexity (with </s>, OOVs included as KenLM scores them) and OOV rate."""
    import kenlm
    model = kenlm.Model(str(model_path))
    total, count, oov = 0.0, 0, 0
    for sentence in sentences:
        total += model.score(" ".join(sentence), bos=True, eos=True)
        count += len(sentence) + 1
        oov += sum(token not in vocabulary for token in sentence)
    tokens = sum(len(s) for s in sentences)
    return {"perplexity": round(10 ** (-total / max(1, count)), 3),
            "oov_rate": round(oov / max(1, tokens), 5), "tokens": tokens}


def build(texts: list[Path], out: Path, config: LmConfig, dev: Path | None = None) -> dict:
    """Build lexicon and models into ``out``; returns the statistics written to lm.json."""
    for name, order in (("order", config.order), ("char_order", config.char_order)):
        if not 2 <= order <= MAX_ORDER:
            raise ValueError(f"--{name.replace('_', '-')} {order}: KenLM's query code here supports orders 2-{MAX_ORDER}")
    lines = [line for path in texts for line in read_lines(path)]
    tokens, surfaces, sentences = count_vocabulary(lines, config)
    if not sentences:
        raise ValueError(f"no text in {', '.join(map(str, texts))}")
    lexicon = cut_vocabulary(tokens, config)
    words = Counter({w: c for w, c in surfaces.items()
                     if all(t in lexicon for t in tokenize(w, config.lowercase))})
    out.mkdir(parents=True, exist_ok=True)
    stats: dict = {"config": config.to_dict(), "texts": [str(p) for p in texts],
                   "sentences": len(sentences), "corpus_tokens": sum(tokens.values()),
                   "lexicon_size": len(lexicon), "surface_words": len(words)}
    with tempfile.TemporaryDirectory(dir=out, prefix=".lm-") as tmpdir:
        tmp = Path(tmpdir)
        corpus = tmp / "corpus.txt"
        corpus.write_text("".join(" ".join(s) + "\n" for s in sentences), encoding="utf-8")
        vocab = None
        if len(lexicon) < len(tokens):
            vocab = tmp / "vocab.txt"
            vocab.write_text("\n".join(lexicon) + "\n", encoding="utf-8")
        stats["discount_fallback"] = run_lmplz(corpus, tmp / "lm.arpa", config.order, config, tmp, vocab)
        build_binary(tmp / "lm.arpa", tmp / "lm.bin")
        if config.char:
            chars = tmp / "chars.txt"
            chars.write_text("".join(" ".join(char_sequence(line)) + "\n"
                                     for line in lines if line.strip()), encoding="utf-8")
            stats["char_discount_fallback"] = run_lmplz(chars, tmp / "char.arpa", config.char_order, config, tmp)
            build_binary(tmp / "char.arpa", tmp / "char.bin")
        for name in ("lm.arpa", "lm.bin", "char.arpa", "char.bin"):
            if (tmp / name).exists():
                (tmp / name).replace(out / name)
    write_counts(out / "lexicon.txt", lexicon)
    write_counts(out / "words.txt", words)
    extension = write_extension(out, words, set(lexicon), config, stats)
    if dev is not None:
        dev_lines = read_lines(dev)
        dev_sentences = [s for s in (tokenize(line, config.lowercase) for line in dev_lines) if s]
        stats["dev"] = {"file": str(dev), **perplexity(out / "lm.bin", dev_sentences, set(lexicon))}
        if config.char:
            char_sentences = [char_sequence(line) for line in dev_lines if line.strip()]
            stats["dev"]["char_perplexity"] = perplexity(out / "char.bin", char_sentences, set())["perplexity"]
        stats["dev"]["surface_oov_rate"] = round(surface_oov_rate(dev_lines, set(words)), 5)
        if extension:
            stats["dev"]["extended_surface_oov_rate"] = round(surface_oov_rate(dev_lines, set(words) | extension), 5)
    atomic_write_text(out / "lm.json", json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    stale = folder_tuned(out)
    if stale is not None:  # an earlier version's htr tune wrote it here; htr lm leaves what it did not write
        print(f"htr lm: {stale} (LM weights tuned before this build) is kept, as htr lm removes only what it "
              "wrote; htr decode reads it when given no --tuned: retune with 'htr tune ... --out FILE'", file=sys.stderr)
    return stats


def write_extension(out: Path, words: Counter, lexicon: set[str], config: LmConfig, stats: dict) -> set[str]:
    """With ``--extra-words``: save the word list and shapes, record their statistics and
    return the surface words they add.  Without it, a stale extension goes."""
    if not config.extra_words:
        for name in (WORDLIST, EXTENSION):
            (out / name).unlink(missing_ok=True)
        return set()
    shapes = learn_shapes(words, config.shape_min_count)
    listed = read_word_list(config.extra_words, config.extra_limit)
    extension = extend_lexicon(words, lexicon, listed, shapes)
    save_extension(out, config.extra_words, listed, shapes)
    stats["extension"] = {"source": config.extra_words, "listed_words": len(listed),
                          "surface_words_added": len(extension.words), "unknown_tokens": len(extension.tokens),
                          "shapes": [f"{s.prefix}*{s.suffix}" for s in shapes]}
    return set(extension.words)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="htr lm",
        description="Build the lexicon and KenLM n-gram language models (word tokens; optionally "
                    "characters) that 'htr decode' uses.  Text files hold one sentence per line; "
                    "a .jsonl line manifest contributes its transcriptions.")
    parser.add_argument("--text", type=Path, nargs="+", required=True, help="training text files or manifests")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--dev", type=Path, help="held-out text/manifest: report perplexity and OOV rate")
    LmConfig.add_arguments(parser)
    args = parser.parse_args(argv)
    config = LmConfig.from_args(args)
    try:
        stats = build(args.text, args.out, config, args.dev)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"htr lm: {error}", file=sys.stderr)
        return 1
    summary = {k: stats[k] for k in ("sentences", "corpus_tokens", "lexicon_size", "surface_words")}
    print(f"{args.out}: {json.dumps(summary)}")
    if "dev" in stats:
        print(f"dev {args.dev}: {json.dumps({k: v for k, v in stats['dev'].items() if k != 'file'})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
