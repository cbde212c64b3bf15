"""Through the running daemon, with agent_auth: a forged From Alice on her leaked reply address, and our MTA's word.

A customer Alice copied on her reply has read her signed reply address; From is theirs to write.
`agent_auth.require_authentication_results` asks our MTA's topmost Authentication-Results (RFC 8601,
authserv-id `mx.example.com`) to show DKIM or DMARC passing for From's domain. Each case here is the
header section as it reaches ticketd: what our MTA wrote on top, what the sender wrote below it. (A mail
our MTA wrote no header on leaves the sender's on top: the MTA must remove one claiming its id, RFC 8601
section 5, as docs/settings.md says; ticketd cannot tell it from the MTA's own.)
"""

from __future__ import annotations

import pytest

from tests.sink import wait_until
from tests.test_agent_mail_hostile_from import ALICE, Running, mail

OURS = "mx.example.com"
EXTRA = f"agent_auth:\n  require_authentication_results: true\n  trusted_authserv_ids: [{OURS}]\n"
DKIM_PASS = f"{OURS}; dkim=pass (2048-bit key) header.d=example.com header.s=s1"
DMARC_PASS = f"{OURS}; spf=fail smtp.mailfrom=evil.example; dmarc=pass (p=reject) header.from=example.com"


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    running = Running(tmp_path_factory.mktemp("agent-auth"), extra=EXTRA)
    yield running
    running.stop()


def _through_her_address(desk, results: list[str], from_header: str = f"Alice <{ALICE}>") -> tuple[str, str, int]:
    """A mail From `from_header` to Alice's reply address, its Authentication-Results top first: priority, role, tid."""
    tid, notice = desk.open_ticket()
    address = str(notice["Reply-To"])
    headers = "".join(f"Authentication-Results: {value}\r\n" for value in results).encode()
    msg = headers + mail(from_header, address)
    desk.send(msg, to=[address])
    priority, role, _kinds = desk.outcome(msg)
    return priority, role, tid


REFUSED = {
    "no header at all": [],
    "ours failing on top, the sender's passing below": [f"{OURS}; dkim=fail header.d=example.com; dmarc=fail "
                                                        "header.from=example.com", DKIM_PASS],
    "the sender's passing on top under another id": [f"mx.evil.example; {DKIM_PASS.split('; ', 1)[1]}"],
    "ours with dmarc=none and no DKIM": [f"{OURS}; spf=pass smtp.mailfrom=example.com; dmarc=none "
                                         "header.from=example.com"],
    "ours: SPF only": [f"{OURS}; spf=pass smtp.mailfrom=example.com"],
    "ours: DKIM pass for the sender's own domain": [f"{OURS}; dkim=pass header.d=evil.example; dmarc=pass "
                                                    "header.from=evil.example"],
    "ours: DKIM pass for a domain ending like hers": [f"{OURS}; dkim=pass header.d=notexample.com"],
    "ours: the pass only in a comment": [f"{OURS}; dkim=none (dkim=pass header.d=example.com)"],
    "ours: DMARC fails for her domain beside a DKIM pass": [f"{OURS}; dkim=pass header.d=mail.example.com; "
                                                            "dmarc=fail (p=reject adkim=s) header.from=example.com"],
}


@pytest.mark.parametrize("results", list(REFUSED.values()), ids=list(REFUSED))
def test_a_from_alice_our_mta_does_not_vouch_for_has_no_authority(desk, results):
    priority, role, tid = _through_her_address(desk, results)
    assert (priority, role) == ("normal", "customer")
    # Alice hears that a mail in her name did nothing: a forger shows up there.
    wait_until(lambda: [m for m in desk.notices(ALICE, f"[#{tid}]")
                        if "our mail server did not vouch" in m.get_body(("plain",)).get_content()], timeout=20)


VOUCHED = {
    "DKIM pass for her domain": [DKIM_PASS],
    "DMARC pass for her domain": [DMARC_PASS],
    "DKIM pass, DMARC none (her domain publishes no policy)": [
        f"{OURS}; dkim=pass header.d=example.com; dmarc=none header.from=example.com"],
    "ours on top, a forged failing one below": [DKIM_PASS, f"{OURS}; dkim=fail; dmarc=fail header.from=example.com"],
}


@pytest.mark.parametrize("results", list(VOUCHED.values()), ids=list(VOUCHED))
def test_a_from_alice_our_mta_vouches_for_acts(desk, results):
    assert _through_her_address(desk, results)[:2] == ("high", "agent")


def test_a_from_read_otherwise_by_our_mta_is_not_vouched_for_by_its_pass(desk):
    """Her address encoded in a name: our MTA's DMARC checked the sender's own domain, header.from says which."""
    results = [f"{OURS}; dkim=pass header.d=evil.example; dmarc=pass header.from=evil.example"]
    assert _through_her_address(desk, results, "=?utf-8?q?alice=40example=2Ecom?=")[:2] == ("normal", "customer")
