"""Mail bytes to text: in the charset declared (read as the WHATWG Encoding Standard reads its label), else guessed."""

from __future__ import annotations

import codecs
import re
import unicodedata

# Labels read the way the WHATWG Encoding Standard ("Encodings" table) reads
# them: mailers label text with the legacy name and write the superset
# Windows uses (GBK characters under "gb2312", NEC and IBM extensions under
# "shift_jis", cp1252 quotes under "iso-8859-1"). us-ascii stays "ascii": its
# 8-bit bytes carry no charset at all, and _FAMILIES makes cp1252 their first
# guess.
_WHATWG_LABELS = {
    "gb18030": ("chinese", "csgb2312", "csiso58gb231280", "gb2312", "gb_2312", "gb_2312-80", "gbk", "iso-ir-58",
                "x-gbk", "euc-cn", "cp936", "ms936", "windows-936"),
    "cp932": ("csshiftjis", "ms932", "ms_kanji", "shift-jis", "shift_jis", "sjis", "windows-31j", "x-sjis"),
    "euc_jp": ("cseucpkdfmtjapanese", "euc-jp", "x-euc-jp"),
    "cp949": ("cseuckr", "csksc56011987", "euc-kr", "iso-ir-149", "korean", "ks_c_5601-1987", "ks_c_5601-1989",
              "ks_c_5601", "ksc5601", "ksc_5601", "windows-949"),
    "big5hkscs": ("big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5"),
    "cp874": ("dos-874", "iso-8859-11", "iso8859-11", "iso885911", "tis-620", "windows-874"),
    "cp1254": ("csisolatin5", "iso-8859-9", "iso-ir-148", "iso8859-9", "iso88599", "iso_8859-9",
               "iso_8859-9:1989", "l5", "latin5", "x-cp1254"),
    "cp1252": ("cp819", "csisolatin1", "ibm819", "iso-8859-1", "iso-ir-100", "iso8859-1", "iso88591", "iso_8859-1",
               "iso_8859-1:1987", "l1", "latin1", "latin-1", "x-cp1252"),
    "iso8859-8": ("iso-8859-8-i", "csiso88598i", "logical"),
    "ascii": ("us-ascii", "ascii", "ansi_x3.4-1968", "us", "csascii", "iso646-us", "cp367", "ibm367"),
}
_CHARSET_ALIASES: dict[str, str | None] = {
    label: codec for codec, labels in _WHATWG_LABELS.items() for label in labels}
_CHARSET_ALIASES.update({
    "unknown-8bit": None, "x-unknown": None, "unknown": None, "x-user-defined": None, "default": None,
    "utf8": "utf-8", "unicode-1-1-utf-7": "utf-7", "x-mac-roman": "mac-roman",
})
# Python's own names for the legacy charsets, upgraded the same way, so a
# label only Python knows ("euckr", "ks_x-1001") still gets the superset.
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "shift_jis": "cp932", "euc_kr": "cp949", "big5": "big5hkscs",
              "tis-620": "cp874", "iso8859-11": "cp874", "iso8859-1": "cp1252", "iso8859-9": "cp1254"}
# When a charset is named but the bytes do not fit it, its neighbours probably do.
_FAMILIES = {
    "iso2022_jp": ("iso2022_jp_2004", "iso2022_jp_ext", "iso2022_jp_2", "cp932", "euc_jp"), "euc_jp": ("cp932",), "cp932": ("euc_jp",),
    "gb18030": ("big5hkscs",), "big5hkscs": ("gb18030",),
    "koi8-r": ("koi8-u", "cp1251"), "cp1251": ("koi8-r",), "ascii": ("cp1252",),
}
# Multi-byte charsets: bytes that fit one exactly are good evidence for it,
# unlike a single-byte table, where every byte is some character.
_MULTI_BYTE = ("gb18030", "cp932", "euc_jp", "euc_jis_2004", "euc_jisx0213", "shift_jis_2004", "shift_jisx0213",
               "cp949", "johab", "big5hkscs", "cp950")
_DEFAULT_GUESSES = ("cp1252", "koi8-r", "cp1251", "gb18030", "cp932", "big5", "cp949", "cp1250", "iso8859-2", "iso8859-1")
_SINGLE_BYTE = ("cp125", "iso8859", "koi8", "mac-", "cp437", "cp850", "cp874", "ascii")
# Charsets whose bytes are all ASCII, so ASCII bytes still need them (RFC 1468, RFC 2152).
_SEVEN_BIT_STATEFUL = ("iso2022", "utf-7", "hz")
_HIGH_BYTES = bytes(range(0x80, 0x100))
_WORD = re.compile(r"[^\W\d_]+")
_TYPOGRAPHY = set("’‘“”„–—…€£°§«»·•©®™¡¿×")
_SUPERSET_ERRORS = "whatwg-superset"


def _superset_fallback(exc: UnicodeError) -> tuple[str, int]:
    """What the WHATWG decoders read where Python's codecs stop; anything else stays an error.

    The WHATWG gb18030 decoder reads a lone 0x80 as the euro sign (GBK as
    Windows writes it, cp936); its Big5 index holds cp950's pairs, the euro
    sign at 0xA3E1 among them, which big5hkscs lacks.
    """
    if isinstance(exc, UnicodeDecodeError):
        data, start = exc.object, exc.start
        if exc.encoding == "gb18030" and data[start] == 0x80:
            return "\u20ac", start + 1
        if exc.encoding == "big5hkscs":
            try:
                return bytes(data[start:start + 2]).decode("cp950"), start + 2
            except UnicodeDecodeError:
                pass
    raise exc


codecs.register_error(_SUPERSET_ERRORS, _superset_fallback)


def _strict(data: bytes, codec: str) -> str:
    """data in codec, raising UnicodeDecodeError at a byte it has no character for."""
    return data.decode(codec, _SUPERSET_ERRORS)


def lookup_codec(charset: str | None) -> str | None:
    """Python's codec name for a MIME charset label, or None if unknown or meaningless."""
    if not charset:
        return None
    label = charset.strip().strip('"').lower()
    label = _CHARSET_ALIASES.get(label, label)
    if label is None:
        return None
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError):  # unknown, or NUL / 8-bit bytes in the label
        return None
    return _SUPERSETS.get(name, name)


# The HTML spec's "prescan a byte stream to determine its encoding": comments
# and other tags are stepped over whole, so a "<meta" inside them is no meta.
_PRESCAN_BYTES = 1024
_ATTRS = rb"""((?:[^>"']|"[^"]*"|'[^']*')*)>?"""
_PRESCAN_TOKEN = re.compile(
    rb"<!--.*?(?:-->|\Z)"
    rb"|<meta(?=[\s/])" + _ATTRS +
    rb"|</?[a-z][^\s>]*(?:[^>\"']|\"[^\"]*\"|'[^']*')*>?"
    rb"|<[!/?][^>]*>?",
    re.IGNORECASE | re.DOTALL,
)
_PRESCAN_ATTR = re.compile(rb"""([^\s/>][^\s/>=]*)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]*)))?""")
# The WHATWG labels of UTF-16, which a prescan reads as UTF-8.
_UTF16_LABELS = ("csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "unicodefffe", "utf-16",
                 "utf-16be", "utf-16le")
# "Extracting a character encoding from a meta element" (HTML spec), for content="text/html; charset=…".
_CONTENT_CHARSET = re.compile(rb"""charset\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s;"']+))""", re.IGNORECASE)


def html_meta_charset(data: bytes) -> str | None:
    """The codec an HTML document's <meta> declares in its first 1024 bytes, if any."""
    head = data[:_PRESCAN_BYTES]
    if b"<meta" not in head.lower():
        return None
    for token in _PRESCAN_TOKEN.finditer(head):
        if token.group(1) is not None:
            codec = _meta_charset(token.group(1))
            if codec:
                return codec
    return None


def _meta_charset(attrs: bytes) -> str | None:
    """The codec one <meta> element declares, by the prescan's charset and pragma rules."""
    values: dict[bytes, bytes] = {}
    for attr in _PRESCAN_ATTR.finditer(attrs):
        value = next((v for v in attr.group(2, 3, 4) if v is not None), b"")
        values.setdefault(attr.group(1).lower(), value)  # a repeated attribute is ignored
    if b"charset" in values:
        label = values[b"charset"]
    elif values.get(b"http-equiv", b"").strip().lower() == b"content-type" and b"content" in values:
        found = _CONTENT_CHARSET.search(values[b"content"])
        label = next((v for v in found.groups() if v is not None), b"") if found else b""
    else:
        return None
    label = label.decode("latin-1").strip().lower()
    if label in _UTF16_LABELS:
        return "utf-8"  # bytes a prescan can read are not UTF-16, whatever the document says
    return "cp1252" if label == "x-user-defined" else lookup_codec(label)


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


def _declared_fit(data: bytes, hints: tuple[str, ...]) -> tuple[str, str] | None:
    """(codec, text) in the first hinted charset the bytes fit, when that is a multi-byte one.

    The hints are the charsets the mail declares (then what its raw headers
    showed), tried before any guess: short raw 8-bit headers give a guess
    too little to go on, and GB2312 or Shift_JIS bytes also read as a few
    plausible cp1252 or cp1251 letters ("ÎÊÌâ" for 问题). A single-byte
    charset ends the search, since any bytes fit one: plausibility decides.
    """
    for hint in hints:
        codec = lookup_codec(hint)
        if codec is None:
            continue
        try:
            text = _strict(data, codec)
        except (UnicodeDecodeError, LookupError):
            continue
        if codec not in _MULTI_BYTE:
            return None
        # Private-use or unassigned characters mean the bytes are not text in it.
        if not any(unicodedata.category(ch) in ("Co", "Cn") for ch in text if ch >= "\x80"):
            return codec, text
    return None


def guess_charset(data: bytes, hints: tuple[str, ...] = ()) -> tuple[str, str]:
    """(codec, text) for bytes that name no charset that fits them: a declared one that fits, else a guess."""
    return _declared_fit(data, hints) or _likeliest(data, hints)


def _likeliest(data: bytes, hints: tuple[str, ...]) -> tuple[str, str]:
    """(codec, text) of the most plausible reading, the hinted charsets first."""
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
            text = _strict(data, name)
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


def ascii_reads_as_itself(charset: str | None) -> bool:
    """Whether decode_bytes reads ASCII bytes labelled `charset` as the same characters: for all but the 7-bit
    stateful charsets (ISO-2022, UTF-7, HZ), whose escapes are ASCII. (UTF-16, UTF-32 or EBCDIC would read
    them otherwise, but a body of ASCII bytes labelled so is mislabelled, and decode_bytes reads it as ASCII.)"""
    return not (lookup_codec(charset) or "").startswith(_SEVEN_BIT_STATEFUL)


def decode_bytes(data: bytes, charset: str | None = None, hints: tuple[str, ...] = (), html: bool = False) -> str:
    """Text from bytes: the named charset if it fits, else UTF-8, else (HTML) its <meta> charset, else a guess.

    A leading byte order mark is dropped: Windows editors and some webmail
    start UTF-8 text with one, and "\\ufeffType: bug" hides the first line from
    everything that reads it (key facts, accept words, quoted-reply markers).
    """
    return _decode(data, charset, hints, html).lstrip("\ufeff")


def _decode(data: bytes, charset: str | None, hints: tuple[str, ...], html: bool) -> str:
    declared = lookup_codec(charset)
    if data.isascii() and not (declared or "").startswith(_SEVEN_BIT_STATEFUL):
        return data.decode("ascii")
    if declared and declared != "ascii":
        text = _as_declared(data, declared)
        if text is not None:
            return text
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if html:
        # An HTML part whose MIME charset is missing, us-ascii or wrong: its
        # own declaration comes before any guess, as browsers read it (HTML
        # spec, "determining the character encoding").
        meta = html_meta_charset(data)
        if meta is not None:
            text = _as_declared(data, meta)
            if text is not None:
                return text
            hints = (meta, *hints)
    hints = ((charset,) if charset else ()) + tuple(hints)
    if declared == "utf-8":
        return _mostly_utf8(data) or guess_charset(data, hints)[1]
    # The charsets the mail declares come before repairing UTF-8: a short
    # Shift_JIS header ("返品") also reads as one UTF-8 character and a stray byte.
    fit = _declared_fit(data, hints)
    if fit is not None:
        return fit[1]
    mostly = _mostly_utf8(data) if declared is None else None
    return mostly or _likeliest(data, hints)[1]


def _as_declared(data: bytes, declared: str) -> str | None:
    """data read in the charset it declares, or None when the bytes do not fit it."""
    try:
        text = _strict(data, declared)
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
    return None


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
