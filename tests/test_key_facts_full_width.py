"""Key facts typed with a CJK input method: full-width colons and letters ("Type：bug") are the ASCII ones.

PRODUCT.md "Customers by email": lines `Type:`, `Source:`, `Scale:`,
`Reproducible:` at the top of the first mail fill the ticket's fields. A
Chinese customer's input method writes the colon as "：" (U+FF1A), and these
facts were left as text: the ticket had no type and routes on `type` missed it.
"""

from __future__ import annotations

import pytest

from tests.desk import build_mail, open_desk

CUSTOMER = "cust@example.org"


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def test_key_facts_with_full_width_colons_fill_the_fields(desk):
    desk.send(build_mail(CUSTOMER, "您好！\n\nType：bug\nSource：网站\nScale： 所有用户\n\uff32eproducible：是\n\n"
                                   "付款页面打不开。\n"))
    ticket = desk.ticket()
    assert (ticket["type"], ticket["source"], ticket["scale"], ticket["reproducible"]) == (
        "bug", "网站", "所有用户", "是")
    [facts] = desk.events(ticket["id"], "key_facts")
    assert facts["to_value"] == "type=bug; source=网站; scale=所有用户; reproducible=是"


def test_full_width_key_facts_in_a_reply_change_nothing(desk):
    desk.send(build_mail(CUSTOMER, "付款页面打不开。\n"))
    ticket = desk.ticket()
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, "Type：idea\nSource：app\n\n还有一个问题\n")
    ticket = desk.ticket(ticket["id"])
    assert (ticket["type"], ticket["source"]) == (None, None)
    assert desk.events(ticket["id"], "key_facts") == []
