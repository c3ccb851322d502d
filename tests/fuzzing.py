"""Seeded mutation of real-shaped ALTO and PAGE files, for the reader fuzz tests.

The seeds have the shape of eScriptorium/Transkribus exports (traced line polygons of
a few dozen points, baselines, ``eSc_line_*`` ids, accented text, reading order); each
mutant applies one to three of: byte flips, truncation, deleted elements, random
attribute values, hostile numbers (NaN, inf, huge, negative, overflowing) in
coordinates, long and odd ids, duplicated lines.  Everything derives from one
``random.Random(seed)``, so a failing input is rebuilt from its seed alone.
"""
from __future__ import annotations

import random
import re
from typing import Callable

from lxml import etree

ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
PAGE_NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
WIDTH, HEIGHT = 400, 240
LINE_BOXES = [(20, 20 + 36 * n, 360 - 25 * (n % 3), 48 + 36 * n) for n in range(6)]  # left, top, right, bottom
TEXTS = ["Première ligne, d'une main", "sœur « Anne » — 1789", "l'homme; qu'il", "Ça va? Oui!",
         "à la fin du jour", "x"]

HOSTILE_NUMBERS = ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e12", "-1e12", "1e999", "-5", "-0",
                   "0", "", " ", "1e-300", "99999999999999999999", "3.", ".5", "0x1F", "1_000", "½", "٣"]
ODD_IDS = ["x" * 5000, "../../etc/passwd", "CON", "nul", ".", "..", "/", "a b\tc", "a&#10;b", "é" * 300,
           "line/with/slashes", "-rf", "*?<>|:\"", "", "eSc_line_dup", "\u202eevil", "\U0001F600"]
RANDOM_VALUES = HOSTILE_NUMBERS + ODD_IDS[:8] + ["pixel", "mm10", "page.png", "", "true", "-1"]


def _polygon(box: tuple[int, int, int, int], rng: random.Random, separator: str) -> str:
    """A traced outline: upper edge left to right, lower edge back, with ink wobble."""
    left, top, right, bottom = box
    xs = list(range(left, right + 1, max(1, (right - left) // 12)))
    upper = [(x, top + rng.randint(-2, 2)) for x in xs]
    lower = [(x, bottom + rng.randint(-2, 2)) for x in reversed(xs)]
    return " ".join(f"{x}{separator}{y}" for x, y in upper + lower)


def alto_seed(rng: random.Random, image: str = "page.png") -> bytes:
    lines = []
    for n, (box, text) in enumerate(zip(LINE_BOXES, TEXTS)):
        left, top, right, bottom = box
        words = "".join(f'<String CONTENT="{word}"/><SP/>' for word in text.split())
        lines.append(
            f'<TextLine ID="eSc_line_{rng.getrandbits(32):08x}" TAGREFS="LT1" BASELINE="{left} {bottom - 6} {right} {bottom - 5}" '
            f'HPOS="{left}" VPOS="{top}" WIDTH="{right - left}" HEIGHT="{bottom - top}">'
            f'<Shape><Polygon POINTS="{_polygon(box, rng, " ")}"/></Shape>{words}</TextLine>')
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="{ALTO_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <Description><MeasurementUnit>pixel</MeasurementUnit>
    <sourceImageInformation><fileName>{image}</fileName></sourceImageInformation></Description>
  <Tags><OtherTag ID="LT1" LABEL="default" DESCRIPTION="line type default"/></Tags>
  <Layout><Page WIDTH="{WIDTH}" HEIGHT="{HEIGHT}" PHYSICAL_IMG_NR="0" ID="eSc_dummypage_">
    <PrintSpace HPOS="0" VPOS="0" WIDTH="{WIDTH}" HEIGHT="{HEIGHT}">
      <TextBlock ID="eSc_textblock_1" HPOS="10" VPOS="10" WIDTH="380" HEIGHT="230">
        <Shape><Polygon POINTS="10 10 390 10 390 239 10 239"/></Shape>
        {"".join(lines)}
      </TextBlock></PrintSpace></Page></Layout>
</alto>
""".encode("utf-8")


def page_seed(rng: random.Random, image: str = "page.png") -> bytes:
    regions = []
    for n, (box, text) in enumerate(zip(LINE_BOXES, TEXTS)):
        left, top, right, bottom = box
        words = "".join(f'<Word id="w{n}_{k}"><Coords points="{left},{top} {left + 9},{top} {left + 9},{bottom} {left},{bottom}"/>'
                        f'<TextEquiv><Unicode>{word}</Unicode></TextEquiv></Word>' for k, word in enumerate(text.split()))
        own = f'<TextEquiv index="1" conf="0.9"><Unicode>{text}</Unicode></TextEquiv>' if n % 2 else ""
        regions.append(
            f'<TextRegion id="r{n}" type="paragraph"><Coords points="{left},{top} {right},{top} {right},{bottom} {left},{bottom}"/>'
            f'<TextLine id="tr_line_{rng.getrandbits(32):08x}" custom="readingOrder {{index:0;}}">'
            f'<Coords points="{_polygon(box, rng, ",")}"/><Baseline points="{left},{bottom - 6} {right},{bottom - 5}"/>'
            f'{words}{own}</TextLine></TextRegion>')
    order = "".join(f'<RegionRefIndexed index="{5 - n}" regionRef="r{n}"/>' for n in range(len(regions)))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="{PAGE_NS}">
  <Metadata><Creator>Transkribus</Creator><Created>2024-01-01T00:00:00</Created><LastChange>2024-01-01T00:00:00</LastChange></Metadata>
  <Page imageFilename="{image}" imageWidth="{WIDTH}" imageHeight="{HEIGHT}">
    <ReadingOrder><OrderedGroup id="ro1">{order}</OrderedGroup></ReadingOrder>
    {"".join(regions)}
  </Page>
</PcGts>
""".encode("utf-8")


# ---------------------------------------------------------------- mutations of the tree

def _elements(root: etree._Element) -> list[etree._Element]:
    return [e for e in root.iter() if isinstance(e.tag, str)]


def delete_element(root: etree._Element, rng: random.Random) -> str:
    victims = [e for e in _elements(root) if e.getparent() is not None]
    if not victims:
        return "nothing left to delete"
    victim = rng.choice(victims)
    victim.getparent().remove(victim)
    return f"deleted <{etree.QName(victim).localname}>"


def random_attribute(root: etree._Element, rng: random.Random) -> str:
    element = rng.choice(_elements(root))
    names = list(element.attrib) or ["ID"]
    name = rng.choice(names + ["HPOS", "points", "index", "imageFilename"])
    value = rng.choice(RANDOM_VALUES)
    element.set(name, value.replace("&#10;", "\n"))
    return f"{etree.QName(element).localname}@{name}={value[:20]!r}"


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def hostile_number(root: etree._Element, rng: random.Random) -> str:
    holders = [(e, k) for e in _elements(root) for k, v in e.attrib.items() if _NUMBER.search(v)]
    if not holders:
        return "no number left"
    element, name = rng.choice(holders)
    numbers = list(_NUMBER.finditer(element.get(name)))
    target, value = rng.choice(numbers), rng.choice(HOSTILE_NUMBERS)
    text = element.get(name)
    element.set(name, text[:target.start()] + value + text[target.end():])
    return f"{etree.QName(element).localname}@{name}: {target.group()} -> {value!r}"


def odd_id(root: etree._Element, rng: random.Random) -> str:
    lines = [e for e in _elements(root) if etree.QName(e).localname == "TextLine"]
    if not lines:
        return "no line to rename"
    line, value = rng.choice(lines), rng.choice(ODD_IDS).replace("&#10;", "\n")
    line.set("ID" if "ID" in line.attrib else "id", value)
    return f"id -> {value[:20]!r} ({len(value)} chars)"


def duplicate_line(root: etree._Element, rng: random.Random) -> str:
    lines = [e for e in _elements(root) if etree.QName(e).localname == "TextLine"]
    if not lines:
        return "no line to copy"
    line = rng.choice(lines)
    for _ in range(rng.randint(1, 4)):
        line.addnext(etree.fromstring(etree.tostring(line)))
    return "duplicated a line"


TREE_MUTATIONS: list[Callable[[etree._Element, random.Random], str]] = [
    delete_element, random_attribute, hostile_number, hostile_number, odd_id, duplicate_line]


# ---------------------------------------------------------------- mutations of the bytes

def flip_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    mutable = bytearray(data)
    count = rng.randint(1, 8)
    for _ in range(count):
        mutable[rng.randrange(len(mutable))] ^= 1 << rng.randrange(8)
    return bytes(mutable), f"flipped {count} bits"


def truncate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    cut = rng.randrange(len(data))
    return data[:cut], f"truncated at {cut}"


def mutate(seed_document: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    """One to three mutations of a seed document; returns the bytes and what was done."""
    root = etree.fromstring(seed_document)
    done = [rng.choice(TREE_MUTATIONS)(root, rng) for _ in range(rng.randint(1, 3))]
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    draw = rng.random()
    if draw < 0.15:
        data, what = flip_bytes(data, rng)
        done.append(what)
    elif draw < 0.22:
        data, what = truncate(data, rng)
        done.append(what)
    return data, done
