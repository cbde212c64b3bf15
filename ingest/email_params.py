"""A linear splitter for header parameters, standing in for the stdlib's quadratic one (CPython gh-136063).

`email.message.Message.get_param`, `get_params`, `get_filename`,
`get_boundary` and `get_content_charset` split a Content-Type or
Content-Disposition value at its semicolons with `_parseparam`, which
counts the quotes from the parameter's start again at every semicolon and
copies the rest of the value at every step. A value holding an unclosed
quote and many semicolons (`text/plain; a=";;;;…`) takes seconds at 20 kB
and minutes at a megabyte: one such mail held a parsing process for the
whole `max_prepare_seconds`, twice, and every mail behind it waited. The
Python this runs on may lack the upstream fix, so `install` puts this
splitter in its place, for every parser in the process (ingest, the bounce
readers of outbound). It gives the same list as the stdlib's for every
input up to MAX_FIELD_CHARS (tests/test_email_params.py compares them), in
one pass.

One pass over a field of megabytes is still seconds, and the stdlib splits
a field again at every read of a parameter: of a longer field only the
first MAX_FIELD_CHARS are split. No mailer writes one (the longest in the
corpus has 246 characters), and parse_mail refuses such a mail whole
(MailTooComplex, so it is quarantined with the reason).
"""

from __future__ import annotations

import email.message
import re

# A semicolon, a quote, or a quote after a backslash, which the stdlib does
# not count as opening or closing a quoted string.
_MARKS = re.compile(r'\\"|"|;')

STDLIB_PARSEPARAM = getattr(email.message, "_parseparam", None)

MAX_FIELD_CHARS = 64 * 1024


def split_params(value: object) -> list[str]:
    """`value` (a str, or a compat32 Header; its first MAX_FIELD_CHARS) split into parameters as the stdlib splits them.

    The first item is the value before the first semicolon (the media type);
    each later one a `name=value` with the name lower-cased and blanks
    around both taken off. A semicolon inside a quoted string splits nothing.
    """
    text = str(value)[:MAX_FIELD_CHARS]
    return [_tidy(param) for param in (text.split(";") if '"' not in text else _quoted_split(text))]


def _quoted_split(text: str) -> list[str]:
    """`text` cut at each semicolon outside a quoted string."""
    text = ";" + text
    params = []
    start = 0   # where the semicolon that opens the next parameter stands
    while start < len(text) and text[start] == ";":
        begin, end, quoted = start + 1, len(text), False
        for mark in _MARKS.finditer(text, begin):
            if mark.group() == '"':
                quoted = not quoted
            elif mark.group() == ";" and not quoted:
                end = mark.start()
                break
        params.append(text[begin:end])
        start = end
    return params


def _tidy(param: str) -> str:
    """A parameter as the stdlib keeps it: its name lower-cased, blanks around the name and value taken off."""
    if "=" in param:
        name, _, rest = param.partition("=")
        param = name.strip().lower() + "=" + rest.strip()
    return param.strip()


def install() -> None:
    """Make the stdlib's Message use `split_params` (where it has the splitter to replace)."""
    if STDLIB_PARSEPARAM is not None:
        email.message._parseparam = split_params
