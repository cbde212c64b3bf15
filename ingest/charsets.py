"""Charsets of mail bytes that name none, or the wrong one: guessed by plausibility, then decoded."""

from __future__ import annotations

import codecs
import re
import unicodedata

_CHARSET_ALIASES = {
    "unknown-8bit": None, "x-unknown": None, "unknown": None, "x-user-defined": None, "default": None,
    "ks_c_5601-1987": "cp949", "ks_c_5601": "cp949", "gb2312": "gb18030", "gbk": "gb18030",
    "x-gbk": "gb18030", "iso-8859-8-i": "iso-8859-8", "windows-874": "cp874", "x-sjis": "cp932",
    "shift-jis": "cp932", "sjis": "cp932", "shift_jis": "cp932", "utf8": "utf-8", "unicode-1-1-utf-7": "utf-7",
    "x-mac-roman": "mac-roman", "ansi_x3.4-1968": "ascii", "us-ascii": "ascii", "ascii": "ascii",
    "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",  # WHATWG: browsers read latin-1 as cp1252
}
# When a charset is named but the bytes do not fit it, its neighbours probably do.
_FAMILIES = {
    "iso2022_jp": ("iso2022_jp_2004", "iso2022_jp_ext", "iso2022_jp_2", "cp932", "euc_jp"), "euc_jp": ("cp932",), "cp932": ("euc_jp",),
    "gb18030": ("big5",), "big5": ("big5hkscs", "gb18030"), "cp949": ("euc_kr",), "euc_kr": ("cp949",),
    "koi8-r": ("koi8-u", "cp1251"), "cp1251": ("koi8-r",), "ascii": ("cp1252",),
}
_DEFAULT_GUESSES = ("cp1252", "koi8-r", "cp1251", "gb18030", "cp932", "big5", "cp949", "cp1250", "iso8859-2", "iso8859-1")
_SINGLE_BYTE = ("cp125", "iso8859", "koi8", "mac-", "cp437", "cp850", "cp874", "ascii")
# Charsets whose bytes are all ASCII, so ASCII bytes still need them (RFC 1468, RFC 2152).
_SEVEN_BIT_STATEFUL = ("iso2022", "utf-7", "hz")
_HIGH_BYTES = bytes(range(0x80, 0x100))
_WORD = re.compile(r"[^\W\d_]+")
_TYPOGRAPHY = set("’‘“”„–—…€£°§«»·•©®™¡¿×")


def lookup_codec(charset: str | None) -> str | None:
    """Python's codec name for a MIME charset label, or None if unknown or meaningless."""
    if not charset:
        return None
    label = charset.strip().strip('"').lower()
    label = _CHARSET_ALIASES.get(label, label)
    if label is None:
        return None
    try:
        return codecs.lookup(label).name
    except (LookupError, ValueError):  # unknown, or NUL / 8-bit bytes in the label
        return None


def _plausibility(text: str) -> float:
    """How much a decoding looks like human writing: letters in one script, sane case.

    Decisive for short raw 8-bit headers, where statistical detectors guess
    wildly: KOI8-R "тест" read as cp1252 is "ÔÅÓÔ" (capitals run together),
    GB2312 read as latin-1 is symbols, Latin read as KOI8-R puts Cyrillic
    inside Latin words.
    """
    score = 0.0
    for i, ch in enumerate(text[:4000]):
        if ch < "\x80":
            continue
        category = unicodedata.category(ch)
        before = text[i - 1] if i else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        if category in ("Ll", "Lo", "Lm"):
            score += 0 if "\uff61" <= ch <= "\uff9f" else 1  # half-width katakana: a classic misdecoding
        elif category == "Lu":
            # Capitals open words or run together (ÄÖÜ); one after a small
            # letter is what a wrong Cyrillic table looks like (ЧЄ·ўЈєХы).
            score += -1 if before.islower() else 0.9 if before.isalpha() else 0.5
        elif ch in _TYPOGRAPHY or "\u3000" <= ch <= "\u303f" or "\uff01" <= ch <= "\uff60":
            score += 0.5
        elif category.startswith("M"):
            continue
        else:
            score -= 2
        if category.startswith("L") and (before.isascii() and before.isalpha() or after.isascii() and after.isalpha()):
            if not unicodedata.name(ch, "").startswith("LATIN"):
                score -= 1  # a Cyrillic or CJK letter glued to ASCII letters
    for word in _WORD.findall(text[:4000]):
        # Latin words nearly always hold a plain a-z letter: "ÔÅÓÔ" (KOI8-R)
        # and "ïðèâåò" (cp1251) are Cyrillic read through a Latin table.
        if len(word) >= 3 and not any(ch.isascii() for ch in word) and all(
                unicodedata.name(ch, "").startswith("LATIN") for ch in word):
            if len(word) >= 5 or word.isupper():
                score -= len(word)
    return score


def _guess(data: bytes, hints: tuple[str, ...]) -> str:
    return guess_charset(data, hints)[1]


def guess_charset(data: bytes, hints: tuple[str, ...] = ()) -> tuple[str, str]:
    """(codec, text) for bytes that name no charset that fits them."""
    candidates: list[str] = []
    for hint in hints:
        codec = lookup_codec(hint)
        for name in (codec, *_FAMILIES.get(codec or "", ())):
            if name and name not in candidates:
                candidates.append(name)
    if len(data) - len(data.translate(None, _HIGH_BYTES)) >= 40:
        # Enough text for a statistical detector to be worth asking.
        from charset_normalizer import from_bytes

        best = from_bytes(data[:20000]).best()
        if best is not None and lookup_codec(best.encoding) not in candidates:
            candidates.append(lookup_codec(best.encoding) or "iso8859-1")
    candidates += [c for c in _DEFAULT_GUESSES if c not in candidates]
    best_text, best_name, best_score = None, "utf-8", float("-inf")
    for name in candidates:
        try:
            text = data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
        score = _plausibility(text)
        # Earlier candidates (the mail's own charsets) win unless clearly beaten:
        # GB2312 bytes also decode as Big5 into as many CJK characters.
        if best_text is None or score > best_score + max(1.0, abs(best_score) / 10):
            best_text, best_name, best_score = text, name, score
    if best_text is None:
        return "utf-8", data.decode("utf-8", errors="replace")
    return best_name, best_text


def decode_bytes(data: bytes, charset: str | None = None, hints: tuple[str, ...] = ()) -> str:
    """Text from bytes: the named charset if it fits, else UTF-8, else the likeliest guess.

    A leading byte order mark is dropped: Windows editors and some webmail
    start UTF-8 text with one, and "\\ufeffType: bug" hides the first line from
    everything that reads it (key facts, accept words, quoted-reply markers).
    """
    return _decode(data, charset, hints).lstrip("\ufeff")


def _decode(data: bytes, charset: str | None, hints: tuple[str, ...]) -> str:
    declared = lookup_codec(charset)
    if data.isascii() and not (declared or "").startswith(_SEVEN_BIT_STATEFUL):
        return data.decode("ascii")
    if declared and declared != "ascii":
        try:
            text = data.decode(declared)
        except (UnicodeDecodeError, LookupError):
            text = None
        if text is not None:
            if declared.startswith(_SINGLE_BYTE):
                # Mislabelled UTF-8 is common and unmistakable: latin text almost
                # never forms valid multi-byte UTF-8 sequences by accident.
                try:
                    return data.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return text
        if data.isascii():
            # A 7-bit charset that does not fit: try its extensions (ISO-2022-JP
            # mail often carries NEC or JIS X 0213 characters such as ①).
            for name in (n for n in _FAMILIES.get(declared, ()) if n.startswith(_SEVEN_BIT_STATEFUL)):
                try:
                    return data.decode(name)
                except UnicodeDecodeError:
                    continue
            if declared.startswith("iso2022_jp"):
                # NEC row 13 (①, ㈱) is not JIS X 0208, but JIS X 0213 plane 1
                # holds it at the same codes: read the JIS X 0208 runs as that.
                try:
                    return data.replace(b"\x1b$B", b"\x1b$(Q").replace(b"\x1b$@", b"\x1b$(Q").decode("iso2022_jp_2004")
                except UnicodeDecodeError:
                    pass
            return data.decode(declared, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if declared in (None, "utf-8"):
        mostly = _mostly_utf8(data)
        if mostly is not None:
            return mostly
    return _guess(data, ((charset,) if charset else ()) + tuple(hints))


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _mostly_utf8(data: bytes, max_bad: int = 200) -> str | None:
    """UTF-8 text with a few stray bytes (a pasted ligature, a cut character).

    The stray bytes are read as cp1252, as mail clients do; None when the
    bad bytes are not clearly outnumbered by good multi-byte characters.
    """
    out: list[str] = []
    pos = bad = 0
    while True:
        try:
            out.append(data[pos:].decode("utf-8"))
            break
        except UnicodeDecodeError as exc:
            out.append(data[pos:pos + exc.start].decode("utf-8"))
            stray = data[pos + exc.start:pos + exc.end]
            out.append(stray.decode("cp1252", errors="replace"))
            bad += len(stray)
            pos += exc.end
            if bad > max_bad:
                return None
    text = "".join(out)
    good = len(text) - len(text.encode("ascii", "ignore")) - bad
    return text if good >= bad else None
