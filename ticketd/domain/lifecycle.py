"""Lifecycle decisions: what each side may do to a ticket, read from the words of a mail (pure).

PRODUCT.md, "The lifecycle" and "Customers by email". No I/O: the clock
comes in as `now`, settings (accept words) as arguments.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ticketd.domain.statuses import AGENT_COMMAND_STATUSES, TYPES, Status

# ---------------------------------------------------------------- who may set what


def agent_may_set(status: Status) -> bool:
    """Agents set every status but `new` (PRODUCT.md: only agents set the waiting/parked ones)."""
    return status in AGENT_COMMAND_STATUSES


# ---------------------------------------------------------------- customer replies

_EDGE_PUNCT = " \t.,;:!?¡¿。，！？、…'\"«»“”()-~"


# Emoji sequences also carry these: a variation selector, a zero-width joiner.
_EMOJI_GLUE = "\ufe0f\ufe0e\u200d"


def _trailing(char: str) -> bool:
    """Punctuation, a symbol (an emoji, "👍") or emoji glue: what `_normalise` trims off a line's end.

    Only off its end: at its start a symbol may be a quote marker ("> yes").
    """
    return char in _EDGE_PUNCT or char in _EMOJI_GLUE or unicodedata.category(char)[0] in "PS"


def _plain(text: str) -> str:
    """`text` in NFKC without format characters (Unicode category Cf): the zero-width space an HTML
    editor leaves ("<div>&#8203;Yes</div>"), a byte order mark, direction marks."""
    text = unicodedata.normalize("NFKC", text)
    return text if text.isascii() else "".join(c for c in text if unicodedata.category(c) != "Cf")


def _normalise(line: str) -> str:
    line = _plain(line).replace("\u2019", "'").casefold().strip(_EDGE_PUNCT)
    end = len(line)
    while end and _trailing(line[end - 1]):
        end -= 1
    return " ".join(line[:end].split())


def first_line(text: str) -> str:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


# Who wrote what a quote block under it holds: "Alice wrote:", "Am 3. Mai schrieb Bob <bob@example.org>:".
_WROTE = ("wrote", "writes", "schrieb", "écrit", "escribió", "scritto", "schreef", "napisał", "escreveu", "skrev",
          "написал", "写道", "寫道", "@")
_CLOCK = re.compile(r"\d:\d\d")


def own_lines(text: str) -> list[str]:
    """The lines a decision reads: the writer's own, stripped, non-empty, in NFKC without format characters.

    An inline or bottom-posted reply keeps the quotes between its answers
    for the agent to read (ingest/quotes.py), and "> Does this solve your
    problem?" over "Yes" is not the answer: '>'-quoted lines are left out,
    and so is the attribution right above a quote block ("Alice wrote:").
    A "-- " line starts the signature, which says nothing (RFC 3676).
    """
    written = (text or "").splitlines()   # split once: a line of "--" per line made this quadratic
    raw = [_plain(line).strip() for line in written]
    lines = []
    for i, line in enumerate(raw):
        if line == "--" and written[i].rstrip("\r") == "-- ":
            break
        if line.startswith(">") and _asks_if_it_persists(line):
            lines.append(line)   # "> Is the printer still jamming?" over "Yes": the yes says it is
            continue
        if not line or line.startswith(">"):
            continue
        if i + 1 < len(raw) and raw[i + 1].startswith(">") and _attribution(line):
            continue
        lines.append(line)
    return lines


# Words of a question whether the trouble goes on, where "yes" means it does: "Is it still jamming?",
# "Does the error appear again?", "Do you not see the menu?".
_PERSISTING = frozenset({"still", "again", "anymore", "longer", "not", "noch", "wieder", "nicht", "immer",
                         "toujours", "encore", "pas", "todavía", "sigue", "siguen", "ancora", "nuovo", "ещё",
                         "еще", "снова", "всё", "не"})
_PERSISTING_CJK = ("还", "仍", "又", "依然")
_WORD = re.compile(r"[\w']+")


def _asks_if_it_persists(quoted: str) -> bool:
    """A quoted question whether the trouble goes on: a "yes" under it is no acceptance."""
    question = quoted.lstrip("> ").casefold()
    if not question.endswith("?"):
        return False
    return (any(word in _PERSISTING or word.endswith("n't") for word in _WORD.findall(question))
            or any(mark in question for mark in _PERSISTING_CJK))


def _attribution(line: str) -> bool:
    """A line that says who wrote the quote under it: it ends in a colon, and names a writer's verb, an address
    or a time. "It still fails with this error:" over a quoted error is the writer's own."""
    folded = line.casefold()
    return folded.endswith(":") and (any(word in folded for word in _WROTE) or bool(_CLOCK.search(folded)))


def answer_line(text: str, accept_words: list[str] | tuple[str, ...] = ()) -> str:
    """The line that answers: the first of the writer's own, or the next when the first only greets ("Hi Bob,")
    or names whom it addresses ("Bob,"); with `accept_words`, the line that accepts if one does."""
    lines = own_lines(text)
    if accept_words and (found := _accepting(lines, accept_words)) is not None:
        return lines[found]
    return lines[_answer_index(lines)] if lines else ""


def _answer_index(lines: list[str]) -> int:
    return 1 if len(lines) > 1 and (_greets(lines[0]) or _addresses(lines[0])) else 0


def _addresses(line: str) -> bool:
    """`line` only names whom the reply addresses: a name and a comma ("Bob,", "Anna Smith,")."""
    words = line[:-1].split() if line.endswith(",") else []
    return 0 < len(words) <= 3 and _name_like(words) and not _courteous_line(line)


def is_acceptance(text: str, accept_words: list[str] | tuple[str, ...]) -> bool:
    """The answer line (the first of the writer's own lines, under one greeting line or a name) is an accept
    word, perhaps with thanks or "it works" (case, width, edge punctuation and emoji ignored), and the lines
    under it say nothing of a trouble left.

    Customers write "Yes, it works now, thanks!" and "Да, спасибо" as often as
    "yes" (PRODUCT.md: the first line is the accept word), and greet first
    ("Hi Bob,\nyes, it works now"), as they may before key facts. A line of
    thanks that says it works ("Thanks, that solved it") accepts too.
    Anything else on the line keeps it a rejection with a reason: "ok but it
    still fails", "yes? it still smokes". An emoji alone ("👍", which a
    mail client's reaction sends too) accepts nothing: closing is for words.
    The lines below may go on to other news (PRODUCT.md: the first line
    decides), but not to a trouble left: "Ok,\nI installed 2.1 but the
    printer still does not work" is the same rejection as on one line, and
    "Ok.\nThe issue came back, please reopen" to a closed ticket reopens it
    (`_untroubled`). Thanks, a sign-off and a name or signature under the
    answer ("Yes\n\nThanks for the fast help, Dana") keep it an acceptance.
    """
    return _accepting(own_lines(text), accept_words) is not None


def _accepting(lines: list[str], accept_words) -> int | None:
    """Which of the writer's lines accepts, the lines under it thanking and signing or naming no trouble left;
    None if none does."""
    if not lines:
        return None
    for index in (0, 1)[:1 + _answer_index(lines)]:
        if _accepts(lines[index], accept_words) and (
                _signs_off(lines[index + 1:]) or _untroubled(lines[index + 1:])):
            return index
    return None


# Words that open a question a writer may leave without its mark.
_ASKING = frozenset({"why", "how", "what", "when", "where", "which", "who", "can", "could", "would", "will",
                     "is", "are", "do", "does", "did", "should", "warum", "wie", "pourquoi", "почему"})


# Words that turn an answer round or name a trouble left in the other languages of the default accept words
# (PRODUCT.md "Customers by email"), as `_NOT_SIGNING` does in English: "Сработало\nХотя иногда зависает",
# "Risolto\nperò la stampante non stampa", "Funcionó\nluego volvió a fallar". None is a word of thanks.
_TURNING = frozenset({
    "однако", "хотя", "опять", "кроме", "нет", "перестал", "перестала", "перестало", "зависает", "зависло",
    "сломалось", "сломался", "вылетает", "сбой",
    "todavía", "todavia", "aún", "excepto", "salvo", "embargo", "aunque", "falla", "fallo", "falló", "fallar",
    "fallando", "roto", "cuelga", "colgado", "bloqueado",
    "non", "però", "tuttavia", "tranne", "eccetto", "bloccato", "bloccata", "blocca", "rotto", "errore",
    "fallito", "guasto"})
# The same in Chinese, written without spaces between words: looked for anywhere in a line ("但是...还是不工作").
_TURNING_HAN = ("但", "可是", "不过", "却", "还是", "仍", "依然", "又", "不行", "不能", "无法", "坏", "错误", "失败",
                "没用", "没解决", "没有解决", "不工作")


def _untroubled(lines: list[str]) -> bool:
    """Lines under the accept word that go on to something else ("The toner order is attached.") and say
    nothing of a trouble left: no question, no word that turns the answer round ("but it still jams") or
    names a trouble ("the tray jams", "same error"), in English or another language of the accept words."""
    if any("?" in line for line in lines):
        return False
    if any(line.split()[0].strip(_EDGE_PUNCT).casefold() in _ASKING for line in lines):
        return False   # a question without its mark ("Why does it need a restart every day")
    words = {w.strip(_EDGE_PUNCT).casefold() for line in lines for w in line.split()}
    return not (words & _NOT_SIGNING or words & _TURNING or any(w.endswith(("n't", "n’t")) for w in words)
                or any(mark in line for line in lines for mark in _TURNING_HAN))


def _accepts(answer: str, accept_words) -> bool:
    """One line that accepts: an accept word, perhaps with thanks or "it works"; or thanks that say it works."""
    line = _normalise(answer)
    if not line:
        return False
    # The rest of the line as written (a name after thanks keeps its capital: "Yes, thanks Anna").
    written = _plain(answer).replace("\u2019", "'")
    if "?" in written or _displeased(written):
        return False   # a question ("ok?", "works?") or a frown ("ok 👎", "Ok :(") accepts nothing
    words = {_normalise(w) for w in accept_words}
    if line in words:
        return True
    written = written.strip(_EDGE_PUNCT)
    for word in sorted(words, key=len, reverse=True):
        rest = written[len(word):]
        if written.casefold().startswith(word) and rest[:1] and not rest[0].isalnum() and _only_courtesy(rest):
            return True
    pieces = _pieces(written)
    return all(map(_courteous, pieces)) and any(_normalise(p) in _folded(_CONFIRMATIONS) for p in pieces)


# A thumbs down (the dislike of our own reactions), a frowning, crying or angry face, and their ASCII forms.
_DISPLEASURE = frozenset("\U0001f44e\u2639\U0001f641\U0001f61e\U0001f61f\U0001f620\U0001f621\U0001f622"
                         "\U0001f62d\U0001f615\U0001f612\U0001f614\U0001f92c")
_FROWN = re.compile(r"(?<![\w/]):'?-?[(/\\](?![\w/])")


def _displeased(written: str) -> bool:
    """The answer line carries a frown ("ok 👎", "Yes :("): it takes back the word it stands beside, which
    `_normalise` would read without it, as it reads "ok 👍"."""
    return any(c in _DISPLEASURE for c in written) or _FROWN.search(written) is not None


# What may follow an answer: a few lines of thanks and a signature. More is something to read.
_SIGN_OFF_LINES = 10


def _signs_off(lines: list[str]) -> bool:
    """The lines under an accepting answer only thank, praise, say it works and sign: "Thanks, Dana",
    "Best regards\nDana Smith\nACME Inc.", a bare name. A question, or a word that turns thanks round or
    asks for something ("Thanks\nStill Broken", "Thanks,\nReopen Please"), is something to read."""
    if not lines:
        return True
    if len(lines) > _SIGN_OFF_LINES or any("?" in line for line in lines):
        return False
    thanked = 0
    while thanked < len(lines) and _courteous_line(lines[thanked]):
        thanked += 1
    names = [line for line in lines[thanked:] if not _courtesy(line, _SIGN_OFFS)]
    if any(_NOT_SIGNING & {w.strip(_EDGE_PUNCT).casefold() for w in line.split()} for line in names):
        return False
    if not thanked:    # a name alone signs ("Yes, it works\nKim"); "It Broke Again" is no name
        return (len(names) == 1 and len(names[0]) <= 40 and len(names[0].split()) <= 2
                and _name_like(names[0].split()))
    return _signed(names)


def _pieces(text: str) -> list[str]:
    """A line cut at its punctuation ("Yes, it works - thanks!": "Yes", "it works", "thanks")."""
    return [p.strip() for p in _PIECE_BREAK.split(text) if _normalise(p)]


def _only_courtesy(rest: str) -> bool:
    """What follows an accept word is only thanks, praise or "it works": "ok thank you", ", works now!",
    "yes please"."""
    pieces = _pieces(rest)
    return bool(pieces) and all(_courteous(p) or _normalise(p) in _folded(_AGREEING) for p in pieces)


def _courteous(piece: str) -> bool:
    return (_normalise(piece) in _folded(_THANKS + _PRAISE + _CONFIRMATIONS) or _courtesy(piece, _THANKS)
            or _thanks_for(piece))


# Words that turn thanks round ("thanks for nothing", "thanks for trying but it still fails").
_CONTRAST = frozenset({"but", "not", "no", "never", "nothing", "still", "however", "though", "although", "yet",
                       "except", "aber", "nicht", "nichts", "mais", "pas", "rien", "pero", "nada", "ma", "niente",
                       "но", "не", "ничего"})
_FOR = frozenset({"for", "für", "pour", "por", "per", "за"})


def _thanks_for(piece: str) -> bool:
    """Thanks for something, in a few words none of which turns it round: "Thanks a lot for your quick help"."""
    words = piece.split()
    for size in range(min(len(words), 4), 0, -1):
        if _normalise(" ".join(words[:size])) in _folded(_THANKS):
            rest = [w.strip(",;:!.").casefold() for w in words[size:]]
            return 2 <= len(rest) <= 6 and rest[0] in _FOR and not _CONTRAST & set(rest)
    return False


# ASCII case folding only: under a Unicode (?i) "polıte" (dotless i) matches too,
# and a label must name one of the three fields. A colon, an equals sign or a dash may follow it
# ("Speed: 5", "Speed = 5", "Speed - 5").
_RATING_LABELS = re.compile(r"\b(?ai:(usefulness|useful|speed|fast|politeness|polite))\b\s*[:=\-\u2013\u2014]?")
_RATING_FIELD = {"usefulness": 0, "useful": 0, "speed": 1, "fast": 1, "politeness": 2, "polite": 2}
# A label of the whole rating, before the numbers: "Rating: 5 5 4", "My rating - 5 4 5", "Оценка: 5 5 5".
_RATING_PREFIX = re.compile(r"^\s*(?i:(?:my\s)?(?:ratings?|scores?|bewertung|note|puntuaci[oó]n|calificaci[oó]n|"
                            r"valutazione|voto|оценка|оценки|评分|打分))\s*[:=\-\u2013\u2014]?")
# Between the numbers: spaces, commas (Arabic "،" and ideographic "、" too), slashes, bars or dashes ("5 4 5",
# "5,4,5", "5/4/5", "5-4-5", "5 – 4 – 5"),
# perhaps with "and" before the last ("5, 5 and 4", "5, 5 y 4", "5, 5 и 4"). The word is optional once, between
# two runs of separators: no run of them can be cut two ways.
_SEP_RUN = r"[\s,;/|\-\u2013\u2014\u060c\u3001]+"
_SEP = rf"{_SEP_RUN}(?:(?:(?ai:and|und|et|y|e)|[иИ]){_SEP_RUN})?"
# What may end the numbers: a full stop (a CJK input method's "。" too: "5，4，5。") or an exclamation mark.
_END = r"(?:\s*[.!\u3002])?\s*$"
_RATING = re.compile(rf"^\s*([1-5])(?:\s*/\s*5)?{_SEP}([1-5])(?:\s*/\s*5)?{_SEP}([1-5])(?:\s*/\s*5)?{_END}")
# The same shape with any one- or two-digit numbers and scales: "10 10 10", "0 5 5", "8/10 9/10 10/10"
# is a rating the customer meant but did not write on ours (misread_rating), not what is still wrong.
_RATING_SHAPE = re.compile(rf"^\s*(\d\d?)(?:\s*/\s*\d\d?)?{_SEP}(\d\d?)(?:\s*/\s*\d\d?)?{_SEP}(\d\d?)"
                           rf"(?:\s*/\s*\d\d?)?{_END}")
# One or two labelled numbers ("usefulness: 5"): a rating begun, not what is still wrong (misread_rating).
_PARTIAL_SHAPE = re.compile(rf"^\s*(\d\d?)(?:\s*/\s*\d\d?)?(?:{_SEP}(\d\d?)(?:\s*/\s*\d\d?)?)?{_END}")


def parse_rating(text: str) -> tuple[int, int, int] | None:
    """Three numbers 1-5 (usefulness, speed, politeness), and nothing else but courtesy; labels allowed.

    Courtesy is a greeting line before the numbers, thanks after them (on
    their line or below), and a sign-off with a name or a signature under
    it (`_signed`): "Hi,\n5 4 5\nThank you,\nAnna" is only a rating. Any
    other word is something a person should read (`_rating_of` for the numbers).
    """
    return _rating_in(text, _RATING)


def misread_rating(text: str) -> tuple[int, ...] | None:
    """The numbers of a reply shaped as a rating but not on its scale of 1 to 5 ("10 10 10", "0 4 5",
    "4/10 5/10 5/10"), or one or two numbers each under its label ("usefulness: 5"), courtesy and labels as
    parse_rating allows; None for a rating or anything else."""
    if parse_rating(text) is not None:
        return None
    return _rating_in(text, _RATING_SHAPE) or _rating_in(text, _PARTIAL_SHAPE)


def _rating_in(text: str, shape: re.Pattern) -> tuple[int, ...] | None:
    """The three numbers `shape` finds in the reply once courtesy around them is set aside."""
    found = _rating_and_closing(text, shape)
    return found[0] if found else None


# A rating with its courtesy and a signature is a few short lines. A longer reply says more than a rating,
# and a person reads it; reading one of any length for courtesy took time growing with its square.
RATING_TEXT_MAX = 1000
RATING_LINES_MAX = 8


def _rating_and_closing(text: str, shape: re.Pattern,
                        accept_words: list[str] | tuple[str, ...] = ()) -> tuple[tuple[int, ...], list[str]] | None:
    """As `_rating_in`, with the lines under the numbers that `_closing` let through.

    The writer's own lines (`own_lines`): a rating under the quoted request ("> How did we do? …") is only
    a rating. An emoji ends a line of numbers as it ends thanks ("5 5 4 😊"). A line above them may greet,
    thank or, given `accept_words`, confirm the close ("Yes" over "5 5 5").
    """
    lines = [_without_emoji(line) for line in own_lines(text)]
    lines = [line for line in lines if line]
    if sum(map(len, lines)) + len(lines) > RATING_TEXT_MAX:
        return None
    if (rating := _rating_of("\n".join(lines), shape)) is not None:
        return rating, []
    if lines and (_greets(lines[0]) or _courtesy(lines[0], _THANKS)):
        lines = lines[1:]
    if accept_words and len(lines) > 1 and is_acceptance(lines[0], accept_words):
        lines = lines[1:]
    # The numbers take a few lines at most ("Usefulness:" over "5", for each of the three).
    for end in range(min(len(lines), RATING_LINES_MAX), 0, -1):
        if _closing(lines[end:]):
            numbers = "\n".join(lines[:end])
            for bare in _thanks_cut(numbers):
                if (rating := _rating_of(bare, shape)) is not None:
                    return rating, lines[end:]
    return None


def _without_emoji(line: str) -> str:
    """`line` without the emoji (symbols, their glue and skin tones) and blanks that end it."""
    end = len(line)
    while end and (line[end - 1] in _EMOJI_GLUE or line[end - 1].isspace()
                   or unicodedata.category(line[end - 1]) in ("So", "Sk")):
        end -= 1
    return line[:end]


# Han characters that say something is wrong, missing or asked for ("不行", "坏了", "退款", "没用"): a name
# as short as `_caseless_name` allows holds none of them.
_HAN_TROUBLE = frozenset("不没无未别非还仍又再坏错误败失慢卡死掉退差问题请要吗呢")


def _caseless_name(line: str) -> bool:
    """`line` may be a name in a script without capitals ("张伟", "김철수"): one or two short words of letters
    that have no case, none of `_HAN_TROUBLE`. Its shape cannot tell it from words as capitals do
    (`_name_like`): a rating signed so is read by a person too (`_read_by_a_person`)."""
    words = line.split()
    return (0 < len(words) <= 2 and 2 <= len(line) <= 12
            and all(c.isalpha() and not c.isupper() and not c.islower() for word in words for c in word)
            and not _HAN_TROUBLE & set(line))


def _read_by_a_person(closing: list[str]) -> bool:
    """The lines under a rating's numbers are more than a name, or a name only a person can tell from words
    (`_caseless_name`): the assignee reads them, as the rating stands and the ticket stays closed."""
    signature = _signature_lines(closing)
    return len(signature) > 1 or any(map(_caseless_name, signature))


def _signature_lines(closing: list[str]) -> list[str]:
    """The lines a sign-off has under it in a rating's closing (`_closing`): a name, or a signature."""
    if not closing or not _courteous_line(closing[0]):
        return closing
    return [line for line in closing[1:] if not _courtesy(line, _SIGN_OFFS)]


def _thanks_cut(numbers: str) -> tuple[str, ...]:
    """The numbers' lines as written, and without thanks or praise before or after them on their line
    ("Thanks! 4 5 3", "5 4 5 great, thanks", "5 5 5 thanks Bob")."""
    trailing = _without_trailing_thanks(numbers)
    return (numbers, trailing, _LEADING_THANKS.sub("", numbers), _LEADING_THANKS.sub("", trailing))


def _without_trailing_thanks(text: str) -> str:
    """`text` without the thanks and praise that end it, each perhaps naming someone ("great, thanks Bob!")."""
    while True:
        if (cut := _TRAILING_THANKS.sub("", text)) != text:
            text = cut
            continue
        words = text.rstrip(" \t,;.!").split()
        named = next((n for n in (1, 2) if len(words) > n and _a_name(words[-n:])
                      and _TRAILING_THANKS.search(" ".join(words[:-n]).rstrip(","))), None)
        if named is None:
            return text
        text = " ".join(words[:-named])


# Courtesy around a rating, in the languages of the default accept words (and German, French).
_GREETINGS = ("hi", "hello", "hey", "dear", "good morning", "good afternoon", "good evening", "good day",
              "dear sir or madam", "dear sir/madam", "dear sirs", "hallo",
              "guten tag", "moin", "bonjour", "salut", "hola", "buenos días", "buenas", "buenas tardes",
              "buenas noches", "buen día", "estimados", "ciao", "buongiorno", "buon pomeriggio", "buonasera",
              "buona sera", "salve", "привет", "здравствуйте", "добрый день", "доброе утро", "добрый вечер",
              "你好", "您好", "大家好", "早上好", "下午好", "晚上好")
# Whom a greeting names besides a person: "Hi team", "Hola a todos", "Ciao a tutti", "Добрый день, коллеги".
_GREETING_ADDRESSEES = frozenset({"team", "all", "there", "support", "everyone", "folks", "guys", "zusammen",
                                  "tous", "a", "todos", "equipo", "tutti", "colleghi", "всем", "коллеги",
                                  "команда"})
_THANKS = ("thanks", "thank you", "many thanks", "thanks a lot", "thanks so much", "thank you very much",
           "thank you so much", "thx", "ty", "danke", "vielen dank", "danke schön", "danke sehr", "merci",
           "merci beaucoup", "gracias", "muchas gracias", "grazie", "grazie mille", "спасибо", "большое спасибо",
           "спасибо большое", "огромное спасибо", "спасибо огромное",
           "谢谢", "感谢", "多谢", "非常感谢")
_SIGN_OFFS = _THANKS + (
    "cheers", "best", "best regards", "best wishes", "kind regards", "regards", "warm regards", "br",
    "sincerely", "yours sincerely", "all the best", "viele grüße", "beste grüße", "liebe grüße",
    "freundliche grüße", "mit freundlichen grüßen", "lg", "gruß", "grüße", "cordialement", "bien à vous",
    "saludos", "un saludo", "saludos cordiales", "saluti", "cordiali saluti", "с уважением", "всего доброго",
    "此致", "祝好")
# Praise and "it works" beside the accept word or the numbers of a rating.
_PRAISE = ("great", "great job", "good job", "great work", "well done", "excellent", "perfect", "awesome", "super",
           "great service", "great support", "great help", "excellent service", "excellent support", "quick help",
           "fast help", "very helpful", "much appreciated",
           "brilliant", "toll", "prima", "parfait", "génial", "excelente", "perfecto", "perfetto", "ottimo",
           "отлично", "супер", "太好了", "很好")
# Each is a whole piece of a line (_pieces): "it works" accepts, "it works but not on Mondays" does not.
_CONFIRMATIONS = ("it works", "it works now", "works", "works now", "working now", "it is working now",
                  "it's working", "it's working now", "it worked", "this works", "this works now", "this worked",
                  "that works", "that works now", "that works for me", "works for me", "it works for me",
                  "all good", "all good now", "all fine", "all fine now", "all set", "that worked",
                  "everything works", "everything works now", "everything is working", "everything is working now",
                  "everything is fine", "everything is fine now", "everything is ok", "everything is ok now",
                  "that solved it", "solved", "problem solved", "issue solved", "resolved", "issue resolved",
                  "fixed", "fixed now", "it's fixed", "it's fixed now", "it is fixed", "it is fixed now",
                  "all fixed", "that fixed it", "that did it", "that did the trick",
                  "please close it", "please close the ticket", "you can close it", "you can close the ticket",
                  "close it", "close the ticket",
                  "es funktioniert", "funktioniert", "funktioniert jetzt", "ça marche", "ça fonctionne",
                  "funciona", "ya funciona", "funciona bien", "ya funciona bien", "funciona perfectamente",
                  "todo bien", "todo bien ahora", "todo funciona", "funziona", "ora funziona", "tutto ok",
                  "работает", "всё работает", "все работает", "заработало", "всё хорошо", "все хорошо",
                  "可以了", "好了", "解决了", "问题解决了", "问题已解决", "已解决", "已经解决了",
                  # As many ways in each language of the default accept words (PRODUCT.md "Customers by
                  # email"): "Да, помогло" and "Sí, funcionó" are "Yes, that helped" and "Yes, it worked".
                  "that helped", "it helped", "this helped", "helped", "please close", "please close this ticket",
                  "close this ticket", "you can close this ticket", "the ticket can be closed",
                  "помогло", "всё помогло", "все помогло", "сработало", "решено", "проблема решена",
                  "вопрос решён", "вопрос решен", "всё в порядке", "все в порядке", "всё отлично", "все отлично",
                  "всё ок", "все ок", "можно закрывать", "можно закрыть", "закрывайте", "можно закрыть тикет",
                  "можно закрыть заявку", "заявку можно закрыть",
                  "funcionó", "ya funcionó", "ahora funciona", "resuelto", "problema resuelto", "solucionado",
                  "problema solucionado", "me ayudó", "eso ayudó", "pueden cerrar el ticket",
                  "puede cerrar el ticket", "pueden cerrarlo", "ya pueden cerrarlo", "por favor cierren el ticket",
                  "por favor cierre el ticket", "cierren el ticket",
                  "ha funzionato", "adesso funziona", "funziona ora", "risolto", "problema risolto", "tutto bene",
                  "tutto a posto", "è tutto a posto", "potete chiudere", "potete chiudere il ticket",
                  "può chiudere il ticket", "chiudete pure",
                  "没问题了", "没问题", "成功了", "可以关闭了", "可以关闭", "请关闭", "可以关闭工单", "有帮助")
# Agreeing words that only follow an accept word: "Yes please", "Sí, por favor".
_AGREEING = ("please", "por favor", "per favore", "bitte", "пожалуйста")
# Each pattern below that opens with a run (of spaces, of punctuation) opens where that run starts
# ((?<!…)): tried at every character of a long run, a line of them took time growing with its square.
_PIECE_BREAK = re.compile(r"[,;.!?。，！？、…]+|(?<!\s)\s+[-–—]+\s+")
_THANKS_WORDS = "|".join(sorted(map(re.escape, _THANKS + _PRAISE), key=len, reverse=True))
_TRAILING_THANKS = re.compile(r"(?<![\s,;.!–—-])[\s,;.!–—-]*(?i:" + _THANKS_WORDS + r")[\s.!]*$")
_LEADING_THANKS = re.compile(r"^\s*(?i:" + _THANKS_WORDS + r")[\s,;:.!–—-]+")
_NAME_WORD = re.compile(r"^[^\W\d_][^\W\d]*(?:[.'’&-][^\W\d]*)*\.?$")


@functools.cache
def _folded(phrases: tuple[str, ...]) -> frozenset[str]:
    """The phrases as `_normalise` leaves a line ("Viele Grüße" is "viele grüsse")."""
    return frozenset(map(_normalise, phrases))


def _name_like(words: list[str]) -> bool:
    """A person's or company's name: capitalised words without digits ("Anna Smith", "ACME Inc.")."""
    return all(_NAME_WORD.match(w) and w[0].isupper() for w in words)


def _a_name(words: list[str]) -> bool:
    """Words that may be the name one signs with or thanks: name-like, and none a word no name holds
    ("Thanks Still Broken" names no one)."""
    return _name_like(words) and not _NEVER_NAMES & _folded_words(" ".join(words))


def _folded_words(line: str) -> set[str]:
    return {w.strip(_EDGE_PUNCT).casefold() for w in line.split()}


def _courtesy(line: str, phrases: tuple[str, ...], addressees: frozenset[str] = frozenset()) -> bool:
    """`line` is one of `phrases`, then at most three words of a name or an addressee ("Hi team", "Thanks, Anna!")."""
    words = line.split()
    known = _folded(phrases)
    for size in range(min(len(words), 4), 0, -1):
        if _normalise(" ".join(words[:size])) in known:
            rest = [w.strip(",;:!.") for w in words[size:]]
            rest = [w for w in rest if w]
            return len(rest) <= 3 and (_name_like(rest) or all(w.casefold() in addressees for w in rest))
    return False


def _greets(line: str) -> bool:
    """`line` (NFKC already) is only a greeting: "Hi team,", "Hello Anna", "Здравствуйте,"."""
    return _courtesy(line, _GREETINGS, _GREETING_ADDRESSEES)


def is_only_courtesy(text: str) -> bool:
    """Only a greeting, thanks, praise or "it works", and a sign-off with a name: nothing a person must act on.

    "Thank you!", "Great, thanks!", "Hi team,\nthanks, it works now\nBest,\nAnna". A question
    ("Thanks?") or any other word ("Thanks, but the tray jams") is something to read. Quoted lines are
    ours, not theirs (`own_lines`).
    """
    lines = own_lines(text)
    if any("?" in line for line in lines):
        return False
    greeted = bool(lines) and _greets(lines[0])
    if greeted:
        lines = lines[1:]
    thanked = 0
    while thanked < len(lines) and _courteous_line(lines[thanked]):
        thanked += 1
    names = lines[thanked:]
    if not thanked and (names or not greeted):
        return False    # a name signs thanks; under a bare greeting ("Hi,\nStill Broken") it may be words
    return _signed(names)


def _courteous_line(line: str) -> bool:
    """A line of thanks, praise or "it works" ("Great, thanks!"), or a sign-off ("Best regards,")."""
    pieces = _pieces(line)
    return _courtesy(line, _SIGN_OFFS) or (bool(pieces) and all(map(_courteous, pieces)))


def _closing(lines: list[str]) -> bool:
    """What may follow the numbers: nothing; thanks or a sign-off, then a name or a signature; or a
    name alone, one line of one or two words ("5 5 4\nCarl": "It Broke Again" is no signature)."""
    if not lines:
        return True
    if not _courteous_line(lines[0]):   # a sign-off, or thanks and praise ("Great, thanks!", "Great service!")
        return len(lines) == 1 and (_caseless_name(lines[0]) or (
            len(lines[0]) <= 40 and len(lines[0].split()) <= 2 and _a_name(lines[0].split())))
    return _signed([line for line in lines[1:] if not _courtesy(line, _SIGN_OFFS)])


# A signature's contact lines, perhaps labelled: "Phone +1 555 1234", "M: 0171 234567", "anna@acme.example",
# "www.acme.example", "Web: https://acme.example/support".
_PHONE = re.compile(r"^(?i:(?:phone|tel|telephone|telefon|tél|téléphone|teléfono|telefono|телефон|тел|mobile|mobil|"
                    r"mob|cell|handy|fax|direct|office|m|t|p|f|o|d)\.?\s*:?\s*)?"
                    r"\+?\(?\d[\d\s()./-]*\d(?:\s*(?i:ext|x)\.?\s*\d{1,5})?$")
_EMAIL = re.compile(r"^(?i:e-?mail\s*:?\s*)?[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$")
_WEB = re.compile(r"^(?i:(?:web|website|url|internet)\s*:?\s*)?(?i:https?://)?(?:[\w-]+\.)+[^\W\d_]{2,}(?:/\S*)?$")
# Small words inside a title, a company's or a street's name: "Head of IT", "Müller & Söhne", "Rue de la Paix".
_NAME_GLUE = frozenset({"of", "and", "for", "the", "&", "und", "für", "der", "von", "van", "de", "du", "des", "la",
                        "le", "y", "e", "di", "del", "da", "at"})
# A house number or a postcode: "12", "12a", "12-14", "10115", "SW1A".
_STREET_NUMBER = re.compile(r"^\d[\dA-Za-z/-]{0,9}$|^[A-Z]{1,2}\d[A-Z\d]{0,3}$")
_STREET = re.compile(r"(?i:str\.|straße|strasse|street|st\.?|road|rd\.?|avenue|ave\.?|lane|way|drive|boulevard|"
                     r"blvd\.?|weg|gasse|platz|allee|rue|calle|via|suite|floor)$")
# A signature's line holds parts joined like "Anna Smith | Head of IT | ACME Corp".
_SIGNATURE_PARTS = re.compile(r"(?<!\s)\s+[|·•]\s+|(?<!\s)\s*[|·•]\s*(?=\S)")
# Under a sign-off: a name, then a title and a company, and contact lines (phone, mail, web site, address).
_SIGNATURE_NAMES = 3
_SIGNATURE_LINES = 6
# Words no title or company holds, under the name that signs: what turns thanks round ("Not Fixed", "Still
# Broken") and asking ("Refund Please"). The name itself may be one of them ("Nada", "Ma").
# Words no name or signature holds: a request, or a problem in a word or two under the accept word
# ("Ok\nDoesn't Work", "Yes\nThanks\nRefund Me") reads as a name by its capitals, and closed the ticket.
# Anywhere under the accept word they name a trouble left (`_untroubled`).
_NOT_SIGNING = _CONTRAST | frozenset({
    "please", "pls", "plz", "again", "bitte", "favor", "favore", "пожалуйста",
    "nope", "wrong", "fail", "fails", "failed", "failing", "broken", "broke", "same", "cancel", "refund", "help",
    "urgent", "wait", "worse", "issue", "problem", "error", "bug", "crash", "crashes", "reopen", "doesn't",
    "don't", "isn't", "can't", "won't", "didn't", "wasn't", "cannot", "stop", "stopped", "kaputt", "fehler",
    "problème", "erreur", "problema", "ошибка", "проблема",
    "jam", "jams", "jammed", "stuck", "freeze", "freezes", "frozen", "hangs", "crashed", "missing", "lost",
    "slow", "blocked", "locked", "denied", "unable", "impossible", "weiterhin", "sigue", "снова"})
# Of those, the words that are names as well: the name that signs may be one ("Thanks,\nNada"). No other: a
# name line of "Still Broken" or "Refund" under the numbers kept the ticket closed, and no one read it.
_ALSO_NAMES = frozenset({"nada", "ma"})
_NEVER_NAMES = _NOT_SIGNING - _ALSO_NAMES


def _signed(lines: list[str]) -> bool:
    """The lines under a sign-off are a signature: at most two lines of a name, or a corporate signature with
    a name first and a contact line ("Anna Smith\nSupport Lead\nACME Corp\nPhone +1 555 1234").

    Only the shapes of names and contact details, in few short lines: a word
    in lower case that is not a title's small word ("Call me back", "it broke
    again") is something to read, and so are capitalised words that say
    something ("Still Broken", "Refund Please"). Three lines of capitalised
    words and no phone, mail, web or postal address are words, not a title
    and a company ("Anna\nACME Corp\nCancel My Subscription Now").
    """
    if not lines:
        return True
    if _NEVER_NAMES & _folded_words(lines[0]) or any(_NOT_SIGNING & _folded_words(line) for line in lines[1:]):
        return False
    if len(lines) <= 2 and all(len(line) <= 40 and (_name_like(line.split()) or _caseless_name(line))
                               for line in lines):
        return True
    kinds = [_signature_line(line) for line in lines]
    return (len(lines) <= _SIGNATURE_LINES and None not in kinds and kinds[0] == "name"
            and kinds.count("name") <= _SIGNATURE_NAMES and "contact" in kinds)


def _signature_line(line: str) -> str | None:
    """ "name" for a name, title or company; "contact" for a phone, a mail or web address, a postal address;
    None for anything else (a sentence)."""
    if len(line) > 80:
        return None
    kinds = set()
    for part in _SIGNATURE_PARTS.split(line.strip()):
        part = part.strip()
        if len(part) > 60:
            return None
        if (_PHONE.match(part) and sum(c.isdigit() for c in part) >= 6) or _EMAIL.match(part) or _WEB.match(part):
            kinds.add("contact")
            continue
        words = [w.rstrip(",") for w in part.split()]
        words = [w for w in words if w]
        named = [w for w in words if w.casefold() not in _NAME_GLUE]
        if not named or not (words[0][0].isupper() or words[0][0].isdigit()) or len(words) > 8:
            return None
        if _name_like(named) and len(part) <= 40:
            kinds.add("name")
        elif (any(w[0].isdigit() for w in named) and sum(bool(_NAME_WORD.match(w)) for w in named) >= 1
              and all(_NAME_WORD.match(w) and w[0].isupper() or _STREET_NUMBER.match(w) for w in named)
              and ("," in part or words[0][0].isdigit() or any(map(_STREET.search, named)))):
            # A postal address: "12 Main St", "Hauptstr. 5, 10115 Berlin"; not "Error 404 Again".
            kinds.add("contact")
        else:
            return None
    return "contact" if "contact" in kinds else "name"


def _ascii_digits(text: str) -> str:
    """`text` with every decimal digit (Unicode Nd: Arabic-Indic, Persian, Devanagari, ...) as its ASCII one.

    Regular expressions' \\d matches those digits and int() reads them, but [1-5] does not: read as they
    are, "٥ ٤ ٥" would be "5 4 5" off the scale. PRODUCT.md asks for three numbers, in whatever digits.
    """
    if text.isascii():
        return text
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() and not c.isascii() else c for c in text)


def _rating_of(text: str, shape: re.Pattern) -> tuple[int, ...] | None:
    """Three numbers of `shape` (1-5 for _RATING: usefulness, speed, politeness) and nothing else; labels allowed.

    A label decides where its number goes ("Speed: 1 / Usefulness: 5 /
    Politeness: 4" is 5 1 4); an unlabelled number takes its place in the
    order PRODUCT.md asks for. Labels lead their numbers, or trail them
    when the reply ends with one ("5 useful, 1 fast, 4 polite"). Labels that
    leave a field empty or fill one twice are not a rating: the reply then
    reopens the ticket and a person reads it. A shape of fewer numbers
    (_PARTIAL_SHAPE) reads them only when each has a label of its own, and
    gives them as written.
    """
    # NFKC: full-width digits and punctuation from CJK input ("５，４，５") are
    # the ASCII ones; other scripts' digits ("٥ ٤ ٥") are read by their value.
    text = _ascii_digits(unicodedata.normalize("NFKC", text or ""))
    # Labels blanked to spaces of their own length keep the offsets of the numbers.
    text = _RATING_PREFIX.sub(lambda found: " " * len(found.group()), text, count=1)
    labels = list(_RATING_LABELS.finditer(text))
    m = shape.match(_RATING_LABELS.sub(lambda found: " " * len(found.group()), text))
    if not m:
        return None
    found = [i for i in range(1, shape.groups + 1) if m.group(i) is not None]
    numbers = [int(m.group(i)) for i in found]
    # In text order: (offset, "number", its position) and (offset, "label", its field).
    tokens = sorted([(m.start(i), "number", n) for n, i in enumerate(found)]
                    + [(label.start(), "label", _RATING_FIELD[label.group(1).lower()]) for label in labels])
    if tokens[-1][1] == "label":
        tokens.reverse()
    fields: list[int | None] = [0, 1, 2] if len(numbers) == 3 else [None] * len(numbers)
    pending = None
    for _, what, value in tokens:
        if what == "label":
            if pending is not None:
                return None     # two labels in a row
            pending = value
        elif pending is not None:
            fields[value], pending = pending, None
    if pending is not None or None in fields or len(set(fields)) != len(fields):
        return None
    if len(numbers) < 3:
        return tuple(numbers)
    by_field = dict(zip(fields, numbers))
    return by_field[0], by_field[1], by_field[2]


@dataclass(frozen=True)
class CustomerEffect:
    """What a customer-side reply does: kind is accepted | rejected | objected | reopened | rated | none.

    `objected`: a follower's reply to a proposed solution that says something (only the requester rejects).

    `unchanged_because`: for the history and the assignee, why a reply left the ticket as it was
    (a proposal standing, a closed ticket staying closed). `rating`: the numbers of a rating (kind
    rated, or accepted when the acceptance carries one), also of one that is not counted (kind none).
    """
    kind: str
    to_status: Status | None = None
    rating: tuple[int, ...] | None = None
    unchanged_because: str | None = None
    ask_again: bool = False         # a rating not on the scale: the requester is told how to write one
    signed_at_length: bool = False  # a rating with more than a name under it: the assignee reads those lines


def customer_reply_effect(status: Status, text: str, accept_words, *, by_requester: bool = True,
                          has_files: bool = False) -> CustomerEffect:
    """What a reply from the ticket's customer side does to it; `text` is the reply without its quote."""
    if status == Status.SOLUTION_PROPOSED:
        # A reply with nothing of its own (only the quoted proposal, a send
        # pressed by mistake) gives no reason to reject it (PRODUCT.md: "its
        # text is the reason"); a screenshot alone does.
        if not (text or "").strip() and not has_files:
            return CustomerEffect("none", unchanged_because="the reply has no text of its own")
        # PRODUCT.md: "Only the customer accepts a proposed solution": a Cc'd
        # colleague's "ok" or thanks do not close the requester's ticket, and
        # object to nothing (the proposal and its wait stand). Anything else
        # they say is "a customer reply ... that is not an acceptance", which
        # "moves it back to open, recording the reason" ("The lifecycle"):
        # left in solution_proposed with its wait stopped, an objection had
        # no timer at all; open runs the desk's respond clock.
        if not by_requester:
            if not has_files and (is_only_courtesy(text) or is_acceptance(text, accept_words)):
                return CustomerEffect("none", unchanged_because="only the requester accepts or rejects a proposed "
                                      "solution")
            return CustomerEffect("objected", Status.OPEN)
        if is_acceptance(text, accept_words):
            # The numbers the closing mail would ask for, given with the acceptance ("Yes, thanks!" over
            # "5 5 4"): the rating, so the customer is thanked for it instead of asked for it again.
            found = _rating_and_closing(text, _RATING, accept_words)
            return CustomerEffect("accepted", Status.CLOSED, found[0] if found else None)
        return CustomerEffect("rejected", Status.OPEN)
    if status == Status.CLOSED:
        # README: a reply with no text of its own changes nothing. The closing
        # mail asks for "what is still wrong" to reopen; thanks say nothing is.
        if not has_files and not (text or "").strip():
            return CustomerEffect("none", unchanged_because="the reply has no text of its own")
        if (found := _rating_and_closing(text, _RATING, accept_words)) is not None:
            rating, closing = found
            # PRODUCT.md: the closing mail asks the requester for the rating; a
            # Cc'd colleague was not asked, and counting them would let one
            # ticket weigh several times in `ticketd report`.
            if not by_requester:
                return CustomerEffect("none", rating=rating, unchanged_because="only the requester rates the "
                                      "ticket; this rating is not counted")
            # Lines read as a title, a company or an address are only read so by their shape: a person
            # reads them, as they read thanks on a closed ticket.
            return CustomerEffect("rated", None, rating, signed_at_length=_read_by_a_person(closing))
        if (misread := misread_rating(text)) is not None:
            # "10 10 10" is delight, not what is still wrong: reopening would
            # put a solved ticket back in an agent's queue. The requester, who
            # meant to rate, is asked again (ask_again); anyone else's numbers
            # are not counted anyway.
            return CustomerEffect("none", rating=misread, ask_again=by_requester,
                                  unchanged_because="a rating is three numbers from 1 (poor) to 5 (excellent); "
                                  "these are not counted")
        if not has_files and is_only_courtesy(text):
            return CustomerEffect("none", unchanged_because="the reply is only thanks or a greeting")
        if not has_files and is_acceptance(text, accept_words):
            # "Yes, it works now" to the reminder, arriving after the close: it confirms the close, as
            # the reminder asked, and says nothing is still wrong.
            return CustomerEffect("none", unchanged_because="the reply accepts the solution, and the ticket is "
                                  "closed already")
        return CustomerEffect("reopened", Status.OPEN)
    if status == Status.WAITING_CUSTOMER:
        # As for a proposal: a reply with nothing of its own (only the quoted question, a send pressed by
        # mistake) answers nothing, and the reminder and auto-close go on; a file alone may be the answer.
        if not (text or "").strip() and not has_files:
            return CustomerEffect("none", unchanged_because="the reply has no text of its own")
        return CustomerEffect("reopened", Status.OPEN)
    return CustomerEffect("none")


# ---------------------------------------------------------------- key facts

KEY_FACTS = ("type", "source", "scale", "reproducible")
_FACT_LINE = re.compile(r"^\s*(" + "|".join(KEY_FACTS) + r")\s*:\s*(.*?)\s*$", re.IGNORECASE)
# A CJK input method types the colon full-width ("Type：bug", U+FF1A), and perhaps the name too.
_FACT_NAME = re.compile(r"^[^:\uff1a]{1,40}[:\uff1a]")


def _fact(line: str) -> re.Match | None:
    """`line` as a key fact: the name and colon read in NFKC (full-width forms as ASCII), the value as written."""
    head = _FACT_NAME.match(line)
    if head is None:
        return None
    return _FACT_LINE.match(unicodedata.normalize("NFKC", head.group()[:-1]) + ":" + line[head.end():])


_TYPE_SYNONYMS = {"feature": "idea", "feature request": "idea", "suggestion": "idea", "defect": "bug",
                  "error": "bug", "problem": "bug", "question": "question", "idea": "idea", "bug": "bug"}


def type_named(words: str) -> str | None:
    """The ticket type `words` name (`Type:` key facts and `#type` alike: "Feature request" is idea), or None."""
    return _TYPE_SYNONYMS.get(_normalise(words))


@dataclass(frozen=True)
class KeyFacts:
    values: dict                    # field -> value, only the ones given and valid
    ignored: tuple[str, ...] = ()   # lines that named a fact with a value we cannot use


def parse_key_facts(text: str) -> KeyFacts:
    """`Type:`, `Source:`, `Scale:`, `Reproducible:` lines at the top of the first mail, perhaps under a greeting.

    PRODUCT.md: "at the top of the first mail". People greet first ("Hi
    team,"): one greeting line before the facts keeps them at the top; any
    other text before them makes them text.
    """
    values: dict[str, str] = {}
    ignored: list[str] = []
    lines = [line for line in (text or "").splitlines() if line.strip()]
    # HTML mail written a paragraph per line (<p>Type: bug</p><p>Source: web</p>,
    # Outlook's MsoNormal) reads as facts with blank lines between them.
    if lines and not _fact(lines[0]) and _greets(unicodedata.normalize("NFKC", lines[0]).strip()):
        lines = lines[1:]
    for line in lines:
        m = _fact(line)
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key == "type":
            typed = type_named(value)
            if typed in TYPES:
                values["type"] = typed
            else:
                ignored.append(line.strip())
        elif value:
            values[key] = value[:500]
    return KeyFacts(values, tuple(ignored))


# ---------------------------------------------------------------- times in commands

# One or more parts, as rules.yaml's durations combine: `3d`, `1h30m`, `2w 3d`.
_DURATION = re.compile(r"^(?:\d{1,4}\s*[smhdw]\s*)+$", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d{1,4})\s*([smhdw])", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(value: str, now: datetime, zone: str = "UTC") -> datetime | None:
    """A duration (`3d`, `12h`, `2w`, `1h30m`) from now, or an ISO date / date-time; None if neither.

    A bare date means the start of that day and a date-time without an
    offset is a wall-clock time, both in `zone` (the writer's time zone:
    rules.yaml's agent or desk `timezone`); an offset (`+01:00`, `Z`) says
    itself. The result is naive UTC like the rest of the store.
    """
    value = (value or "").strip()
    try:
        return _parse_when(value, now, ZoneInfo(zone))
    except OverflowError:   # past year 9999 or before year 1 (a long duration, a zone shift at the edge)
        return None


def _parse_when(value: str, now: datetime, zone: ZoneInfo) -> datetime | None:
    if _DURATION.match(value):
        return now + timedelta(seconds=sum(int(n) * _UNIT_SECONDS[unit.lower()]
                                           for n, unit in _DURATION_PART.findall(value)))
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            parsed = datetime.combine(date.fromisoformat(value), time())
        except ValueError:
            return None
    else:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC).replace(tzinfo=None)

