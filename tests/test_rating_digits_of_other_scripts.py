"""A rating written with the digits of the writer's script (Arabic-Indic, Persian, Devanagari) is a rating."""

from __future__ import annotations

import pytest

from tests.desk import body_text, open_desk
from tests.test_lifecycle_doubtful_answers import _closed

CUSTOMER = "cust@example.org"


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


@pytest.mark.parametrize("reply", ["\u0665 \u0664 \u0665\n",          # Arabic-Indic: ٥ ٤ ٥
                                   "\u06f5\u060c \u06f4\u060c \u06f5\n",  # Persian, with Arabic commas: ۵، ۴، ۵
                                   "\u096b \u096a \u096b\n",          # Devanagari: ५ ४ ५
                                   "\uff15\u3001\uff14\u3001\uff15\n"])  # CJK input, ideographic commas: ５、４、５
def test_a_rating_in_the_digits_of_another_script_is_stored(desk, reply):
    """PRODUCT.md: a reply with three numbers 1 to 5 is stored as the rating. These digits were read as
    5 4 5 and refused as off the scale: the requester was told "We could not count "5 4 5"", with
    "5 4 5" as the example of how to rate."""
    tid = _closed(desk)
    asked = len(desk.inbox(CUSTOMER))
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, reply)
    assert [(r["usefulness"], r["speed"], r["politeness"]) for r in desk.ratings(tid)] == [(5, 4, 5)]
    assert desk.events(tid, "rated")[-1]["to_value"] == "5 4 5"
    assert desk.events(tid, "rating_not_counted") == [] and desk.ticket(tid)["status"] == "closed"
    assert len(desk.inbox(CUSTOMER)) == asked


def test_digits_of_another_script_off_the_scale_are_refused_as_written(desk):
    """٩ ٩ ٩ is 9 9 9: not counted, and the requester is told how to rate; the ticket stays closed."""
    tid = _closed(desk)
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, "\u0669 \u0669 \u0669\n")
    assert desk.ratings(tid) == [] and desk.ticket(tid)["status"] == "closed"
    assert desk.events(tid, "rating_not_counted")[-1]["to_value"] == "9 9 9"
    assert 'We could not count "9 9 9"' in body_text(desk.last(CUSTOMER))
