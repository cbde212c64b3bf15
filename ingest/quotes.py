"""The new text of a reply: quoted history and signature stripped.

mail-parser-reply finds the reply headers it knows ("On … wrote:", Outlook
blocks) in many languages. Around it, our own pass cuts at what it misses
in real mail (measured in bench/quotes.py): header blocks and "wrote:"
lines broken over several lines, separator lines (-----, _____),
forwarded-message banners, "-- " signatures and "Sent from my iPhone"
lines, and trailing ">" quotes.
"""

from __future__ import annotations

import re

from mailparser_reply.parser import EmailMessage

_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "pt", "ru", "sv", "cn"]
_LIBRARY = None

# A line made only of separator characters (Outlook's ____, ----, ===, and
# the U+1427 "ᐧ" Gmail leaves after its tracking pixel).
_DELIMITER = re.compile(r"^\s*[-_=*~#+ᐧ]{2,}\s*$|^\s*ᐧ\s*$")
# "-----Original Message-----", "---------- Forwarded message ---------",
# "*-------- Original Message --------*", "Begin forwarded message:".
_BANNER = re.compile(
    r"^\s*[*>]*\s*(-{2,}|_{2,}|={2,})\s*[\w .'-]{3,40}\s*(-{2,}|_{2,}|={2,})\s*[*]*\s*$"
    r"|^\s*(begin forwarded message|anfang der weitergeleiteten nachricht|début du message réexpédié)\s*:?\s*$",
    re.IGNORECASE,
)
_HEADER_KEY = (
    r"from|von|de|da|van|od|från|fra|от|від|kimden|发件人|寄件人|"
    r"to|an|à|a|aan|do|till|til|кому|komu|"
    r"cc|kopie|copie|"
    r"subject|betreff|objet|oggetto|asunto|onderwerp|temat|assunto|ämne|emne|тема|主题|主旨|"
    r"sent|gesendet|envoyé|enviado|inviato|verzonden|wysłano|skickat|sendt|отправлено|发送时间|"
    r"date|datum|fecha|data|дата|日期|reply-to|risposta|antwort an|répondre à"
)
_HEADER_LINE = re.compile(r"^\s*[*>]*\s*(%s)\s*[*]*\s*[:：]\s*\S" % _HEADER_KEY, re.IGNORECASE)
_FROM_LINE = re.compile(
    r"^\s*[*>]*\s*(from|von|de|da|van|od|från|fra|от|від|kimden|发件人|寄件人)\s*[*]*\s*[:：]\s*\S", re.IGNORECASE)
# The verb of an attribution: "… wrote:", "… schrieb am …:", "… a écrit :", …
_VERB = re.compile(
    r"\b(wrote|writes|schrieb|a écrit|escribió|ha scritto|schreef|geschreven|napisał\(a\)|napisał|escreveu|"
    r"skrev|написал\(а\)|написала|написал|написав|пише|kirjoitti|yazdı)\b|写道|寫道",
    re.IGNORECASE,
)
# How attributions end: a colon, or "wrote ----" in some webmailers.
_ATTRIBUTION_END = re.compile(r"([:：]|\b(wrote|schrieb)\s*-*)\s*$", re.IGNORECASE)
# How they start: "On Tue, …", "Am 21.04.2016 …", "Le 4 janv. …", a date.
_OPENER_WORD = re.compile(r"^\s*(on|am|le|el|il|op|em|den|w dniu)\s", re.IGNORECASE)
_OPENER = re.compile(r"^\s*(-+\s*)?(on|am|le|el|il|op|em|den|dne|w dniu|в|у)\s.*\d|^\s*\d", re.IGNORECASE)
# An attribution that starts with a date: "2013/7/20 sam via Meta <info@…>",
# "2016-03-03 17:21 GMT+01:00 Some One".
_DATE_ATTRIBUTION = re.compile(r"^\s*\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b.*\S")
_MOBILE_SIGNATURE = re.compile(
    r"^\s*(sent (from|via|with) |envoyé (depuis|de mon)|von meinem |gesendet von meinem|enviado (desde|de mi|do meu)|"
    r"inviato da |verzonden (met|vanaf) |wysłane z |skickat från |sendt fra |отправлено с |"
    r"get outlook for |diese nachricht wurde von meinem|from my (iphone|ipad|android)|<<sent by )",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"^--\s*$")


class _Library:
    """mail-parser-reply's reply headers for our languages, compiled once, matched only where they can start.

    Every header pattern of the library begins at a line start (``^``) or a
    newline, so the ``(?=^|\\n)`` guard changes no match; it spares Python's
    ``re`` trying all alternatives at every character, which made the
    library about ten times slower than the rest of the stripping on long
    replies (bench/README.md). Only the reply's extent is used, so the
    signature and disclaimer patterns are given ones that fail at once.
    """

    def __init__(self) -> None:
        languages = self._languages()
        header = EmailMessage(text="", languages=list(languages)).HEADER_REGEX
        self.languages = languages
        self.header = re.compile(r"(?=^|\n)(?:%s)" % header.pattern, header.flags)
        self.nothing = re.compile(r"\A(?!)")

    @staticmethod
    def _languages() -> list[str]:
        try:
            EmailMessage(text="", languages=list(_LANGUAGES)).HEADER_REGEX
            return list(_LANGUAGES)
        except Exception:  # a language the installed version lacks
            return ["en", "de"]

    def reply(self, text: str) -> str:
        """The library's latest reply (its first fragment) of `text`."""
        message = EmailMessage(text=text, languages=list(self.languages), _header_regex=self.header,
                               _disclaimers_regex=self.nothing, _signature_regex=self.nothing)
        return message.read().latest_reply or ""


def _library() -> _Library:
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = _Library()
    return _LIBRARY


def strip_reply(text: str) -> str:
    """The visible reply; the whole text when stripping would leave nothing."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        return ""
    reply = _cut(text)
    if reply.strip():
        reply = _cut(_library_cut(reply))
    if not reply.strip():
        reply = _reply_below_quote(text)
    return reply.strip("\n").rstrip() or text.strip()


def _library_cut(text: str) -> str:
    """Our text up to where mail-parser-reply ends the reply.

    The library also rewrites what it keeps (indentation goes), so only its
    cut point is used: the lines it returned are matched against ours.
    """
    try:
        kept = _library().reply(text)
    except Exception:  # the library on input it does not expect: keep ours
        return text
    wanted = [_squash(line) for line in kept.split("\n") if line.strip()]
    if not wanted:
        return text
    lines = text.split("\n")
    matched = 0
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        if matched < len(wanted) and _squash(line) == wanted[matched]:
            matched += 1
            if matched == len(wanted):
                return "\n".join(lines[:index + 1])
        else:
            break
    return text


def _squash(line: str) -> str:
    return " ".join(line.split())  # str.split and re's \s agree on what whitespace is


def _is_header_block(lines: list[str], i: int) -> bool:
    """Header lines close together, one of them From:/Von:/De:, the first on line i: an embedded mail."""
    if not _HEADER_LINE.match(lines[i]):
        return False
    block = [line for line in lines[i:i + 8] if line.strip()][:4]
    headers = [line for line in block if _HEADER_LINE.match(line)]
    return len(headers) >= 2 and any(_FROM_LINE.match(line) for line in headers[:3])


def _attribution_start(lines: list[str], i: int) -> int | None:
    """Where an attribution ending on line i starts; it may wrap over up to four lines."""
    if not _may_end_attribution(lines[i]) or not _ATTRIBUTION_END.search(lines[i]):
        return None
    block = [i]
    while len(block) < 4 and block[-1] > 0 and lines[block[-1] - 1].strip() \
            and not lines[block[-1] - 1].lstrip().startswith(">"):
        block.append(block[-1] - 1)
    verb = next((j for j in block if _VERB.search(lines[j])), None)
    if verb is None:
        # Any language: a time, an address and a closing colon, as in
        # "26.06.2014, 14:41, "Alexander L" <abc@example.com>:" (Yandex).
        line = lines[i]
        return i if re.search(r"\d{1,2}:\d{2}", line) and re.search(r"\S@\S", line) and line.rstrip().endswith(":") \
            else None
    start = next((j for j in block if j <= verb and _OPENER.match(lines[j])), None)
    start = verb if start is None else min(start, verb)
    text = " ".join(lines[start:i + 1])
    # "He wrote:" in running text is not an attribution; a date or an address
    # makes it one, and so does a quote right under "On Monday, Bob wrote:".
    if re.search(r"\d|@", text) or (_OPENER_WORD.match(lines[start]) and _followed_by_quote(lines, i)):
        return start
    return None


def _may_end_attribution(line: str) -> bool:
    # What _ATTRIBUTION_END needs, tested without a regular expression: most
    # lines end otherwise, and searching each one costs a tenth of stripping.
    end = line.rstrip()
    return end.endswith((":", "：")) or end.rstrip("-").rstrip().lower().endswith(("wrote", "schrieb"))


def _opener_of_wrapped_attribution(lines: list[str], i: int) -> bool:
    """ "On Thu, 31 Mar 2016 at 11:16 Some One", blank lines, then "> wrote:". """
    if not re.match(r"^\s*(on|am|le|el|il|op|em|w dniu)\s.*\d", lines[i], re.IGNORECASE) or len(lines[i]) > 200:
        return False
    return any(_VERB.search(line) and _ATTRIBUTION_END.search(line) for line in lines[i + 1:i + 7])


def _cut_index(lines: list[str]) -> int | None:
    fenced = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("```"):
            fenced = not fenced  # Markdown code: "####" there is code, not a separator
        if not stripped or fenced:
            continue
        if _opener_of_wrapped_attribution(lines, i):
            return i
        if _BANNER.match(line) or _SIGNATURE.match(line):
            return i
        if _DELIMITER.match(line) and _quoted_material_follows(lines, i):
            return i
        if _is_header_block(lines, i):
            return i
        start = _attribution_start(lines, i)
        if start is not None:
            return start
        if _DATE_ATTRIBUTION.match(line) and len(stripped) < 120 and (
                re.search(r"GMT[+-]\d{1,2}:\d{2}\s+\S", line)  # Gmail's "2016-03-03 17:21 GMT+01:00 Name"
                or re.search(r"[<@]", line) and _followed_by_quote(lines, i)):
            return i  # a log line "2024-05-01 12:00 error …" is none of these
        if _MOBILE_SIGNATURE.match(line) and len(stripped) < 100 and _only_signature_after(lines, i):
            return i
        if stripped.startswith(">") and all(not rest.strip() or rest.lstrip().startswith(">")
                                            for rest in lines[i + 1:]):
            return i  # a quote with nothing of ours after it
    return None


def _quoted_material_follows(lines: list[str], i: int) -> bool:
    """After a separator line: nothing of substance, or an embedded mail (a form's ==== is not a cut)."""
    for j in range(i + 1, len(lines)):
        line = lines[j]
        if not line.strip() or _DELIMITER.match(line):
            continue
        return bool(line.lstrip().startswith(">") or _is_header_block(lines, j) or _BANNER.match(line)
                    or _attribution_start(lines, j) is not None or _opener_of_wrapped_attribution(lines, j)
                    or _MOBILE_SIGNATURE.match(line))
    return True


def _only_signature_after(lines: list[str], i: int) -> bool:
    # "Sent with the courier yesterday." followed by a paragraph is not a signature.
    rest = [line for line in lines[i + 1:] if line.strip()]
    return len(rest) <= 30 and all(len(line.strip()) < 70 or _MOBILE_SIGNATURE.match(line)
                                   or line.lstrip().startswith(">") for line in rest)


def _followed_by_quote(lines: list[str], i: int) -> bool:
    rest = [line for line in lines[i + 1:] if line.strip()]
    return bool(rest) and rest[0].lstrip().startswith((">", "|"))


def _cut(text: str) -> str:
    lines = text.split("\n")
    index = _cut_index(lines)
    if index is not None:
        lines = lines[:index]
    while lines and (not lines[-1].strip() or _DELIMITER.match(lines[-1])):
        lines.pop()
    return "\n".join(lines)


def _reply_below_quote(text: str) -> str:
    """Bottom-posting or a bare forward: attribution, quote or forwarded headers on top, the text under them."""
    lines = text.split("\n")
    i = 0
    in_headers = False
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            in_headers = False
        elif _BANNER.match(line) or _DELIMITER.match(line) or _HEADER_LINE.match(line):
            in_headers = True
        elif not (in_headers or line.lstrip().startswith(">") or _attribution_start(lines, i) is not None
                  or _inside_attribution(lines, i)):
            break
        i += 1
    rest = "\n".join(lines[i:])
    return _cut(rest) if i and rest.strip() else ""


def _inside_attribution(lines: list[str], i: int) -> bool:
    # A line of an attribution that ends further down.
    for j in range(i, min(i + 4, len(lines))):
        start = _attribution_start(lines, j)
        if start is not None and start <= i:
            return True
    return False
