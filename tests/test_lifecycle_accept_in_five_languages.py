"""An acceptance says it worked, or asks to close, in each language of the default accept words, and may greet
first as people do in those languages.

PRODUCT.md "Customers by email": the accept words (default: accept, yes, ok and
their Russian, Spanish, Italian and Chinese equivalents) close the ticket; any
other reply rejects the proposal. "Yes, it worked, thanks" accepted while
"Да, помогло, спасибо!" and "Sí, funcionó" rejected it and reopened the ticket.
"""

from __future__ import annotations

import pytest

from tests.desk import build_mail, open_desk
from tests.test_lifecycle_doubtful_answers import _proposed
from ticketd.domain.lifecycle import is_acceptance
from ticketd.settings import DEFAULT_ACCEPT_WORDS

CUSTOMER = "cust@example.org"

# Each was read as a rejection, the ticket reopened and its assignee told the solution failed.
ACCEPTING = [
    "Да, помогло, спасибо!\n", "Да, проблема решена.\n", "Да, можно закрывать.\n", "Да, всё в порядке\n",
    "Sí, funcionó, gracias\n", "Sí, problema resuelto\n", "Sí, pueden cerrar el ticket.\n",
    "Sì, ha funzionato, grazie!\n", "Sì, tutto bene\n", "Sì, potete chiudere il ticket\n",
    "好的，没问题了\n", "好的，可以关闭了。\n", "是的，问题解决了，谢谢！\n",
    "Yes, that helped, thanks!\n", "Yes, please close.\n", "OK, please close this ticket\n",
]
# A greeting line in the customer's language over the answer.
GREETED = [
    "Hola a todos,\n\nsí, funciona\n", "Buenas tardes,\nSí, gracias\n", "Hola equipo,\nsí\n",
    "Ciao a tutti,\nva bene, grazie\n", "Buonasera,\n\nSì\n", "Buon pomeriggio,\nok\n",
    "大家好，\n好的\n", "Добрый день, коллеги!\nДа, спасибо\n", "Добрый вечер!\nДа\n",
    "Dear Sir or Madam,\n\nYes, it works now.\n", "Dear Sir/Madam,\nyes\n",
]


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


@pytest.mark.parametrize("reply", ACCEPTING + GREETED)
def test_an_acceptance_in_the_customers_language_closes_the_ticket(desk, reply):
    tid = _proposed(desk)
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, reply)
    assert desk.ticket(tid)["status"] == "closed"
    [accepted] = desk.events(tid, "accepted")
    assert (accepted["from_value"], accepted["actor"]) == ("solution_proposed", CUSTOMER)
    assert desk.events(tid, "rejected") == []


# Each is the accept word turned round, and must stay a rejection with its text as the reason.
STILL_REJECTING = [
    "Да, но не помогло\n", "Да, можно закрывать? Нет, ошибка осталась\n", "Sí, pero no funcionó\n",
    "Sì, ma non ha funzionato\n", "好的，但是还是不行\n", "Yes, please close. No wait, it still fails\n",
    "Ok, please call me\n", "Hola a todos,\nsigue sin funcionar\n", "大家好，\n还是不行\n",
]


@pytest.mark.parametrize("reply", STILL_REJECTING)
def test_the_accept_word_turned_round_rejects_in_every_language(reply):
    assert not is_acceptance(reply, DEFAULT_ACCEPT_WORDS)


def test_a_turned_round_answer_reopens_with_its_text_as_the_reason(desk):
    tid = _proposed(desk)
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, "Да, но не помогло\n")
    assert desk.ticket(tid)["status"] == "open"
    assert "Да, но не помогло" in desk.events(tid, "rejected")[-1]["reason"]


def test_a_greeting_in_the_customers_language_keeps_key_facts_at_the_top(desk):
    """PRODUCT.md "Key facts": at the top of the first mail; one greeting line over them keeps them there
    (lifecycle.parse_key_facts), whichever of the desk's languages it greets in."""
    desk.send(build_mail(CUSTOMER, "Hola a todos,\n\nType: bug\nSource: tienda web\n\nEl pago falla.\n"))
    ticket = desk.ticket()
    assert (ticket["type"], ticket["source"]) == ("bug", "tienda web")
