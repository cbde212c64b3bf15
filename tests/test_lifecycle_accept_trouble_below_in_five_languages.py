"""Under an answer that says it worked, a line that says it did not is a rejection, in each language of the
default accept words.

PRODUCT.md "Customers by email": any reply that is no acceptance rejects the proposal, and its text is the
reason. "Ok,\nthe printer still does not work" rejects (README, "Customers"); "没问题\n但是打印机还是不工作"
("no problem / but the printer still does not work"), "Сработало\nХотя иногда зависает" ("it worked / though it
sometimes hangs") or "Risolto\nperò la stampante non stampa" closed the ticket: the lines under the answer were
read for English words of a trouble left only, and Chinese has no spaces to read words by.
"""

from __future__ import annotations

import pytest

from tests.desk import open_desk
from tests.test_lifecycle_doubtful_answers import _proposed
from ticketd.domain.lifecycle import is_acceptance
from ticketd.settings import DEFAULT_ACCEPT_WORDS

CUSTOMER = "cust@example.org"

TURNED_ROUND_BELOW = [
    "没问题\n但是打印机还是不工作\n", "成功了\n但是过了一天又坏了\n", "有帮助\n但是没有完全解决\n", "好的\n还是不行\n",
    "Сработало\nХотя иногда зависает\n", "Помогло\nОднако после перезагрузки опять\n", "Всё в порядке\nкроме печати\n",
    "Funcionó\nSolo un día, luego volvió a fallar\n", "Resuelto\nBueno, casi: a veces se cuelga todavía\n",
    "Ha funzionato\nPoi si è bloccato di nuovo\n", "Risolto\nperò la stampante non stampa\n",
    "Tutto bene\ntranne la stampa a colori\n", "Sì\nla stampante non stampa\n",
]


@pytest.mark.parametrize("reply", TURNED_ROUND_BELOW)
def test_a_trouble_under_the_answer_rejects_in_every_language(reply):
    assert not is_acceptance(reply, DEFAULT_ACCEPT_WORDS)


# Thanks, news and a name under the answer keep it an acceptance.
STILL_ACCEPTING = [
    "Да, помогло\nСпасибо большое!\nИван\n", "Да\nЕщё раз спасибо\n", "Помогло\nНовую версию уже поставили\n",
    "Sí, funcionó\nMuchas gracias\nAna\n", "Sí\nYa instalé la versión nueva\n",
    "Sì, ha funzionato\nGrazie mille\nMarco\n", "Sì\nGrazie ancora\n", "Risolto\nAbbiamo installato il nuovo driver\n",
    "好的\n谢谢你们的帮助\n张伟\n", "好的，没问题了\n谢谢\n", "好的\n新版本已经安装好了\n",
]


@pytest.mark.parametrize("reply", STILL_ACCEPTING)
def test_thanks_and_news_under_the_answer_still_accept(reply):
    assert is_acceptance(reply, DEFAULT_ACCEPT_WORDS)


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def test_a_trouble_under_the_answer_reopens_with_its_text_as_the_reason(desk):
    tid = _proposed(desk)
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, "没问题\n但是打印机还是不工作\n")
    assert desk.ticket(tid)["status"] == "open"
    assert desk.events(tid, "accepted") == []
    assert "打印机还是不工作" in desk.events(tid, "rejected")[-1]["reason"]
