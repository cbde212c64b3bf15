"""A failure said once stays said once although Dovecot's timing at the end of its reply has more terms."""

from __future__ import annotations

from ingest.imap import _same_failure

# As Dovecot answered a refused CREATE twice in one run (tests/test_imap_move_to_gone.py): the second reply
# timed in three terms, the first in two.
FIRST = "the folder is gone and could not be created: create failed: [NOPERM] Permission denied (0.001 + 0.000 secs)."
AGAIN = ("the folder is gone and could not be created: create failed: [NOPERM] Permission denied "
         "(0.002 + 0.000 + 0.001 secs).")


def test_the_same_refusal_timed_in_more_terms_is_the_same_failure():
    assert _same_failure(FIRST, AGAIN)


def test_another_refusal_is_another_failure():
    assert not _same_failure(FIRST, FIRST.replace("[NOPERM] Permission denied", "[NONEXISTENT] Mailbox doesn't exist"))
