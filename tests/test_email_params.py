"""The linear parameter splitter gives what the stdlib's gives, without its quadratic time (CPython gh-136063)."""

from __future__ import annotations

import email
import email.message
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.email_params import MAX_FIELD_CHARS, STDLIB_PARSEPARAM, split_params
from ingest.parse import MailTooComplex, parse_mail

# What the splitter reads, and what is only text to it, in every mix.
_PIECES = st.sampled_from([";", '"', "\\", "=", " ", "a", "B", "\t", "'", "*", "é"])


@given(st.lists(_PIECES, max_size=40).map("".join))
@settings(max_examples=3000, deadline=None)
def test_the_same_parameters_as_the_stdlib_splitter_for_any_value(value):
    assert split_params(value) == STDLIB_PARSEPARAM(value)


def test_the_same_parameters_for_the_shapes_mail_brings():
    for value in ('text/plain; charset="utf-8"; format=flowed', 'attachment; filename="a;b.pdf"; size=3',
                  "multipart/mixed;\r\n boundary=\"=_x;y\"", "text/plain; name*0*=utf-8''%E2%82%AC; name*1=x",
                  'a; b="x\\"; c=d"; e=f', 'a;;b', ';', '', 'text/plain; A = "B" ; C'):
        assert split_params(value) == STDLIB_PARSEPARAM(value)


def test_a_message_reads_its_parameters_through_it():
    assert email.message._parseparam is split_params
    msg = email.message_from_string('Content-Type: text/plain; charset="koi8-r"; a="x;y"\n\nhi\n')
    assert msg.get_content_charset() == "koi8-r" and msg.get_param("a") == "x;y"


def _mail_with_parameter_fields(semicolons: int) -> bytes:
    """An unclosed quote, then semicolons, in the Content-Type and the Content-Disposition."""
    return (f"From: a@example.org\r\nSubject: hi\r\nContent-Type: text/plain; a=\"{';' * semicolons}\r\n"
            f"Content-Disposition: attachment; filename=\"{';' * semicolons}\r\n\r\nhello\r\n").encode()


def test_an_unclosed_quote_before_many_semicolons_parses_at_once():
    """60 000 semicolons after an open quote took the stdlib's splitter about 8 s per field to parse here
    (80 000: 14 s); the bound is far above one pass."""
    began = time.perf_counter()
    [sent] = parse_mail(_mail_with_parameter_fields(60_000)).attachments
    assert time.perf_counter() - began < 2
    assert sent.data == b"hello\r\n"


def test_a_parameter_field_longer_than_any_mailer_writes_refuses_the_mail_at_once():
    """One pass over megabytes is still seconds, at every read of a parameter: past MAX_FIELD_CHARS the mail
    is refused whole (quarantined with the reason), and only that much is ever split."""
    began = time.perf_counter()
    with pytest.raises(MailTooComplex, match=f"a Content-Type field of 5000015 characters, more than {MAX_FIELD_CHARS}"):
        parse_mail(_mail_with_parameter_fields(5_000_000))
    assert time.perf_counter() - began < 5
    assert split_params("a; b=" + "x" * (2 * MAX_FIELD_CHARS)) == ["a", "b=" + "x" * (MAX_FIELD_CHARS - 5)]
