"""customer_auth: a customer's mail that reaches a ticket by what anyone may know counts only if our MTA vouches.

A ticket's tag and a customer's address are no secret: with the setting on, a forged From can no longer
accept a proposal, reopen a ticket, or copy its writer onto every public reply. Real receiver, sink and
smtplib; the Authentication-Results header stands for what our own MTA writes on top of each mail.
"""

from __future__ import annotations

import pytest

from tests.desk import body_text, build_mail, open_desk
from ticketd.domain.authority import vouched_for
from ticketd.settings import load_settings
from ticketd.store.tables import participants

CUSTOMER, ALICE, MALLORY = "cust@example.org", "alice@example.com", "mallory@example.net"
OURS = "mx.example.com"
REQUIRED = (f"agent_auth:\n  trusted_authserv_ids: [{OURS}]\n"
            "customer_auth:\n  require_authentication_results: true\n")
PASS = f"{OURS} (our MTA); spf=pass smtp.mailfrom=example.org; dkim=pass header.d=example.org; dmarc=pass"


@pytest.fixture
def strict_desk(make_app, db_url):
    """On SQLite and PostgreSQL: threading and who joins read the database."""
    yield from open_desk(make_app, db_url, extra=REQUIRED)


@pytest.fixture
def trusting_desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def _proposed(desk) -> int:
    """A ticket of CUSTOMER's, given to ALICE, with a solution proposed."""
    tid = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)
    desk.reply_to(desk.last(ALICE), ALICE, "#propose\nWe replaced the fuser.\n", Authentication_Results=PASS)
    assert desk.ticket(tid)["status"] == "solution_proposed"
    return tid


def _forged_acceptance(tid: int, **headers):
    """What anyone can write: the customer's address in From, the ticket's tag, a "yes", themselves in Cc."""
    return build_mail(CUSTOMER, "Yes, thanks!\n", subject=f"Re: [#{tid}] Printer on fire", cc=MALLORY, **headers)


def _followers(desk, tid: int) -> list[str]:
    return [p["email"] for p in desk.rows(participants, ticket_id=tid)]


def test_an_unproven_from_with_a_tag_opens_a_ticket_of_its_own_and_changes_nothing(strict_desk):
    desk = strict_desk
    tid = _proposed(desk)
    sent_before = len(desk.inbox(CUSTOMER))
    # No header; our MTA's failure on top of a "pass" someone wrote lower down; another server's "pass".
    for headers in ({}, {"Authentication_Results": f"{OURS}; dkim=fail header.d=example.org; dmarc=fail"},
                    {"Authentication_Results": "relay.example.net; dkim=pass header.d=example.org"}):
        msg = _forged_acceptance(tid, **headers)
        if headers.get("Authentication_Results", "").startswith(OURS):
            msg["Authentication-Results"] = PASS   # below ours: written on the way
        desk.send(msg)
        opened = desk.ticket()
        assert opened["id"] != tid and opened["requester"] == CUSTOMER
        assert [m["matched_by"] for m in desk.messages(opened["id"])] == ["new"]
        [why] = desk.events(opened["id"], "unvouched_tag")
        assert f"names [#{tid}]" in why["reason"] and "customer_auth" in why["reason"]
    assert desk.ticket(tid)["status"] == "solution_proposed"
    assert MALLORY not in _followers(desk, tid) and len(desk.messages(tid)) == 2
    assert [e["reason"].split(": it opened ")[1] for e in desk.events(tid, "unvouched_tag")] == [
        f"[#{t}] (customer_auth)" for t in (tid + 1, tid + 2, tid + 3)]
    assert "has no Authentication-Results" in desk.events(tid, "unvouched_tag")[0]["reason"]
    assert "shows no DKIM or DMARC pass for From's domain" in desk.events(tid, "unvouched_tag")[1]["reason"]
    assert not any("for example.org" in e["reason"] for e in desk.events(tid, "unvouched_tag"))   # forget leaves it
    assert "not a trusted authserv-id" in desk.events(tid, "unvouched_tag")[2]["reason"]
    # The customer hears of the new tickets only (acknowledgements); the forger gets none of [#tid]'s replies.
    acks = desk.inbox(CUSTOMER)[sent_before:]
    assert len(acks) == 3 and all(f"[#{tid}]" not in str(m["Subject"]) for m in acks)
    desk.reply_to(desk.inbox(ALICE)[0], ALICE, "The technician comes at 3pm.\n")   # [#tid] assigned to her
    assert "3pm" in body_text(desk.last(CUSTOMER))
    assert all("3pm" not in body_text(m) and f"[#{tid}]" not in str(m["Subject"]) for m in desk.inbox(MALLORY))


def test_an_agents_unproven_mail_with_the_tag_of_their_own_ticket_is_kept_there_as_before(strict_desk):
    """Mail From an agent that did not come through their reply address changes nothing on their ticket:
    it stays there, and they are told how to write on it, rather than opening a ticket in their name."""
    desk = strict_desk
    tid = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)
    desk.send(build_mail(ALICE, "#status closed\nWritten to the support address.\n",
                         subject=f"Re: [#{tid}] Printer on fire"))
    assert desk.ticket()["id"] == tid and desk.ticket(tid)["status"] == "new"
    assert desk.messages(tid)[-1]["matched_by"] == "subject_tag" and desk.events(tid, "unvouched_tag") == []
    told = desk.last(ALICE)
    assert "Not sent to the customer" in str(told["Subject"])
    assert "It is kept on the ticket as a customer-side mail." in body_text(told)


def test_a_vouched_from_with_a_tag_joins_and_acts(strict_desk):
    desk = strict_desk
    tid = _proposed(desk)
    desk.send(_forged_acceptance(tid, Authentication_Results=PASS))
    assert desk.messages(tid)[-1]["matched_by"] == "subject_tag"
    assert desk.ticket(tid)["status"] == "closed" and MALLORY in _followers(desk, tid)


def test_without_the_setting_a_tag_and_a_from_are_enough_as_product_md_says(trusting_desk):
    desk = trusting_desk
    tid = _proposed(desk)
    desk.send(_forged_acceptance(tid))
    assert desk.ticket(tid)["status"] == "closed" and MALLORY in _followers(desk, tid)
    assert desk.events(tid, "unvouched_tag") == []


def test_an_unproven_from_threaded_by_a_received_message_id_is_kept_for_the_assignee(strict_desk):
    """The customer's own Message-ID (In-Reply-To) is on every copy of their mail: it proves no more than
    the tag does. Our signed Message-ID and reply address do: only a reader of our mail has them."""
    desk = strict_desk
    first = desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    assert desk.assign(tid) == ALICE
    desk.reply_to(desk.last(ALICE), ALICE, "#status waiting_customer\nWhich model is it?\n")
    desk.send(build_mail(CUSTOMER, "Never mind, send the refund to my new account.\n", subject="Re: Printer on fire",
                         in_reply_to=first["Message-ID"], cc=MALLORY))
    stored = desk.messages(tid)[-1]
    assert (stored["from_addr"], stored["matched_by"]) == (CUSTOMER, "references")
    [kept] = desk.events(tid, "unvouched_kept")
    assert "has no Authentication-Results" in kept["reason"] and "changes nothing" in kept["reason"]
    assert desk.ticket(tid)["status"] == "waiting_customer" and MALLORY not in _followers(desk, tid)
    told = body_text(desk.last(ALICE))
    assert "our mail server did not vouch for this mail's From" in told and "refund" in told
    # Vouched for, the same kind of mail is the customer's answer: it opens the ticket again.
    desk.send(build_mail(CUSTOMER, "It is the LaserJet 4.\n", subject="Re: Printer on fire",
                         in_reply_to=first["Message-ID"], Authentication_Results=PASS))
    assert desk.ticket(tid)["status"] == "open" and len(desk.events(tid, "unvouched_kept")) == 1
    # Through our Reply-To (on the question relayed to them) no proof is asked.
    desk.reply_to(desk.last(ALICE), ALICE, "#status waiting_customer\nAnd the serial?\n")
    desk.reply_to(desk.last(CUSTOMER), CUSTOMER, "SN 1234\n")
    assert desk.messages(tid)[-1]["matched_by"] == "reply_address"
    assert desk.ticket(tid)["status"] == "open" and len(desk.events(tid, "unvouched_kept")) == 1


def test_another_copy_of_the_customers_first_mail_needs_the_proof_too(strict_desk):
    """Its Message-ID, From and subject are what a copy that went round a list carries: anyone can send
    them with other words under them, and such a copy goes where the first went."""
    desk = strict_desk
    tid = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)
    first_id = desk.messages(tid)[0]["message_id"]
    desk.reply_to(desk.last(ALICE), ALICE, "#propose\nWe replaced the fuser.\n")
    forged = build_mail(CUSTOMER, "Yes, thanks!\n", cc=MALLORY)
    forged.replace_header("Message-ID", f"<{first_id}>")
    desk.send(forged)
    assert desk.messages(tid)[-1]["matched_by"] == "message_id"
    [kept] = desk.events(tid, "unvouched_kept")
    assert "another copy of a mail we received" in kept["reason"]
    assert desk.ticket(tid)["status"] == "solution_proposed" and MALLORY not in _followers(desk, tid)
    forged = build_mail(CUSTOMER, "Yes, that fixed it.\n", Authentication_Results=PASS)
    forged.replace_header("Message-ID", f"<{first_id}>")
    desk.send(forged)
    assert desk.ticket(tid)["status"] == "closed"


def test_the_next_assignee_and_tickets_show_read_the_unproven_mail_marked(strict_desk, tmp_path):
    from tests.cli import cli_ok

    desk = strict_desk
    first = desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
    tid = desk.ticket()["id"]
    assert desk.assign(tid) == ALICE
    desk.send(build_mail(CUSTOMER, "Call me instead.\n", subject="Re: Printer on fire",
                         in_reply_to=first["Message-ID"]))
    from ticketd.admin import assign as assign_by_hand

    assign_by_hand(desk.app, tid, "bob@example.com")
    desk.flush()
    quoted = body_text(desk.last("bob@example.com"))
    assert f"<{CUSTOMER}> (customer, its From not vouched for by our mail server, kept apart)" in quoted
    shown = [line for line in cli_ok(tmp_path / "ticketd.yaml", "tickets", "show", str(tid)).splitlines()
             if line.startswith("--- in ")]
    assert len(shown) == 2 and "kept apart" not in shown[0], shown
    assert shown[1].endswith(f"{CUSTOMER} (its From not vouched for by our mail server, kept apart) [references]")


@pytest.mark.parametrize("section", ["agent_auth", "customer_auth"])
def test_proof_asked_with_no_authserv_id_to_trust_is_refused(tmp_path, section):
    config = tmp_path / "ticketd.yaml"
    config.write_text(f"{section}:\n  require_authentication_results: true\n")
    with pytest.raises(ValueError, match=f"{section}.require_authentication_results needs the authserv-ids"):
        load_settings(config, environ={})


def test_vouched_for_needs_a_header_a_trusted_id_and_a_pass_for_froms_domain():
    assert vouched_for(None, [OURS], CUSTOMER) == (False, "the mail has no Authentication-Results")
    assert vouched_for(PASS, [OURS], CUSTOMER) == (True, "dkim=pass by mx.example.com")
    assert vouched_for(PASS, ["other.example.com"], CUSTOMER)[0] is False
    signed_elsewhere = f"{OURS}; dkim=pass header.d=example.org"
    assert vouched_for(signed_elsewhere, [OURS], "cust@example.net")[0] is False   # another domain's signature


def test_rules_test_says_where_the_proof_is_missing(make_app, sqlite_url, tmp_path):
    """`rules test --config` threads a mail as the daemon would: it says why a tag opens a ticket of its
    own, and that a mail joined by the customer's Message-ID is kept apart."""
    from tests.cli import cli_ok

    desks = open_desk(make_app, sqlite_url, extra=REQUIRED)
    desk = next(desks)
    try:
        first = desk.send(build_mail(CUSTOMER, "The printer is on fire.\n"))
        tid = desk.ticket()["id"]
    finally:
        desks.close()
    files = {"tagged.eml": _forged_acceptance(tid),
             "proven.eml": _forged_acceptance(tid, Authentication_Results=PASS),
             "referring.eml": build_mail(CUSTOMER, "Any news?\n", subject="Re: Printer on fire",
                                         in_reply_to=first["Message-ID"])}
    for name, msg in files.items():
        (tmp_path / name).write_bytes(msg.as_bytes())
    config, rules = tmp_path / "ticketd.yaml", tmp_path / "rules.yaml"

    def thread_line(name: str) -> str:
        lines = cli_ok(config, "rules", "test", str(rules), str(tmp_path / name)).splitlines()
        return next(line for line in lines if line.startswith("thread:"))

    assert thread_line("tagged.eml") == (f"thread: names [#{tid}], where its From takes part, but the mail has no "
                                         "Authentication-Results (customer_auth); a ticket of its own")
    assert thread_line("proven.eml").startswith(f"thread: joins ticket [#{tid}] (matched by subject_tag); ")
    assert thread_line("referring.eml").startswith(
        f"thread: joins ticket [#{tid}] (matched by references), kept apart, changing nothing: the mail has no "
        "Authentication-Results (customer_auth); ")


# Microsoft 365 (Exchange Online) writes its results first, no authserv-id before them.
EXCHANGE_ONLINE = ("spf=softfail (sender IP is 192.0.2.7) smtp.mailfrom=example.org; dkim=pass (signature was "
                   "verified) header.d=example.org;dmarc=pass action=none header.from=example.org;compauth=pass "
                   "reason=100")


def test_a_header_that_names_no_authserv_id_counts_only_where_none_is_trusted():
    from ticketd.mail_auth_status import topmost_authserv_id

    assert vouched_for(EXCHANGE_ONLINE, ["(none)"], CUSTOMER) == (True, "dkim=pass by (none)")
    assert vouched_for(EXCHANGE_ONLINE, [OURS], CUSTOMER) == (
        False, "topmost Authentication-Results is from '(none)', not a trusted authserv-id")
    assert vouched_for(EXCHANGE_ONLINE, ["(none)"], "cust@example.net")[0] is False
    assert topmost_authserv_id(f"Authentication-Results: {EXCHANGE_ONLINE}\r\nFrom: a@b\r\n\r\n".encode()) == "(none)"
    assert topmost_authserv_id(b"From: a@b\r\n\r\nAuthentication-Results: mx; dkim=pass\r\n") == ""


def test_a_forged_header_nested_deep_is_read_in_one_pass(strict_desk):
    """Where our MTA writes no Authentication-Results, the sender's is on top: 150 000 nested comments in
    it took minutes of the back office's one processing thread (each pass removed only the innermost)."""
    import time

    desk = strict_desk
    tid = _proposed(desk)
    nested = "(" * 150_000 + "x" + ")" * 150_000
    started = time.perf_counter()
    desk.send(_forged_acceptance(tid, Authentication_Results=f"{OURS} {nested}; dkim=fail header.d=example.org"))
    assert time.perf_counter() - started < 20
    assert desk.ticket()["id"] != tid and desk.ticket(tid)["status"] == "solution_proposed"
    assert "shows no DKIM or DMARC pass" in desk.events(tid, "unvouched_tag")[0]["reason"]


@pytest.mark.parametrize("header, passes", [
    (f"{OURS} (our MTA (the one on top)); dkim=pass header.d=example.org", True),
    (f"{OURS}; dkim=fail (a quoted \\) does not close it; dkim=pass header.d=example.org)", False),
    (f"{OURS}; dkim=pass header.d=example.org (a comment never closed", True),
    (f"{OURS}; (dkim=pass header.d=example.org", False),
])
def test_comments_are_read_as_rfc_5322_writes_them(header, passes):
    assert vouched_for(header, [OURS], CUSTOMER)[0] is passes
