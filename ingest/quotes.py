"""The new text of a reply: quoted history and signature stripped.

mail-parser-reply finds the reply headers it knows ("On … wrote:", Outlook
blocks) in many languages. Around it, our own pass cuts at what it misses
in real mail (measured in bench/quotes.py): header blocks and "wrote:"
lines broken over several lines, separator lines (-----, _____),
forwarded-message banners, "-- " signatures and "Sent from my iPhone"
lines, and trailing ">" quotes. Each asks for the whole shape, so that the
writer's own "--" divider, "Von: Montag" or "… wrote:" stays in the reply.
An inline reply (the writer's answers between the quoted questions) keeps
its answers and the quotes between them, up to the last answer.
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
# The words start with a letter and the rules have four characters or more:
# a line of dashes alone is a separator (see _DELIMITER), and "-- Part two --"
# is someone's own heading; every mailer's banner has five or more.
_BANNER = re.compile(
    r"^[\s*>]*(-{4,}|_{4,}|={4,})\s*[^\W\d_][\w .'-]{2,39}\s*(-{4,}|_{4,}|={4,})[\s*]*$"
    r"|^\s*(begin forwarded message|anfang der weitergeleiteten nachricht|début du message réexpédié)(?:\s*:)?\s*$",
    re.IGNORECASE,
)
# A forward's banner: what is under it is a mail the writer passes on (an order confirmation, a
# vendor's answer), not this conversation's history, so it is kept. Outlook's "Original Message"
# banner stands over the mail replied to, and is cut. Apple Mail quotes what it forwards under its
# "> Begin forwarded message:"; a quoted dashed banner is a forward in the history replied to.
_FORWARD_BANNER = re.compile(
    r"^[\s*]*[-_=]{4,}\s*(forwarded message|weitergeleitete nachricht|message transf[ée]r[ée]|"
    r"mensaje reenviado|messaggio inoltrato|doorgestuurd bericht|mensagem encaminhada|"
    r"przekazana wiadomo[śs][ćc]|vidarebefordrat meddelande|videresendt meddelelse)\s*[-_=]{4,}[\s*]*$"
    r"|^[\s>]*(begin forwarded message|anfang der weitergeleiteten nachricht|"
    r"d[ée]but du message r[ée]exp[ée]di[ée])(?:\s*:)?\s*$",
    re.IGNORECASE,
)
# The keys of an embedded mail's header block, by what they name.
# Outlook writes them in the reader's language (pt-BR, ja, ko, tr, cs, fi, hu and zh-TW beside
# the western ones), with no ">" under them: an unknown language kept a whole quoted notice.
_HEADER_KEYS = {
    "from": "from|von|de|da|van|od|från|fra|от|від|kimden|lähettäjä|feladó|差出人|보낸 사람|发件人|寄件人|寄件者",
    "to": "to|an|à|a|aan|do|till|til|para|кому|komu|kime|vastaanottaja|címzett|宛先|받는 사람|收件人|收件者|"
          "cc|kopie|copie|bilgi|kopio|másolatot kap",
    "subject": "subject|betreff|objet|oggetto|asunto|onderwerp|temat|assunto|ämne|emne|тема|konu|předmět|aihe|"
               "tárgy|件名|제목|主题|主旨",
    "date": "sent|gesendet|envoyé|enviado|enviada em|enviado em|inviato|verzonden|wysłano|skickat|sendt|"
            "отправлено|gönderildi|tarih|odesláno|lähetetty|elküldve|送信日時|보낸 날짜|发送时间|寄件日期|"
            "date|datum|fecha|data|дата|日期",
    "other": "reply-to|risposta|antwort an|répondre à",
}
_HEADER_KIND = {key: kind for kind, keys in _HEADER_KEYS.items() for key in keys.split("|")}
_HEADER_KEY = "|".join(_HEADER_KEYS.values())
_HEADER_LINE = re.compile(r"^[\s*>]*(%s)[\s*]*[:：]\s*(\S.*)" % _HEADER_KEY, re.IGNORECASE)
# Any "Key: value" line, as mail-parser-reply's header blocks start.
_KEY_LINE = re.compile(r"^[>* ]*[^\W\d_](?:[^\W\d_]|[ -]){0,24}[* ]*[:：]")
# The verb of an attribution: "… wrote:", "… schrieb am …:", "… a écrit :", …
_VERB = re.compile(
    r"\b(wrote|writes|schrieb|a écrit|escribió|ha scritto|schreef|geschreven|napisał\(a\)|napisał|escreveu|"
    r"skrev|написал\(а\)|написала|написал|написав|пише|kirjoitti|yazdı|geschrieben)\b|写道|寫道",
    re.IGNORECASE,
)
# How attributions end: a colon, or "wrote ----" in some webmailers.
# Lotus Notes frames it in dashes: "-----Bob <bob@example.org> wrote: -----".
_ATTRIBUTION_END = re.compile(r"([:：]|\b(wrote|schrieb))[\s-]*$", re.IGNORECASE)
# How they start: "On Tue, …", "Am 21.04.2016 …", "Le 4 janv. …", a date.
_OPENER_WORD = re.compile(r"^\s*(on|am|le|el|il|op|em|den|w dniu)\s", re.IGNORECASE)
# The first part of an attribution wrapped over lines, "On Thu, 31 Mar 2016 at 11:16 Some One".
_WRAPPED_OPENER = re.compile(r"^\s*(on|am|le|el|il|op|em|w dniu)\s.*\d", re.IGNORECASE)
_OPENER = re.compile(r"^\s*(-+\s*)?(on|am|le|el|il|op|em|den|dne|w dniu|в|у)\s.*\d|^\s*\d", re.IGNORECASE)
# An attribution that starts with a date: "2013/7/20 sam via Meta <info@…>",
# "2016-03-03 17:21 GMT+01:00 Some One".
_DATE_ATTRIBUTION = re.compile(r"^\s*\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b.*\S")
# Phones sign in their user's language, some with the device first ("iPhoneから送信").
_MOBILE_SIGNATURE = re.compile(
    r"^\s*(sent (from|via|with) |envoyé (depuis|de mon)|von meinem |gesendet von meinem|enviado (desde|de mi|do meu)|"
    r"inviato da |(verzonden|verstuurd) (met|vanaf) |wysłane z |skickat från |sendt fra |отправлено с |"
    r"odesláno z |lähetetty (minun )?(iphone|ipad|android|galaxy|puhelime)|"
    r"(发自|来自|從)我的|(iphone|ipad|android|galaxy)\S*\s*(から送信|에서 보냄|'?\w*dan gönderildi)|"
    r"get outlook for |diese nachricht wurde von meinem|from my (iphone|ipad|android)|<<sent by )",
    re.IGNORECASE,
)
# A rule of dashes or underscores that many signatures open with.
_RULE = re.compile(r"^\s*[-_]{7,}\s*$")
# Under a bare "--" or a rule, a signature opens with this many lines that
# are not sentences (name, title, company, address, phone, web site), and
# ends, a disclaimer included, within the longer count.
_SIGNATURE_HEAD = 6
_SIGNATURE_LINES = 25
# "1. Unplug it", "- step two": a list item is the writer's text, not a signature's line.
_LIST_ITEM = re.compile(r"^\s*([-*•]+|\d{1,2}[.)])\s+\S")


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
    return own_reply(text) or text.strip()


def own_reply(text: str) -> str:
    """The visible reply, empty when the mail holds only quoted text (and perhaps a signature)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text or text.isspace():   # what `not text.strip()` says, without a copy of a long text
        return ""
    head = _head(text)
    reply = _head_reply(head)
    return _with_rest(text, head, reply) if len(head) < len(text) else reply


# Quoted history is looked for in a text's first HEAD_LINES lines and HEAD_CHARS characters only; the rest is
# kept as it is when no history starts there. Stripping costs about 12 us a line: a 25 MB text of blank-line-
# separated lines took over a minute. In the corpus (../shared/corpus) the longest reply followed by
# history ends on line 175 at 4 982 characters, and the longest text of all is 1 593 lines, 121 kB: both
# bounds leave ten times the room, and cost about 30 ms.
HEAD_LINES = 2000
HEAD_CHARS = 200_000


def _head(text: str) -> str:
    """The text's head that is searched for history (whole lines where it can)."""
    end = -1
    for _ in range(HEAD_LINES):
        end = text.find("\n", end + 1, HEAD_CHARS)
        if end < 0:
            break
    if end < 0:
        if len(text) <= HEAD_CHARS:
            return text
        end = text.rfind("\n", 0, HEAD_CHARS)
        if end < 0:
            end = HEAD_CHARS - 1  # one line longer than the head: its start
    return text[:end + 1]


def _with_rest(text: str, head: str, reply: str) -> str:
    """The head's reply, and the rest of the text after it when the writer's text runs to the head's end.

    Cut from `text` itself: the text without history is then that same
    object, not one more copy of a mail's whole text.
    """
    kept = head.strip("\n").rstrip()
    end = len(head) - len(head.lstrip("\n")) + len(kept)
    if kept.startswith(reply) and all(
            not line.strip() or _DELIMITER.match(line) for line in kept[len(reply):].split("\n")):
        return text.strip("\n").rstrip()  # no history in the head
    last = kept[kept.rfind("\n") + 1:].strip()
    if reply and last and reply.endswith(last):
        return (reply + text[end:]).rstrip()  # an inline reply whose answers go on past the head
    return reply


def _head_reply(text: str) -> str:
    """own_reply of a text short enough to be searched whole."""
    reply = _cut(text)
    if reply.strip():
        reply = _cut(_library_cut(reply))
    if reply.strip():
        lines = text.split("\n")
        reply = "\n".join(_with_inline_answers(lines, reply.split("\n")))
    else:
        reply = _reply_below_quote(text)
    return reply.strip("\n").rstrip()


LIBRARY_LINE = 400


def _library_cut(text: str) -> str:
    """Our text up to where mail-parser-reply ends the reply.

    The library also rewrites what it keeps (indentation goes), so only its
    cut point is used: the lines it returned are matched against ours.
    It is shown each line's first LIBRARY_LINE characters: its attribution
    patterns ("On … wrote:") take time growing with the square of a line
    that opens like one, and a long paragraph starting "On Monday" (a web
    form's text on one line) held a worker for seconds, a longer one for
    minutes. Every header it knows fits in that many.
    """
    lines = text.split("\n")
    shown = [line[:LIBRARY_LINE] for line in lines]
    try:
        kept = _library().reply("\n".join(shown))
    except Exception:  # the library on input it does not expect: keep ours
        return text
    end = _last_kept_line(shown, kept)
    if end is None:
        return text
    rest = next((j for j in range(end + 1, len(lines)) if lines[j].strip()), None)
    if rest is not None and not _library_quote_starts(lines, rest):
        return text
    return "\n".join(lines[:end + 1])


def _last_kept_line(lines: list[str], kept: str) -> int | None:
    """The index of the last of our lines the library kept, when it kept our first lines."""
    wanted = [_squash(line) for line in kept.split("\n") if line.strip()]
    matched = 0
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        if matched < len(wanted) and _squash(line) == wanted[matched]:
            matched += 1
            if matched == len(wanted):
                return index
        else:
            break
    return None


def _library_quote_starts(lines: list[str], j: int) -> bool:
    """Whether the quote mail-parser-reply found at line j has the shape our own rules ask for."""
    # The library takes any two "Key: value" lines for a header block and any
    # "On … wrote:" line for an attribution, in the middle of a sentence too.
    if _under_forward_banner(lines, j):
        return False
    if _KEY_LINE.match(lines[j]):
        return _is_header_block(lines, j)
    if any(_VERB.search(line) for line in lines[j:j + 2]):
        return any(_attribution_start(lines, k) is not None for k in range(j, min(j + 2, len(lines))))
    return True  # a shape only the library knows: trust it


def _under_forward_banner(lines: list[str], j: int) -> bool:
    """Whether line j is a forward's banner or lies anywhere below one: the mail passed on is kept."""
    return any(_FORWARD_BANNER.match(line) for line in lines[:j + 1])


def _squash(line: str) -> str:
    return " ".join(line.split())  # str.split and re's \s agree on what whitespace is


def _is_header_block(lines: list[str], i: int) -> bool:
    """An embedded mail's header block from line i: From with a date, and To or Subject, close together."""
    # Two lines are not enough: "Von: Montag" over "An: Freitag" is a
    # schedule. Outlook writes From, Sent, To, Subject; Thunderbird and Apple
    # Mail Subject, Date, From, To: all name the sender, a date, and a
    # recipient or a subject. Some drop the colon after To and Subject; a
    # sender's address over a date with digits is then shape enough.
    if not _HEADER_LINE.match(lines[i]):
        return False
    block = [line for line in lines[i:i + 10] if line.strip()][:5]
    headers = [m for m in map(_HEADER_LINE.match, block) if m]
    kinds = [_HEADER_KIND.get(m.group(1).lower(), "other") for m in headers]
    if "from" not in kinds[:3]:
        return False
    values: dict[str, str] = {}
    for kind, m in zip(kinds, headers):
        if kind not in values and _value_fits(kind, m.group(2).strip()):
            values[kind] = m.group(2)
    if "from" not in values or "date" not in values:
        return False
    # Every mailer's block names a subject, or the sender's address: "From: Berlin Tegel" over "To:
    # Munich" and "Date: 12.12.2026" is a customer's booking, and all under it was lost.
    return "subject" in values or "@" in values["from"] and (
        "to" in values or any(c.isdigit() for c in values["date"]))


def _value_fits(kind: str, value: str) -> bool:
    """Whether a header's value has the shape its key asks for: an address or a name, a date."""
    if kind in ("from", "to"):
        return "@" in value or not value[0].isdigit()  # "An: 17:00" is a time
    if kind == "date":
        return any(c.isdigit() for c in value) or len(value.split()) <= 3  # "Sent: Monday"
    return True


def _attribution_start(lines: list[str], i: int) -> int | None:
    """Where an attribution ending on line i starts; it may wrap over up to four lines."""
    if not _may_end_attribution(lines[i]) or not _ATTRIBUTION_END.search(lines[i]):
        return None
    block = [i]
    while len(block) < 4 and block[-1] > 0 and _may_wrap_attribution(lines[block[-1] - 1]):
        block.append(block[-1] - 1)
    verb = next((j for j in block if _VERB.search(lines[j])), None)
    if verb is None:
        # Any language: a time, an address and a closing colon, as in
        # "26.06.2014, 14:41, "Alexander L" <abc@example.com>:" (Yandex).
        # Without a verb it takes the quote under it too: "Call me at 14:30
        # or write to bob@example.com:" is a sentence.
        line = lines[i]
        return i if re.search(r"\d{1,2}:\d{2}", line) and re.search(r"\S@\S", line) and line.rstrip().endswith(":") \
            and _followed_by_quote(lines, i) else None
    start = next((j for j in block if j <= verb and _OPENER.match(lines[j])), None)
    start = verb if start is None else min(start, verb)
    text = " ".join(lines[start:i + 1])
    if start > 0 and _own_line(lines[start - 1]) and "@" not in text and not _followed_by_quote(lines, i):
        return None  # right under a line of the writer's, with no quote under it: their own sentence
    # "He wrote:" in running text is not an attribution; a date or an address
    # makes it one, and so does a quote right under "On Monday, Bob wrote:".
    if re.search(r"\d|@", text) or (_OPENER_WORD.match(lines[start]) and _followed_by_quote(lines, i)):
        return start
    return None


def _may_wrap_attribution(line: str) -> bool:
    """Whether a line above may be the first part of an attribution: not blank, not quoted, not a finished sentence."""
    return bool(line.strip()) and not line.lstrip().startswith(">") and not _finished_sentence(line)


def _finished_sentence(line: str) -> bool:
    """Whether a line ends a sentence: "I ordered a printer.", not "schrieb am Fr., 28." nor "Acme Inc."."""
    end = line.rstrip()
    return end.endswith(("!", "?")) or _ends_sentence(end.split())


def _own_line(line: str) -> bool:
    """A line of the writer's text: not blank, not quoted, not a separator."""
    return bool(line.strip()) and not line.lstrip().startswith(">") and not _DELIMITER.match(line)


def _may_end_attribution(line: str) -> bool:
    # What _ATTRIBUTION_END needs, tested without a regular expression: most
    # lines end otherwise, and searching each one costs a tenth of stripping.
    end = line.rstrip().rstrip("-").rstrip()
    return end.endswith((":", "：")) or end.lower().endswith(("wrote", "schrieb"))


def _opener_of_wrapped_attribution(lines: list[str], i: int) -> bool:
    """ "On Thu, 31 Mar 2016 at 11:16 Some One", blank lines, then "> wrote:". """
    if not _WRAPPED_OPENER.match(lines[i]) or len(lines[i]) > 200:
        return False
    if _finished_sentence(lines[i]):
        return False  # "On 3 May I ordered a printer." is a sentence, not an attribution's first half
    return any(_VERB.search(line) and _ATTRIBUTION_END.search(line) for line in lines[i + 1:i + 7])


def _cut_index(lines: list[str]) -> int | None:
    fenced = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("```"):
            fenced = not fenced  # Markdown code: "####" there is code, not a separator
        if not stripped or fenced:
            continue
        if _FORWARD_BANNER.match(line):
            return None   # the rest is the mail passed on, its own history included
        if _opener_of_wrapped_attribution(lines, i):
            return i
        if _BANNER.match(line) or _is_signature_start(lines, i):
            return i
        if _DELIMITER.match(line) and _quoted_material_follows(lines, i):
            return i
        if _is_header_block(lines, i):
            return i
        if stripped.lower() == "to" and (start := _notes_block_start(lines, i)) is not None:
            return start
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


# Lotus Notes puts the keys of the mail replied to on lines of their own, "To", "cc", "Subject", each
# over its value, under the sender and the date.
_NOTES_DATE = re.compile(r"\b\d{1,4}[./-]\d{1,2}[./-]\d{2,4}\b")


def _notes_block_start(lines: list[str], i: int) -> int | None:
    """Where a Lotus Notes header block starts whose bare "To" key is line i: its sender and date above it,
    with a bare "Subject" key a few lines below."""
    if not any(line.strip().lower() == "subject" for line in lines[i + 1:i + 8]):
        return None
    end = i
    while end > 0 and not lines[end - 1].strip():
        end -= 1   # "Please respond to …" and the keys may stand a blank line apart
    start = end
    while start > 0 and lines[start - 1].strip() and end - start < 6:
        start -= 1
    above = lines[start:end]
    if above and any("@" in line or _NOTES_DATE.search(line) for line in above):
        return start
    return None


def _quoted_material_follows(lines: list[str], i: int) -> bool:
    """After a separator line: nothing of substance, or an embedded mail (a form's ==== is not a cut)."""
    for j in range(i + 1, len(lines)):
        line = lines[j]
        if not line.strip() or _DELIMITER.match(line):
            continue
        return _quote_starts(lines, j) or bool(_MOBILE_SIGNATURE.match(line))
    return True


def _quote_starts(lines: list[str], j: int) -> bool:
    """Whether line j opens quoted history: a "> " quote, a header block, a banner or an attribution."""
    line = lines[j]
    return bool(line.lstrip().startswith(">") or _is_header_block(lines, j) or _BANNER.match(line)
                or _attribution_start(lines, j) is not None or _opener_of_wrapped_attribution(lines, j))


def _is_signature_start(lines: list[str], i: int) -> bool:
    """Whether line i starts a signature: "-- ", or a bare "--" or a rule over what reads as a signature."""
    # RFC 3676 section 4.3 makes "-- " the separator. Many mailers drop its
    # space, and many signatures open with a rule instead, but people also
    # type "--" or a rule as a divider in their own text.
    line = lines[i]
    if line.startswith("--") and not line[2:].strip():
        if len(line) > 2:
            return True  # the space (or other blank) RFC 3676 puts after "--"
    elif not (line.lstrip().startswith(("-", "_")) and _RULE.match(line)):
        return False
    return _signature_follows(lines, i)


def cut_signature(text: str) -> str:
    """The text above its signature, by the rule strip_reply cuts with."""
    lines = text.split("\n")
    end = next((i for i in range(len(lines)) if _is_signature_start(lines, i)), len(lines))
    return "\n".join(lines[:end]).strip()


def _signature_follows(lines: list[str], i: int) -> bool:
    """Whether the lines under the divider on line i, up to the end or the quoted history, read as a signature."""
    above = _previous_line(lines, i)
    if _own_line(above) and above.rstrip().endswith((":", "：")):
        return False  # "The log:" over "--": the divider introduces what follows
    counted = 0
    for j in range(i + 1, len(lines)):
        line = lines[j]
        if line.rstrip() == "--":
            return False  # "--" again: a divider between parts of the text
        if not line.strip() or _DELIMITER.match(line):
            continue
        if _quote_starts(lines, j):
            break
        counted += 1
        if counted > _SIGNATURE_LINES or counted <= _SIGNATURE_HEAD and _reads_as_prose(line):
            return False  # too long for a signature (not near the end), or it opens with a sentence
    return True


def _previous_line(lines: list[str], i: int) -> str:
    """The nearest non-blank line above line i ("" at the top)."""
    return next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")


def _reads_as_prose(line: str) -> bool:
    """Whether a line reads as someone's sentence or list item rather than a signature's name, title or number."""
    if _MOBILE_SIGNATURE.match(line):
        return False  # "Sent from my cell, please excuse any typos."
    text = line.strip()
    words = text.split()
    lowercase = [word for word in (w.strip(".,;:!?()\"'") for w in words)
                 if len(word) > 1 and word.isalpha() and word.islower()]
    return (len(text) > 80 or len(lowercase) >= 5 or text.endswith("?") or _ends_sentence(words)
            or bool(_LIST_ITEM.match(line)))


def _ends_sentence(words: list[str]) -> bool:
    """Two words or more closed by a full stop after a word: "Please help.", not "Acme Inc." nor "Ph.D."."""
    if len(words) < 2 or not words[-1].endswith("."):
        return False
    last = words[-1].rstrip(".").strip("\"'()")
    return last.isalpha() and not (last[:1].isupper() and len(last) <= 4)


def _only_signature_after(lines: list[str], i: int) -> bool:
    # "Sent with the courier yesterday." followed by a paragraph is not a signature.
    rest = [line for line in lines[i + 1:] if line.strip()]
    return len(rest) <= 30 and all(len(line.strip()) < 70 or _MOBILE_SIGNATURE.match(line)
                                   or line.lstrip().startswith(">") for line in rest)


def _followed_by_quote(lines: list[str], i: int) -> bool:
    # Only the next non-blank line is read: attributions call this on every "… wrote:" line.
    following = next((lines[j] for j in range(i + 1, len(lines)) if lines[j].strip()), "")
    return following.lstrip().startswith((">", "|"))


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
    in_headers = headers = False
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            in_headers = False
        elif _BANNER.match(line) or _DELIMITER.match(line) or _HEADER_LINE.match(line):
            in_headers = headers = True
        elif not (in_headers or line.lstrip().startswith(">") or _attribution_start(lines, i) is not None
                  or _inside_attribution(lines, i)):
            break
        i += 1
    rest = "\n".join(lines[i:])
    reply = _cut(rest) if i and rest.strip() else ""
    if not reply.strip():
        return ""
    below = _with_inline_answers(lines[i:], reply.split("\n"))
    if headers or not _answers_a_quote(below):
        return "\n".join(below)
    # Answers between quotes under a quote on top: the top quote is the first
    # question they answer, and stays (its attribution goes, as further down).
    above = [line for line in lines[:i] if not line.strip() or _quoted(line)]
    return "\n".join(above + below)


def _inside_attribution(lines: list[str], i: int) -> bool:
    # A line of an attribution that ends further down.
    for j in range(i, min(i + 4, len(lines))):
        start = _attribution_start(lines, j)
        if start is not None and start <= i:
            return True
    return False


# An initials quote as Emacs's Supercite writes it: "AL> Regards,".
_SUPERCITE = re.compile(r"^\s*[^\W\d_]{1,4}>(\s|$)")
# How a mail ends when the writer only signs below the quoted history:
# "Thanks,", "Best regards", "Viele Grüße", over a name or two.
_CLOSING = re.compile(
    r"^\s*((many |best |kind |warm )?(thanks|thank you|thx|regards|wishes)( again| a lot| in advance)?|cheers|best|"
    r"sincerely|yours( sincerely| truly)?|greetings|br|mfg|lg|(viele |liebe |beste |freundliche )?gr(ü|ue)(ß|ss)e?|"
    r"danke( schön| sehr)?|merci( beaucoup)?|cordialement|bien à vous|(un )?saludos?|gracias|(cordiali )?saluti|grazie|"
    r"(met vriendelijke )?groet(en)?|pozdrawiam|dziękuję|atenciosamente|obrigad[oa]|(med vänlig )?hälsningar?|mvh|"
    r"с уважением|спасибо)\s*[,.!]?\s*$",
    re.IGNORECASE,
)


def is_closing(line: str) -> bool:
    """Whether the line is a sign-off a signature starts with ("Kind regards,", "Viele Grüße")."""
    return bool(_CLOSING.match(line))


# Words a gateway's disclaimer under everything has, and no short answer needs at that length.
_DISCLAIMER = re.compile(
    r"confidential|intended recipient|intended solely|privileged|disclaimer|vertraulich|empfänger|confidentiel|"
    r"destinataire|riservat|confidencial|destinatario",
    re.IGNORECASE,
)


def _quoted(line: str) -> bool:
    return line.lstrip().startswith(">") or bool(_SUPERCITE.match(line))


def _with_inline_answers(lines: list[str], reply: list[str]) -> list[str]:
    """The reply (the first lines of `lines`) with the writer's answers between the quotes under it.

    An inline reply answers the quoted questions one by one: the writer's
    own lines below a quote belong to the reply, with the quotes between
    them, up to the last answer. What ends the history for good (an Outlook
    header block, a forwarded mail, a signature) ends the search; the
    attributions among the quotes are left out.
    """
    tail = _inline_tail(lines, len(reply))
    return reply if tail is None else lines[:len(reply)] + tail


def _inline_tail(lines: list[str], k: int) -> list[str] | None:
    """The lines from line k through the writer's last answer below a quote; None when there is none."""
    kept: list[int] = []
    quote_seen = False
    answers: list[int] = []      # the writer's lines below a quote
    last_quote = None            # where the last quote line was, to tell the final block apart
    rule_before: set[int] = set()  # answers right under a rule line (a signature's or a footer's)
    rule = False
    while k < len(lines):
        line = lines[k]
        if not line.strip():
            kept.append(k)
        elif _quoted(line) or quote_seen and _wrapped_quote_line(lines, k):
            quote_seen, last_quote, rule = True, k, False
            kept.append(k)
        elif (head := _attribution_at(lines, k)):
            if not _followed_by_quote(lines, k + head - 1):
                break            # the quoted mail without quote marks under it
            k += head
            continue
        elif _history_starts(lines, k):
            break
        elif _DELIMITER.match(line):
            rule = quote_seen
            if quote_seen:
                kept.append(k)
        elif not quote_seen:
            return None          # text that is no quote under the cut: not ours to read
        else:
            answers.append(k)
            if rule:
                rule_before.add(k)
                rule = False
            kept.append(k)
        k += 1
    final = [i for i in answers if last_quote is None or i > last_quote]
    if final and _no_answer(lines, final, rule_before):
        answers = answers[:len(answers) - len(final)]
    if not answers:
        return None
    return [lines[i] for i in kept if i <= answers[-1]]


def _attribution_at(lines: list[str], k: int) -> int:
    """How many lines an attribution starting on line k takes; 0 when none starts there."""
    for j in range(k, min(k + 4, len(lines))):
        if _attribution_start(lines, j) == k:
            return j - k + 1
    if _opener_of_wrapped_attribution(lines, k):
        return next(j - k + 1 for j in range(k + 1, min(k + 7, len(lines)))
                    if _VERB.search(lines[j]) and _ATTRIBUTION_END.search(lines[j]))
    line = lines[k]
    if _DATE_ATTRIBUTION.match(line) and len(line.strip()) < 120 and re.search(r"[<@]", line):
        return 1
    return 0


def _history_starts(lines: list[str], k: int) -> bool:
    """Whether line k opens what is history or a signature to the end: no answer follows it."""
    line = lines[k]
    return bool(_BANNER.match(line) or _is_header_block(lines, k) or _is_signature_start(lines, k)
                or _DELIMITER.match(line) and _quoted_material_follows(lines, k)
                or _MOBILE_SIGNATURE.match(line) and len(line.strip()) < 100 and _only_signature_after(lines, k))


def _wrapped_quote_line(lines: list[str], k: int) -> bool:
    """A quoted line's end that the mailer wrapped without its ">": lower case, under an unfinished quoted line."""
    above = lines[k - 1] if k else ""
    quoted = above.lstrip().lstrip(">").strip()
    return (_quoted(above) and bool(quoted) and not quoted.endswith((".", "!", "?", ":", ";"))
            and lines[k].lstrip()[:1].islower())


def _answers_a_quote(lines: list[str]) -> bool:
    """Whether one of the writer's lines comes below a quoted line."""
    quote = False
    for line in lines:
        if _quoted(line):
            quote = True
        elif quote and _own_line(line):
            return True
    return False


def _no_answer(lines: list[str], block: list[int], rule_before: set[int]) -> bool:
    """Whether the writer's last lines, under the last quote, only sign the mail: a sign-off, a footer, a disclaimer."""
    text = " ".join(lines[i].strip() for i in block)
    if block[0] in rule_before:
        return True              # under a rule of its own: a signature or a list's footer
    if len(text) >= 120 and _DISCLAIMER.search(text):
        return True
    return len(block) <= 4 and bool(_CLOSING.match(lines[block[0]])) and all(
        _name_line(lines[i]) for i in block[1:])


def _name_line(line: str) -> bool:
    """A name under a sign-off: "Bob", "Alice Smith", "Acme Support Team"."""
    words = line.split()
    return 0 < len(words) <= 4 and all(word[:1].isupper() and not any(c.isdigit() for c in word) for word in words)
