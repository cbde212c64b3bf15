"""customer_auth and agent_auth when support@ is a Google Group: what the group signs proves nothing of its writer;
what it reported and sealed on receipt (ARC, RFC 8617) does, from a sealer the admin trusts.

The group re-signs each mail with our domain's key and sends it from its own bounce address, so our MTA's
Authentication-Results shows DKIM and DMARC passing for our domain whoever wrote it: a forged From in our
own domain (a colleague writing to the IT desk) would pass. Real receiver, sink and smtplib; the headers
stand for what the group and our MTA write.
"""

from __future__ import annotations

import pytest

from tests.desk import build_mail, open_desk
from ticketd.domain.authority import vouched_for
from ticketd.store.tables import participants

OURS = "mx.example.com"
ALICE, MALLORY = "alice@example.com", "mallory@example.net"
COLLEAGUE, DANA = "erik@example.com", "dana@yahoo.com"   # a customer in our own domain; one in a DMARC-strict one
# Google Groups' fields on every mail the group support@example.com passes on.
GROUP = {"List_Id": "<support.example.com>", "Precedence": "list",
         "List_Post": "<https://groups.google.com/a/example.com/group/support/post>, <mailto:support@example.com>"}
# Our MTA on what the group sent: its own signature and bounce address, for our domain.
GROUP_SIGNED = (f"{OURS}; dkim=pass header.i=@example.com header.s=google; "
                "spf=pass smtp.mailfrom=support+bncBD7@example.com; dmarc=pass header.from=example.com")
# Our MTA on Alice's mail sent to us directly.
DIRECT = f"{OURS}; dkim=pass header.d=example.com; dmarc=pass header.from=example.com"
ARC_PASS = "; arc=pass (i=1 spf=pass spfdomain=yahoo.com dkim=pass dkdomain=yahoo.com)"


@pytest.fixture
def desk(make_app, db_url):
    yield from open_desk(make_app, db_url, extra=(
        f"agent_auth:\n  require_authentication_results: true\n  trusted_authserv_ids: [{OURS}]\n"
        "  trusted_arc_sealers: [google.com]\n"
        "customer_auth:\n  require_authentication_results: true\n"))


def _proposed(desk, customer: str) -> int:
    tid = desk.open_assigned(customer, "The printer is on fire.\n", ALICE)
    desk.reply_to(desk.last(ALICE), ALICE, "#propose\nWe replaced the fuser.\n", Authentication_Results=DIRECT)
    return tid


def _through_the_group(sender: str, tid: int, authentication_results: str, *, seal: str | None = None,
                       report: str | None = None, rewritten: bool = False):
    """An acceptance with [#tid] as the group passes it on; `seal` (ARC-Seal's d=) and `report` (what the
    group saw on receipt) make ARC set 1."""
    headers = dict(GROUP, Authentication_Results=authentication_results)
    if rewritten:   # DMARC p=reject at the writer's domain: the group writes itself into From
        headers["X_Original_From"] = f"Dana <{sender}>"
    msg = build_mail("support@example.com" if rewritten else sender, "Yes, thanks!\n", cc=MALLORY,
                     subject=f"Re: [#{tid}] Printer on fire", name="'Dana' via Support" if rewritten else None,
                     **headers)
    if seal is not None:
        msg["ARC-Seal"] = f"i=1; a=rsa-sha256; t=1700000000; cv=none; d={seal}; s=arc-20240605; b=AbC+dE/f=="
    if report is not None:
        msg["ARC-Authentication-Results"] = f"i=1; mx.google.com; {report}"
    return msg


def _closed_by(desk, tid: int) -> bool:
    """Whether the acceptance joined [#tid], closed it and made its Cc a follower; else it opened a ticket
    of its own and says why in [#tid]'s history."""
    newest = desk.ticket()
    if newest["id"] == tid:
        assert desk.ticket(tid)["status"] == "closed"
        assert MALLORY in [p["email"] for p in desk.rows(participants, ticket_id=tid)]
        return True
    assert desk.ticket(tid)["status"] == "solution_proposed"
    assert desk.events(newest["id"], "unvouched_tag")
    return False


def test_the_groups_own_signature_does_not_vouch_for_a_writer_in_our_domain(desk):
    tid = _proposed(desk, COLLEAGUE)
    desk.send(_through_the_group(COLLEAGUE, tid, GROUP_SIGNED))
    assert not _closed_by(desk, tid)
    [why] = desk.events(tid, "unvouched_tag")
    assert "speaks for our own list, which relayed the mail as ours" in why["reason"]


def test_a_trusted_sealers_report_vouches_for_a_writer_in_our_domain(desk):
    tid = _proposed(desk, COLLEAGUE)
    desk.send(_through_the_group(COLLEAGUE, tid, GROUP_SIGNED + ARC_PASS, seal="google.com",
                                 report="dkim=pass header.i=@example.com; dmarc=pass header.from=example.com"))
    assert _closed_by(desk, tid)
    assert desk.events(tid, "unvouched_tag") == []


@pytest.mark.parametrize("results, seal, report, why", [
    (GROUP_SIGNED, None, None, "shows no DKIM or DMARC pass for From's domain"),
    (GROUP_SIGNED.replace("dmarc=pass", "arc=fail; dmarc=pass"), "google.com",
     "dkim=pass header.i=@yahoo.com; dmarc=pass header.from=yahoo.com", "shows no DKIM or DMARC pass"),
    (GROUP_SIGNED + ARC_PASS, "arc.example.net", "dkim=pass header.i=@yahoo.com; dmarc=pass header.from=yahoo.com",
     "no ARC set sealed by a trusted sealer"),
    (GROUP_SIGNED + ARC_PASS, "google.com", "spf=pass smtp.mailfrom=yahoo.com; dmarc=fail header.from=yahoo.com",
     "no DKIM or DMARC pass for From's domain in ARC set 1, sealed by google.com"),
    (GROUP_SIGNED + ARC_PASS, "google.com", "dkim=pass header.i=@mallory.example.net; dmarc=pass "
     "header.from=mallory.example.net", "in ARC set 1, sealed by google.com"),
], ids=["no ARC", "chain failed", "untrusted sealer", "writer not proven on receipt", "another writer proven"])
def test_a_rewritten_from_is_vouched_for_only_by_a_trusted_sealers_report_of_its_writer(desk, results, seal,
                                                                                        report, why):
    tid = _proposed(desk, DANA)
    desk.send(_through_the_group(DANA, tid, results, seal=seal, report=report, rewritten=True))
    assert not _closed_by(desk, tid)
    assert why in desk.events(tid, "unvouched_tag")[0]["reason"]


def test_a_rewritten_from_with_a_trusted_sealers_report_of_its_writer_joins_and_acts(desk):
    tid = _proposed(desk, DANA)
    desk.send(_through_the_group(DANA, tid, GROUP_SIGNED + ARC_PASS, seal="google.com", rewritten=True,
                                 report="dkim=pass header.i=@yahoo.com header.s=s2048; dmarc=pass (p=REJECT) "
                                        "header.from=yahoo.com"))
    assert _closed_by(desk, tid)
    assert desk.messages(tid)[-1]["from_addr"] == DANA


def test_an_agents_mail_through_the_group_needs_the_sealers_report_too(desk):
    """Alice's own reply address and From, relayed by the group: its signature for our domain is no proof."""
    tid = desk.open_assigned("cust@example.org", "The printer is on fire.\n", ALICE)
    notice = desk.last(ALICE)
    desk.reply_to(notice, ALICE, "#status waiting_customer\nWhich model?\n", Authentication_Results=GROUP_SIGNED,
                  **GROUP)
    assert desk.ticket(tid)["status"] == "new"
    desk.reply_to(notice, ALICE, "#status waiting_customer\nWhich model?\n",
                  Authentication_Results=GROUP_SIGNED + ARC_PASS, **GROUP)
    assert desk.ticket(tid)["status"] == "new"   # no sealed report: the chain alone says nothing of Alice
    sealed = {"ARC_Seal": "i=1; a=rsa-sha256; cv=none; d=google.com; s=arc; b=x",
              "ARC_Authentication_Results": "i=1; mx.google.com; dkim=pass header.d=example.com"}
    desk.reply_to(notice, ALICE, "#status waiting_customer\nWhich model?\n",
                  Authentication_Results=GROUP_SIGNED + ARC_PASS, **GROUP, **sealed)
    assert desk.ticket(tid)["status"] == "waiting_customer"


# ---------------------------------------------------------------- the reading, pure

SEALED_BY_GOOGLE = [("arc-seal", "i=1; a=rsa-sha256; t=1; cv=none; d=google.com; s=arc; b=x"),
                    ("arc-authentication-results", "i=1; mx.google.com; dkim=pass header.i=@yahoo.com")]


@pytest.mark.parametrize("arc_headers, passes", [
    (SEALED_BY_GOOGLE, True),
    ([("arc-seal", "i=1; d = arc.google.com ; b=x"), SEALED_BY_GOOGLE[1]], True),   # a subdomain; blanks in tags
    (SEALED_BY_GOOGLE[:1], False),                                                   # a seal with no report
    (SEALED_BY_GOOGLE + [SEALED_BY_GOOGLE[1]], False),                               # two reports for one instance
    (SEALED_BY_GOOGLE + [("arc-seal", "i=1; d=google.com; b=y")], False),            # two seals for one instance
    ([("arc-seal", "i=2; d=google.com; b=x"), SEALED_BY_GOOGLE[1]], False),          # the report of another set
    ([("arc-seal", "i=0; d=google.com; b=x"), ("arc-authentication-results", "i=0; mx; dkim=pass "
                                                "header.d=yahoo.com")], False),      # no such instance
    ([("arc-seal", "i=1; d=notgoogle.com; b=x"), SEALED_BY_GOOGLE[1]], False),
    # The newest trusted set that proves the writer counts; a later set by another sealer changes nothing.
    (SEALED_BY_GOOGLE + [("arc-seal", "i=2; d=relay.example.net; b=x"),
                         ("arc-authentication-results", "i=2; relay; dkim=fail")], True),
])
def test_arc_reports_count_one_per_instance_from_a_trusted_sealer(arc_headers, passes):
    topmost = f"{OURS}; dkim=fail; arc=pass"
    passed, why = vouched_for(topmost, [OURS], DANA, arc_headers, ["google.com"])
    assert passed is passes, why
    if passes:
        assert why.endswith("sealed by google.com; the ARC chain verified by mx.example.com") or \
            "sealed by arc.google.com" in why
    assert vouched_for(topmost, [OURS], DANA, arc_headers, [])[0] is False   # no sealer trusted: ARC is not read
    assert vouched_for(topmost.replace("arc=pass", "arc=fail"), [OURS], DANA, arc_headers, ["google.com"])[0] is False
