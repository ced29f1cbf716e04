"""RTVC's text front end: the 66-symbol character set and English cleaning."""

from __future__ import annotations

import re
import unicodedata

PAD = "_"
EOS = "~"
CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!'\"(),-.:;? "
#: Index 0 is padding (masked in attention), index 1 ends every sequence.
SYMBOLS: tuple[str, ...] = (PAD, EOS, *CHARACTERS)
_SYMBOL_ID = {symbol: index for index, symbol in enumerate(SYMBOLS)}

_ABBREVIATIONS = {
    "mrs": "misess", "mr": "mister", "dr": "doctor", "st": "saint", "co": "company", "jr": "junior",
    "maj": "major", "gen": "general", "drs": "doctors", "rev": "reverend", "lt": "lieutenant",
    "hon": "honorable", "sgt": "sergeant", "capt": "captain", "esq": "esquire", "ltd": "limited",
    "col": "colonel", "ft": "fort",
}  # fmt: skip
_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_to_words(number: int) -> str:
    """English words for 0 ≤ number < 10^12."""
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for scale, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if number >= scale:
            high, rest = divmod(number, scale)
            return number_to_words(high) + " " + name + ("" if rest == 0 else " " + number_to_words(rest))
    raise ValueError(number)


def _expand_number(match: re.Match[str]) -> str:
    text = match.group(0).replace(",", "")
    if "." in text:
        whole, fraction = text.split(".", 1)
        return number_to_words(int(whole or 0)) + " point " + " ".join(_ONES[int(d)] for d in fraction)
    value = int(text)
    if 1100 < value < 2100 and value % 100 != 0 and len(text) == 4:  # years: "nineteen eighty four"
        return number_to_words(value // 100) + " " + number_to_words(value % 100)
    return number_to_words(value) if value < 10**12 else " ".join(_ONES[int(d)] for d in text)


def english_cleaners(text: str) -> str:
    """ASCII, lower case, numbers and abbreviations spelt out, whitespace collapsed."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = text.lower()
    text = re.sub(r"\$(\d+)", r"\1 dollars", text)
    text = re.sub(r"(\d+)%", r"\1 percent", text)
    text = re.sub(r"\d[\d,]*(\.\d+)?", _expand_number, text)
    text = re.sub(r"\b(" + "|".join(_ABBREVIATIONS) + r")\.", lambda m: _ABBREVIATIONS[m.group(1)], text)
    return re.sub(r"\s+", " ", text).strip()


def text_to_sequence(text: str) -> list[int]:
    """Symbol ids of the cleaned text, ending with the EOS id (unknown characters dropped)."""
    return [_SYMBOL_ID[ch] for ch in english_cleaners(text) if ch in _SYMBOL_ID and ch not in (PAD, EOS)] + [
        _SYMBOL_ID[EOS]
    ]
