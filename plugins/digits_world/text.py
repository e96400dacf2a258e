"""Text: phrases naming a digit, in several languages, some naming a stroke colour too.

Phrases are real language written here (not sampled from a corpus). Templates, not phrases, are
split between train and test, so test phrasings are partly unseen in training while every digit
word (in every language) appears in both splits through the other templates.
"""
from __future__ import annotations

from mmbind_plugins.digits_world.images import COLOURS

WORDS: dict[str, list[str]] = {
    "en": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "es": ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"],
    "fr": ["zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"],
    "it": ["zero", "uno", "due", "tre", "quattro", "cinque", "sei", "sette", "otto", "nove"],
    "de": ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"],
    "ru": ["ноль", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять"],
    "pt": ["zero", "um", "dois", "três", "quatro", "cinco", "seis", "sete", "oito", "nove"],
    "nl": ["nul", "een", "twee", "drie", "vier", "vijf", "zes", "zeven", "acht", "negen"],
}

# {w}: the digit word in the template's language, {n}: the numeral. (language, template, split)
TEMPLATES: list[tuple[str, str, str]] = [
    ("en", "{w}", "train"), ("en", "{n}", "train"), ("en", "the number {w}", "train"),
    ("en", "the digit {w}", "train"), ("en", "a handwritten {n}", "train"),
    ("en", "a handwritten {w}", "train"), ("en", "the number {n}", "train"),
    ("en", "digit {n}", "train"), ("en", "a {w}", "train"), ("en", "{w} ({n})", "train"),
    ("en", "a drawing of the digit {w}", "train"), ("en", "number {w}", "train"),
    ("en", "the numeral {n}", "train"), ("en", "a photo of the number {w}", "train"),
    ("en", "someone wrote a {n}", "train"),
    ("en", "the digit {n}", "test"), ("en", "a picture of a {w}", "test"),
    ("en", "an image of the number {n}", "test"), ("en", "it is a {w}", "test"),
    ("en", "a scribbled {w}", "test"), ("en", "{n} ({w})", "test"),
    ("es", "{w}", "train"), ("es", "el número {w}", "train"), ("es", "el dígito {n}", "train"),
    ("es", "un {n} escrito a mano", "train"), ("es", "el número {n}", "test"),
    ("es", "es un {w}", "test"),
    ("fr", "{w}", "train"), ("fr", "le chiffre {w}", "train"), ("fr", "le nombre {n}", "train"),
    ("fr", "un {n} écrit à la main", "train"), ("fr", "le chiffre {n}", "test"),
    ("fr", "c'est un {w}", "test"),
    ("it", "{w}", "train"), ("it", "il numero {w}", "train"), ("it", "la cifra {n}", "train"),
    ("it", "un {n} scritto a mano", "train"), ("it", "il numero {n}", "test"),
    ("it", "è un {w}", "test"),
    ("de", "{w}", "train"), ("de", "die Zahl {w}", "train"), ("de", "die Ziffer {n}", "train"),
    ("de", "eine handgeschriebene {n}", "train"), ("de", "die Ziffer {w}", "test"),
    ("de", "das ist eine {w}", "test"),
    ("ru", "{w}", "train"), ("ru", "число {w}", "train"), ("ru", "цифра {n}", "train"),
    ("ru", "рукописная цифра {n}", "train"), ("ru", "цифра {w}", "test"),
    ("ru", "это {w}", "test"),
    ("pt", "{w}", "train"), ("pt", "o número {w}", "train"), ("pt", "o dígito {n}", "test"),
    ("nl", "{w}", "train"), ("nl", "het cijfer {w}", "train"), ("nl", "het getal {n}", "test"),
]

# English phrases naming a colour: {c} colour, {w} word, {n} numeral. Paired only with images
# of that colour (key "<digit>/<colour>").
COLOUR_TEMPLATES: list[tuple[str, str]] = [
    ("a {c} {w}", "train"), ("a {c} {n}", "train"), ("the number {w} in {c}", "train"),
    ("a {c} handwritten {n}", "train"), ("the digit {w} written in {c}", "train"),
    ("{c} {n}", "train"),
    ("a {w} drawn in {c}", "test"), ("the {c} digit {n}", "test"),
    ("a {c} number {w}", "test"),
]


# Phrases naming only a colour, training split only, key "*/<colour>": paired with images of
# that colour whatever the digit, so "text:red" has a meaning for embedding arithmetic.
# They name no digit: label -1.
COLOUR_ONLY_TEMPLATES: list[str] = ["{c}", "the colour {c}", "something {c}", "written in {c}",
                                    "a {c} digit", "{c} strokes"]


def phrases(split: str) -> list[tuple[str, int, str, dict]]:
    """Every phrase of a split as (text, digit, key, meta), in a fixed order."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    out: list[tuple[str, int, str, dict]] = []
    seen: set[tuple[str, int]] = set()
    for lang, template, where in TEMPLATES:
        if where != split:
            continue
        for d in range(10):
            text = template.format(w=WORDS[lang][d], n=d)
            if (text, d) in seen:  # e.g. "{n}" in two languages
                continue
            seen.add((text, d))
            out.append((text, d, str(d), {"language": lang, "template": template}))
    for template, where in COLOUR_TEMPLATES:
        if where != split:
            continue
        for colour in COLOURS:
            for d in range(10):
                text = template.format(c=colour, w=WORDS["en"][d], n=d)
                out.append((text, d, f"{d}/{colour}",
                            {"language": "en", "template": template, "colour": colour}))
    if split == "train":
        for template in COLOUR_ONLY_TEMPLATES:
            for colour in COLOURS:
                out.append((template.format(c=colour), -1, f"*/{colour}",
                            {"language": "en", "template": template, "colour": colour}))
    return out
