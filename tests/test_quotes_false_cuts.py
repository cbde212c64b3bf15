"""Reply stripping keeps the writer's own words that look like a signature or a quote, and still cuts the real ones."""

from __future__ import annotations

import time

import pytest

from ingest.quotes import strip_reply


@pytest.mark.parametrize("text", [
    # A bare "--" as a divider, with sentences under it.
    "The printer is broken.\n--\nAlso the scanner does not work, it makes a noise and then stops.\n",
    "Printer broken.\n\n--\n\nDer Drucker druckt nur leere Seiten.\n",
    "We tried two things.\n--\nFirst we restarted it.\nThen we updated the driver.\nNeither helped.\n",
    # A list under it.
    "Steps so far:\n\n--\n1. Unplug it\n2. Plug it back in\n3. Nothing happens\n",
    "Step one: unplug it.\n-- step two: plug it back in\nStill broken.\n",
    # "--" introduced by a colon, or used twice as a divider around a block.
    "Here is the log:\n--\nerror 1\nerror 2\n",
    "Here is the log\n--\nerror 1\nerror 2\n--\nPlease help.\n",
    # A rule of dashes under a heading, and a heading set between rules.
    "Problem\n-------\nThe printer is broken.\n\nSteps\n_______\nI pressed print.\n",
    "Thanks.\n\n-- Part two --\nThe scanner is broken too.\n",
])
def test_a_divider_in_the_writers_text_is_not_a_signature(text):
    assert strip_reply(text) == text.strip()


def test_a_bare_divider_far_from_the_end_is_not_a_signature():
    text = "Intro\n--\n" + "".join(f"Order {n} arrived\n" for n in range(30))
    assert strip_reply(text) == text.strip()


@pytest.mark.parametrize("text, expected", [
    # Many mailers drop the space of RFC 3676's "-- ": a short block at the end is a signature.
    ("Thanks for the fix.\n\n--\nJohn Doe\nSupport Engineer, Acme Inc.\n+1 555 0100\n", "Thanks for the fix."),
    ("Works now.\n--\nJane Roe\nhttps://example.com\n", "Works now."),
    # ... and so is one over the quoted history.
    ("Yes, please.\n\n--\nBob\n\nOn Mon, 3 Mar 2025 at 09:12, Support <support@example.com> wrote:\n> Shall we?\n",
     "Yes, please."),
    # A company's signature opened by a rule, its disclaimer under the contact lines.
    ("Danke!\n\n________________________________\nMit freundlichen Grüßen\nMax Muster\n\nBeispiel GmbH\n"
     "Musterstraße 1\n12345 Musterstadt\nTel. +49 30 1234567\nwww.example.com\n\n"
     "Diese E-Mail enthält vertrauliche Informationen. Wenn Sie nicht der richtige Adressat sind, "
     "informieren Sie bitte sofort den Absender.\n", "Danke!"),
    # The separator with its space is always one (RFC 3676 section 4.3).
    ("Done.\n\n-- \nThe support team of a company with a very long signature that reads like a sentence.\n",
     "Done."),
])
def test_a_signature_is_still_cut(text, expected):
    assert strip_reply(text) == expected


@pytest.mark.parametrize("text", [
    "Our opening hours:\n\nVon: Montag\nAn: Freitag\n\nSee you then.\n",
    "Hi,\n\nwe are open\nVon: Montag\nAn: Freitag\nand closed on weekends.\n",
    "Please send the parcel as follows.\nVon: Hans Meier <hans@example.com>\nAn: Support <support@example.com>\n\nThanks\n",
    "Der Kurs:\nDatum: 12.05.2025\nVon: 8:00\nAn: 17:00\n\nBitte bestätigen.\n",
    "Shipping label:\nFrom: ACME Warehouse\nTo: Bob Smith, 1 Main St\n\nIt never arrived.\n",
    # A booking or a shipment: a date, but neither a subject nor an address.
    "please change my booking to this:\n\nFrom: Berlin Tegel\nTo: Munich\nDate: 12.12.2026\n\n"
    "The flight number stays LH123, and I need a window seat.\n",
    "Bitte so liefern:\nVon: Lager Hamburg\nAn: Filiale Berlin\nDatum: 12.12.2026\n\nDanke!\n",
])
def test_lines_that_look_like_headers_are_not_a_quoted_mail(text):
    assert strip_reply(text) == text.strip()


@pytest.mark.parametrize("text, expected", [
    ("Ok.\n\nVon: Support <support@example.com>\nGesendet: Montag, 3. März 2025 10:00\nAn: Bob <bob@example.com>\n"
     "Betreff: AW: [#12] kaputt\n\nalt\n", "Ok."),
    ("Ok.\n\nVon: Support\nGesendet: Montag\nAn: Bob\nBetreff: kaputt\n\nalt\n", "Ok."),
    # Thunderbird's order, Subject first.
    ("Fine.\n\nSubject: Re: [#12] broken\nDate: Mon, 3 Mar 2025 10:00:00 +0100\nFrom: Support <support@example.com>\n"
     "To: bob@example.com\n\nold\n", "Fine."),
    ("Merci.\n\nDe : Support <support@example.com>\nEnvoyé : lundi 3 mars 2025 10:00\nÀ : Bob\nObjet : panne\n\nvieux\n",
     "Merci."),
    # Some mailers drop the colon after To and Subject; an address and a date suffice then.
    ("Passt.\n\nVon: \"Support\" <support@example.com>\nAn bob@example.com\nDatum: Mi., 13.06.2012 14:30\n"
     "Betreff Installation\n\nalt\n", "Passt."),
])
def test_a_quoted_mails_header_block_is_still_cut(text, expected):
    assert strip_reply(text) == expected


@pytest.mark.parametrize("text", [
    "As I told you before,\nOn Monday my colleague wrote:\nthe printer is broken, and it still is.\n",
    "Thanks for the update.\nOn 3 May 2025 your colleague wrote:\nthe part is on its way. It never arrived.\n",
    "Hello,\n\nOn 3 May I ordered a printer.\nYour shop wrote:\nit ships tomorrow. It did not.\n",
    "Hello,\n\nPlease call me at 14:30 or write to bob@example.com:\nI am at home all day.\n",
])
def test_wrote_in_the_writers_own_sentence_is_not_an_attribution(text):
    assert strip_reply(text) == text.strip()


@pytest.mark.parametrize("text, expected", [
    ("Now it works.\nOn Mon, 3 Mar 2025 at 09:12, Support <support@example.com> wrote:\n> old\n", "Now it works."),
    ("Now it works.\nOn Monday, Support wrote:\n> old\n", "Now it works."),
    ("Now it works.\n\nOn 3 May 2025 your colleague wrote:\nold text\n", "Now it works."),
])
def test_a_real_attribution_is_still_cut(text, expected):
    assert strip_reply(text) == expected


def test_a_long_rule_ending_in_a_letter_is_neither_a_banner_nor_slow():
    # The banner pattern once backtracked over every split of such a line (seconds for 2 000 dashes).
    text = "Hi\n" + "-" * 5000 + "x\nBye"
    started = time.perf_counter()
    assert strip_reply(text) == text
    assert time.perf_counter() - started < 1
