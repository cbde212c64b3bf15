"""A rating typed with a Chinese input method ends with its full stop ("5，4，5。") and may be signed with a name
in a script without capitals ("谢谢\n张伟"), and it greets in the customer's language.

PRODUCT.md "Customers by email": a reply with three numbers 1 to 5 is stored as
the rating, and a reply to a closed ticket reopens it "unless it is only a
rating". These reopened the ticket, gave it back to the agent's queue and lost
the numbers.
"""

from __future__ import annotations

import pytest

from tests.desk import body_text, open_desk
from tests.test_lifecycle_doubtful_answers import ALICE, _closed
from ticketd.domain.lifecycle import parse_rating

CUSTOMER = "cust@example.org"


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


@pytest.mark.parametrize("reply", ["5，4，5。\n", "\uff15\u3001\uff14\u3001\uff15\u3002\n", "5 4 5。\n谢谢\n",
                                   "大家好，\n5 4 5\n", "Hola a todos,\n5, 4, 5\n"])
def test_a_rating_with_ideographic_punctuation_or_a_local_greeting_is_stored(desk, reply):
    tid = _closed(desk)
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, reply)
    assert [(r["usefulness"], r["speed"], r["politeness"]) for r in desk.ratings(tid)] == [(5, 4, 5)]
    assert desk.ticket(tid)["status"] == "closed" and desk.events(tid, "reopened") == []


def test_a_rating_signed_with_a_name_without_capitals_is_stored_and_the_assignee_reads_the_name(desk):
    """A name in Han script has no capitals to show it is one: the rating is stored, the ticket stays
    closed, and the assignee reads the lines under the numbers as for a signature at length."""
    tid = _closed(desk)
    told = len(desk.inbox(ALICE))
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, "5 4 5\n谢谢\n张伟\n")
    assert [(r["usefulness"], r["speed"], r["politeness"]) for r in desk.ratings(tid)] == [(5, 4, 5)]
    assert desk.ticket(tid)["status"] == "closed"
    assert len(desk.inbox(ALICE)) == told + 1 and "张伟" in body_text(desk.last(ALICE))


@pytest.mark.parametrize("reply", ["5 4 5\n谢谢\n还是不行\n", "5 4 5\n谢谢\n打印机又坏了\n", "5 4 5\n谢谢\n不行\n",
                                   "5 4 5\n谢谢\n张伟\n还是不行\n"])
def test_a_trouble_in_han_script_under_the_rating_is_no_name(reply):
    assert parse_rating(reply) is None
