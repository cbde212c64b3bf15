"""MAIL and RCPT arguments read by the receiver's pattern give what aiosmtpd's own address parser gives."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from aiosmtpd.smtp import SMTP

from ingest.smtp import plain_path

# aiosmtpd's reading (the stdlib's RFC 5322 address parser), for comparison: its only state is the limit.
_AIOSMTPD = SimpleNamespace(local_part_limit=0)

COMMON = [
    "<cust@example.org>", "<cust@example.org> SIZE=1234", "<cust@example.org> SIZE=1234 BODY=8BITMIME SMTPUTF8",
    "<first.last+tag@mail.example.co.uk>", "<bounce-123=cust=example.org@lists.example.net> BODY=8BITMIME",
    "<support+4711@example.com>", "<o'neil@example.ie>", "<a!#$%&'*/=?^_`{|}~-@x-y.example>", "<postmaster@a>",
]
ODD = [
    "", "<>", "<> SIZE=10", "cust@example.org", " <cust@example.org>", "<cust@example.org>SIZE=1",
    "<cust@example.org>  ", "<cust@example.org> (comment) SIZE=1", "<cust@example.org>\tSIZE=1",
    '<"quoted local"@example.org>', "<cust@[192.0.2.1]>", "<@relay.example:cust@example.org>", "<a..b@example.org>",
    "<.a@example.org>", "<a.@example.org>", "<cust@example..org>", "<cust@.example.org>", "<cust@example.org.>",
    "<cust@exämple.org>", "<cüst@example.org>", "<cust@example.org", "<cust example.org>", "<cust@@example.org>",
    "<cust@example.org> > x", "<cust@example.org> (", "<a(b)@example.org>", "<cust@-example.org>",
    "<cust@example.org>\x0bSIZE=1", "<cust@example.org> \tSIZE=1", "<cust@example.org>\r\n",
    "<cust@example.org>\n", "<cust@example.org> \u2003SIZE=1", "<cust@example.org> \x1cSIZE=1", "<cust@example.org> \n",
]


def _aiosmtpd(arg: str):
    return SMTP._getaddr(_AIOSMTPD, arg)


@pytest.mark.parametrize("arg", COMMON)
def test_the_paths_senders_write_are_read_by_the_pattern_as_aiosmtpd_reads_them(arg):
    assert plain_path(arg) is not None
    assert plain_path(arg) == _aiosmtpd(arg)


@pytest.mark.parametrize("arg", ODD)
def test_any_other_argument_is_left_to_aiosmtpd_or_read_alike(arg):
    assert plain_path(arg) in (None, _aiosmtpd(arg))


def _random_path(rng: random.Random) -> str:
    """A MAIL or RCPT argument near the common form, with now and then a character that leaves it."""
    def part(chars: str) -> str:
        return "".join(rng.choice(chars) for _ in range(rng.randint(0, 6)))
    atext, odd = "aZ09-+_=!#'~", ".@<>() \t\"[]:;,\\\x0bé"
    local = part(atext + (odd if rng.random() < 0.3 else "."))
    domain = part("az09-." + (odd if rng.random() < 0.3 else ""))
    rest = rng.choice(["", " SIZE=9", "  X", "(c) Y", " (c) Z", "\t", " ", ">", "\n", " \x85X", " \xa0X"])
    return f"<{local}@{domain}>{rest}"


def test_random_arguments_are_read_alike_whenever_the_pattern_takes_them():
    rng = random.Random(5321)
    taken = 0
    for _ in range(30_000):
        arg = _random_path(rng)
        plain = plain_path(arg)
        if plain is not None:
            taken += 1
            assert plain == _aiosmtpd(arg), arg
    assert taken > 1000   # the comparison covered real work, not only arguments left to aiosmtpd
