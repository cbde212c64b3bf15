"""Through the running daemon: an agent's reply address signed with a key since rotated.

docs/settings.md: `previous_secret_keys` are still accepted when checking signatures, so a rotated key
breaks no open thread; a key dropped from that list signs nothing any more, and a mail through an address
it signed is an ordinary one, its commands text.
"""

from __future__ import annotations

from tests.test_agent_mail_hostile_from import ALICE, Running, mail


def test_an_address_signed_with_a_previous_key_counts_until_that_key_is_dropped(tmp_path):
    desk = Running(tmp_path, secret="old-key")
    try:
        tid, notice = desk.open_ticket()
        address = str(notice["Reply-To"])
        desk.restart("previous_secret_keys: [old-key]\n", secret="new-key")
        msg = mail(f"Alice <{ALICE}>", address, subject=f"Re: [#{tid}] printer")
        desk.send(msg, to=[address])
        assert desk.outcome(msg)[:2] == ("high", "agent")

        desk.query("UPDATE tickets SET priority = 'normal' WHERE id = ?", tid)
        desk.restart("", secret="new-key")
        msg = mail(f"Alice <{ALICE}>", address, subject=f"Re: [#{tid}] printer")
        desk.send(msg, to=[address])
        # The tag still threads it (Alice takes part in the ticket), as no agent's mail.
        assert desk.outcome(msg)[:2] == ("normal", "customer")
    finally:
        desk.stop()
