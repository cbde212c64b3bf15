"""Finding a notice pasted under an agent's words without quote marks (ticketd.domain.pasted_notice)."""

from __future__ import annotations

from ticketd.domain.pasted_notice import notice_start

NOTICE = "Bob, ticket [#7] is now yours (handed over by Alice).\n\nFrom:     cust@example.org\nSubject:  printer\n"


def test_the_notice_rewrapped_is_found_at_its_first_line():
    body = "Restart it.\n\nBob, ticket [#7] is now\nyours (handed over by Alice). From: cust@example.org"
    assert notice_start(body, NOTICE) == 2


def test_a_note_like_line_of_the_agents_own_above_the_notice_stays():
    """One "Key: value" line is no header block, and a header block names an address."""
    for words in ("Note: reboot it after the update.", "Driver: 3.3\nFirmware: 2.1"):
        body = f"{words}\n\n{NOTICE}"
        assert notice_start(body, NOTICE) == len(words.split("\n")) + 1


def test_the_notice_cut_short_by_the_stripper_is_still_found():
    assert notice_start("Restart it.\n\nBob, ticket [#7] is now yours (handed over", NOTICE) == 2


def test_nothing_is_found_in_words_of_the_agents_own():
    assert notice_start("Restart it.\n\nBob, ticket [#7] is solved now.", NOTICE) is None
    assert notice_start("Bob, ticket", "Bob, ticket") is None   # too few words to be sure


def test_a_notice_quoted_with_marks_is_left_to_the_stripper():
    """An inline answer keeps the quoted question above it; "> " lines are never taken for a paste."""
    quoted = "\n".join(f"> {line}" for line in NOTICE.splitlines())
    assert notice_start(f"Thanks.\n\n{quoted}\n\nAnswer.", NOTICE) is None


def test_punctuation_does_not_matter_as_a_cell_of_html_drops_the_colon():
    assert notice_start("Done.\n\nBob ticket #7 is now yours handed over by Alice\nFrom cust@example.org", NOTICE) == 2
