"""#commands at the top of an agent reply: every command, and every way to get one wrong (pure)."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from ticketd.domain.commands import USAGE, plan_commands, read_agent_reply, stray_commands
from ticketd.domain.statuses import Status

NOW = datetime(2030, 6, 1, 12, 0)
AGENTS = ["alice@example.com", "bob@example.com"]
GROUPS = ["support", "billing"]


def plan(text: str):
    return plan_commands(read_agent_reply(text), now=NOW, agents=AGENTS, groups=GROUPS)


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize("text, names, body", [
    ("#note\nCustomer is a VIP.", ["note"], "Customer is a VIP."),
    ("\n\n  #priority high\n#type bug\n\nThanks!", ["priority", "type"], "Thanks!"),
    ("Hello,\n#close\n", [], "Hello,\n#close"),                       # below text: text
    ("> #status closed\nthanks", [], "thanks"),                       # quoted: no command, not relayed
    ("#1042 is related", [], "#1042 is related"),                     # '#' + digit: text
    ("#propose\nDo X.\n\n-- \nAlice\nSupport", ["propose"], "Do X."),  # signature cut
    ("#close\n\nBye\n--\nAlice", ["close"], "Bye"),
    # A typed divider over more of the agent's words is no signature: relayed whole (as strip_reply keeps it).
    ("#close\nPrinter fixed.\n--\nAlso the scanner was replaced, please check it.", ["close"],
     "Printer fixed.\n--\nAlso the scanner was replaced, please check it."),
])
def test_read(text, names, body):
    reply = read_agent_reply(text)
    assert [c.name for c in reply.commands] == names
    assert reply.body == body


@pytest.mark.parametrize("text, names, body", [
    # Bottom-posted under a quote without "On ... wrote:", which the reply-stripper keeps.
    ("> Alice, ticket [#1] is now yours\n> From: cust@example.org\n\n#note\nA known fraudster.",
     ["note"], "A known fraudster."),
    ("> Alice, ticket [#1] is now yours\n\n#note\nA known fraudster.\n\n> Reply to this mail",
     ["note"], "A known fraudster."),
    ("  > indented quote\n#close\nDone.", ["close"], "Done."),
    ("#priority high\n> a quote among the commands\n#type bug\nThanks!", ["priority", "type"], "Thanks!"),
    # Interleaved, answers between quotes, keeps the questions: tests/test_agent_inline_reply.py.
    ("> q1\n\nFirst.\n#close\n> q2", [], "First.\n#close"),            # below the agent's text: text
])
def test_read_around_quotes(text, names, body):
    reply = read_agent_reply(text)
    assert [c.name for c in reply.commands] == names
    assert reply.body == body
    assert ">" not in reply.body


@pytest.mark.parametrize("text, line, args", [
    ("\u00a0#close", "#close", ""),                                # no-break space
    ("\u00a0\u00a0#close known fraudster", "#close known fraudster", "known fraudster"),
    ("#close\u00a0known fraudster\u00a0", "#close\u00a0known fraudster", "known fraudster"),
    ("\u2003#note\u202fsecret", "#note\u202fsecret", "secret"),       # em space, narrow no-break space
    ("\u3000#priority high", "#priority high", "high"),            # ideographic space
    ("\ufeff#close", "#close", ""),                                # byte order mark
    ("\u200b#close", "#close", ""),                                # zero-width space
    ("\u00a0\n\u200b \u200b\n\u00a0#close", "#close", ""),            # lines of only those are blank
])
def test_unicode_whitespace_before_a_command(text, line, args):
    reply = read_agent_reply(text + "\nPlease hold.")
    assert [(c.line, c.args) for c in reply.commands] == [(line, args)]
    assert reply.body == "Please hold."


# ---------------------------------------------------------------- every command, right


@pytest.mark.parametrize("text, expected", [
    ("#note\nsecret", dict(internal=True)),
    ("#note the customer is a VIP", dict(internal=True)),
    ("#status open\nx", dict(status=Status.OPEN)),
    ("#status waiting_customer\nx", dict(status=Status.WAITING_CUSTOMER)),
    ("#status Waiting Customer\nx", dict(status=Status.WAITING_CUSTOMER)),
    ("#status solution_proposed\nDo X.", dict(status=Status.SOLUTION_PROPOSED, propose=True)),
    ("#status closed", dict(status=Status.CLOSED)),
    # A sentence's full stop, as `#priority high.` takes it.
    ("#status closed.", dict(status=Status.CLOSED)),
    ("#status Waiting Customer!\nx", dict(status=Status.WAITING_CUSTOMER)),
    ("#assign bob@example.com", dict(assign_to="bob@example.com")),
    ("#assign <Bob@Example.com>", dict(assign_to="bob@example.com")),
    ("#assign billing", dict(assign_to="billing")),
    # as a mail client completes an address
    ("#assign Bob Smith <bob@example.com>", dict(assign_to="bob@example.com")),
    ("#assign \"Smith, Bob\" <mailto:Bob@example.com>", dict(assign_to="bob@example.com")),
    ("#assign mailto:bob@example.com", dict(assign_to="bob@example.com")),
    ("#priority urgent", dict(priority="urgent")),
    ("#PRIORITY Low", dict(priority="low")),
    ("#priority high.", dict(priority="high")),
    ("#type idea", dict(type="idea")),
    ("#type Bug!", dict(type="bug")),
    # The words key facts take: a customer's `Type: feature` and an agent's `#type feature` agree.
    ("#type feature", dict(type="idea")), ("#type Feature request", dict(type="idea")),
    ("#type defect", dict(type="bug")),
    ("#postpone 1h30m", dict(postponed_until=datetime(2030, 6, 1, 13, 30))),
    ("#postpone 1w 2d", dict(postponed_until=datetime(2030, 6, 10, 12, 0))),
    ("#postpone 2030-07-01 09:30", dict(postponed_until=datetime(2030, 7, 1, 9, 30))),
    ("#postpone 3d", dict(status=Status.POSTPONED, postponed_until=datetime(2030, 6, 4, 12, 0))),
    ("#postpone 3d.", dict(status=Status.POSTPONED, postponed_until=datetime(2030, 6, 4, 12, 0))),
    ("#postpone 2030-07-01 09:30.", dict(postponed_until=datetime(2030, 7, 1, 9, 30))),
    ("#postpone 12h", dict(status=Status.POSTPONED, postponed_until=datetime(2030, 6, 2, 0, 0))),
    ("#postpone 2030-07-01", dict(status=Status.POSTPONED, postponed_until=datetime(2030, 7, 1))),
    ("#postpone 2030-07-01T09:30:00+02:00", dict(postponed_until=datetime(2030, 7, 1, 7, 30))),
    ("#dev carol PRJ-17 2030-06-20", dict(status=Status.IN_DEVELOPMENT, dev_engineer="carol",
                                          dev_tracker_key="PRJ-17", dev_due=datetime(2030, 6, 20))),
    ("#dev carol PRJ-17 14d", dict(dev_due=datetime(2030, 6, 15, 12, 0))),
    ("#propose\nDo X.", dict(status=Status.SOLUTION_PROPOSED, propose=True)),
    ("#close", dict(status=Status.CLOSED, close_reason=None)),
    ("#close spam", dict(status=Status.CLOSED, close_reason="spam")),
    ("\u00a0#close\u00a0spam", dict(status=Status.CLOSED, close_reason="spam")),
    ("\u00a0#note\u00a0secret", dict(internal=True)),
    ("> Alice, ticket [#1] is now yours\n\n#note\nsecret", dict(internal=True)),
    ("#priority high\n#type bug\n#assign billing\n#status waiting_customer\nPlease send logs.",
     dict(priority="high", type="bug", assign_to="billing", status=Status.WAITING_CUSTOMER)),
    ("#note\n#assign bob@example.com\nBob, this one is yours.", dict(internal=True, assign_to="bob@example.com")),
])
def test_command_applies(text, expected):
    result = plan(text)
    assert result.ok, result.errors
    for key, value in expected.items():
        assert getattr(result, key) == value, key


# ---------------------------------------------------------------- every way to get one wrong


@pytest.mark.parametrize("text, fragment, usage", [
    ("#stauts closed", "#stauts is not a command", None),
    ("#status", "#status needs a status", "status"),
    ("#status finished", "'finished' is not a status", "status"),
    ("#status new", "agents cannot set the status new", "status"),
    ("#status postponed", "use #postpone instead", "postpone"),
    ("#status in_development", "use #dev instead", "dev"),
    ("#assign", "needs an agent's email or a group name", "assign"),
    ("#assign mallory@example.net", "is neither an agent nor a group", "assign"),
    ("#priority extreme", "'extreme' is not a priority", "priority"),
    ("#type feature creep", "'feature creep' is not a type", "type"),
    ("#postpone soon", "'soon' is not a duration or an ISO date", "postpone"),
    ("#priority", "#priority needs a priority.", "priority"),
    ("#type", "#type needs a type.", "type"),
    ("#postpone", "#postpone needs a duration or an ISO date.", "postpone"),
    ("#postpone 2030-02-30", "is not a duration or an ISO date", "postpone"),
    ("#postpone 3 months", "is not a duration or an ISO date", "postpone"),
    ("#postpone 2020-01-01", "is in the past", "postpone"),
    ("#dev carol PRJ-17", "exactly three words", "dev"),
    ("#dev carol PRJ-17 tomorrow", "'tomorrow' is not an ISO date", "dev"),
    ("#dev carol PRJ-17 2020-01-01", "is in the past", "dev"),
    ("#postpone 0d", "'0d' is now; give a time", "postpone"),
    ("#propose", "#propose: a proposed solution needs its text below", "propose"),
    ("#propose now\nDo X.", "takes nothing on its line", "propose"),
    ("#status solution_proposed", "#status solution_proposed: a proposed solution needs its text", "propose"),
    ("#note", "the note is empty", "note"),
    ("#note\n#propose\nDo X.", "send the note and the proposal as two mails", "propose"),
    ("#close\n#status open", "change the status in different ways", None),
    ("#postpone 3d\n#dev carol PRJ-1 2030-07-01", "change the status in different ways", None),
    ("#close\n#status closed", "the status is set twice", None),
    ("#priority high\n#priority low", "given twice", "priority"),
    ("#history of everything", "takes nothing on its line", "history"),
])
def test_command_rejected(text, fragment, usage):
    result = plan(text)
    assert not result.ok
    assert any(fragment in e for e in result.errors), result.errors
    if usage:
        assert USAGE[usage] in result.usage


@pytest.mark.parametrize("text", ["#propose", "#status solution_proposed", "#note"])
def test_a_file_is_a_proposals_or_a_notes_content(text):
    """A patch proposed, a contract noted: the mail's files stand for the words (ticketd/agent_mail.py)."""
    result = plan_commands(read_agent_reply(text), now=NOW, agents=AGENTS, groups=GROUPS, with_files=True)
    assert result.ok, result.errors


def test_one_bad_command_rejects_all():
    result = plan("#priority urgent\n#status waiting_customer\n#assign nobody@nowhere\nPlease send logs.")
    assert not result.ok
    assert result.priority is None and result.status is None and result.assign_to is None
    assert [e.split(":")[0] for e in result.errors] == ["#assign nobody@nowhere"]


def test_every_error_names_the_line_written():
    result = plan("#priority extreme\n#type wish")
    assert [e.split(":")[0] for e in result.errors] == ["#priority extreme", "#type wish"]
    assert set(result.usage) == {USAGE["priority"], USAGE["type"]}


@pytest.mark.parametrize("text, stray", [
    ("Hi team,\n#close\nthis is spam.\n", ["#close"]),
    ("Hello,\n\nplease try again.\n  #status waiting_customer\n", ["#status waiting_customer"]),
    ("Our #1 priority is your printer.\n#hashtag\nSee issue\n#42\n", []),   # not commands of ours
    ("#close\nDone.\n", []),                                                # at the top: a command
])
def test_a_command_below_other_text_stops_the_reply(text, stray):
    """A command line under a greeting is not read as one, and would reach the customer: nothing goes."""
    reply = read_agent_reply(text)
    assert stray_commands(reply.body) == stray
    plan = plan_commands(reply, now=datetime(2030, 1, 1), agents=[], groups=[])
    assert plan.ok is (not stray)
    assert all(any(line in e and "commands go on the first lines" in e for e in plan.errors) for line in stray)


# ---------------------------------------------------------------- a colon, or spaces after '#'


@pytest.mark.parametrize("text, line, args, body", [
    ("#note:\n\nVIP customer, internal: credit limit 5000.", "#note:", "",
     "VIP customer, internal: credit limit 5000."),
    ("#note: the customer is a VIP\nmore", "#note: the customer is a VIP", "the customer is a VIP", "more"),
    ("#note:secret\nmore", "#note:secret", "secret", "more"),
    ("#note :\nsecret", "#note :", "", "secret"),
    ("# note\n\nsecret", "# note", "", "secret"),
    ("#  Note: secret\nmore", "#  Note: secret", "secret", "more"),
    ("\u00a0#\u00a0note\u00a0secret\nmore", "#\u00a0note\u00a0secret", "secret", "more"),
    ("#priority: urgent\n\ncolon form", "#priority: urgent", "urgent", "colon form"),
    ("#status:\u00a0waiting_customer\nx", "#status:\u00a0waiting_customer", "waiting_customer", "x"),
    ("\uff03note\nsecret", "\uff03note", "", "secret"),             # a full-width number sign (CJK input)
])
def test_a_colon_after_the_name_or_spaces_after_the_hash(text, line, args, body):
    reply = read_agent_reply(text)
    assert [(c.line, c.args) for c in reply.commands] == [(line, args)]
    assert reply.body == body


@pytest.mark.parametrize("text, expected", [
    ("#note:\n\nVIP customer, internal: credit limit 5000.", dict(internal=True)),
    ("# note\n\nsecret", dict(internal=True)),
    ("#priority: urgent\n\ncolon form", dict(priority="urgent")),
    ("#status: waiting_customer\nWhich model?", dict(status=Status.WAITING_CUSTOMER)),
    ("#close: spam", dict(status=Status.CLOSED, close_reason="spam")),
    ("# assign billing\n# type: bug", dict(assign_to="billing", type="bug")),
])
def test_a_colon_or_spaced_command_applies(text, expected):
    result = plan(text)
    assert result.ok, result.errors
    for key, value in expected.items():
        assert getattr(result, key) == value, key


@pytest.mark.parametrize("text, names, body", [
    ("# Summary\nThe printer is fixed.", [], "# Summary\nThe printer is fixed."),   # a heading, not ours
    ("#1 priority is your printer.", [], "#1 priority is your printer."),
    ("# 1 priority is your printer.", [], "# 1 priority is your printer."),
    ("Hello,\n# note\nthe printer is fixed.", [], "Hello,\n# note\nthe printer is fixed."),
])
def test_spaced_text_that_is_no_command_of_ours_is_text(text, names, body):
    reply = read_agent_reply(text)
    assert [c.name for c in reply.commands] == names
    assert reply.body == body
    assert reply.unreadable == ()
    assert plan(text).ok, plan(text).errors


@pytest.mark.parametrize("text, line, usage", [
    ("#note.\n\nsecret", "#note.", "note"),
    ("#note!secret", "#note!secret", "note"),
    ("#note - internal\n#close.\nsecret", "#close.", "close"),      # the first line reads, the next does not
    ("#priority=urgent\nx", "#priority=urgent", "priority"),
    ("#notes: the customer is a VIP\nx", "#notes: the customer is a VIP", None),   # close to #note
    ("## Note\nsecret", "## Note", "note"),
    ("# Notes\nsecret", "# Notes", None),
    ("#stauts, closed\nx", "#stauts, closed", None),                   # a slip of #status
    ("> quoted\n\n  #close.\nspam", "#close.", "close"),
])
def test_a_top_line_like_a_command_that_cannot_be_read_stops_the_mail(text, line, usage):
    """Read as text it would reach the customer word for word: the whole mail is held back, the agent told."""
    reply = read_agent_reply(text)
    assert reply.unreadable == (line,)
    result = plan(text)
    assert not result.ok
    assert any(e.startswith(f"{line}: ") and "cannot be read as a command" in e for e in result.errors), result.errors
    if usage:
        assert USAGE[usage] in result.usage


@pytest.mark.parametrize("text", [
    "Thanks!\n#note.\n",                                   # below the agent's own text: text, as before
    "#hashtag! love it",                                   # '#' and a word that is no command of ours
    "#1. Restart the printer.",
    "#42: see the other ticket",
    "#TODO: call the customer back",
])
def test_other_lines_starting_with_a_hash_are_text(text):
    reply = read_agent_reply(text)
    assert reply.unreadable == ()
    result = plan(text)
    assert result.ok, result.errors


def test_a_colon_command_below_other_text_stops_the_reply():
    assert stray_commands("Hi team,\n#note: a VIP\nthanks") == ["#note: a VIP"]
    assert stray_commands("Hi,\n# Status\nWe are on it.") == []        # a heading in the text


# ---------------------------------------------------------------- #assign an agent by name


NAMES = {"alice@example.com": "Alice", "bob@example.com": "Bob Smith"}


def plan_named(text: str, names=NAMES, groups=GROUPS, away=None):
    return plan_commands(read_agent_reply(text), now=NOW, agents=list(names), groups=groups,
                         names=names, away=away)


@pytest.mark.parametrize("text, assign_to", [
    ("#assign Alice", "alice@example.com"),
    ("#assign alice", "alice@example.com"),
    ("#assign: ALICE", "alice@example.com"),
    ("#assign Bob Smith", "bob@example.com"),
    ("#assign  bob\u00a0 smith ", "bob@example.com"),
    ("#assign \"Bob Smith\"", "bob@example.com"),
    ("#assign Bob Smith.", "bob@example.com"),
    ("#assign billing", "billing"),                          # a group, as before
])
def test_assign_names_an_agent_by_their_name_in_rules_yaml(text, assign_to):
    result = plan_named(text)
    assert result.ok, result.errors
    assert result.assign_to == assign_to


@pytest.mark.parametrize("text", ["#assign Bob", "#assign Smith", "#assign Ali"])
def test_assign_takes_an_agents_full_name_only(text):
    result = plan_named(text)
    assert not result.ok
    [error] = result.errors
    assert "is neither an agent nor a group" in error
    assert "Bob Smith (bob@example.com)" in error and "Alice (alice@example.com)" in error


def test_assign_by_a_name_two_agents_share_names_the_addresses_to_choose_from():
    names = {"alice@example.com": "Alex", "bob@example.com": "alex", "carol@example.com": "Carol"}
    result = plan_named("#assign Alex", names=names)
    assert not result.ok and result.assign_to is None
    [error] = result.errors
    assert error.startswith("#assign Alex: ")
    assert "#assign alice@example.com" in error and "#assign bob@example.com" in error
    assert "carol@example.com" not in error
    assert USAGE["assign"] in result.usage


def test_a_group_named_as_an_agent_is_the_group():
    """A group's name keeps meaning the group when an agent is given the same name; the agent has an address."""
    names = {"alice@example.com": "Support", "bob@example.com": "Bob"}
    assert plan_named("#assign support", names=names).assign_to == "support"
    assert plan_named("#assign alice@example.com", names=names).assign_to == "alice@example.com"


def test_assign_by_name_refuses_an_agent_who_is_away():
    away = {"bob@example.com": "bob@example.com is away until 2030-06-08; write #assign support instead."}
    result = plan_named("#assign bob smith", away=away)
    assert not result.ok
    assert result.errors == ("#assign bob smith: " + away["bob@example.com"],)


def test_follow_takes_addresses_as_written_and_refuses_agents_and_our_own():
    ours = lambda address: address.startswith("support")   # noqa: E731
    written = read_agent_reply("#follow: Ann <ANN@example.org>, mailto:ben@example.net\nAdded.\n")
    assert plan_commands(written, now=NOW, agents=AGENTS, groups=GROUPS, ours=ours).follow == (
        "ann@example.org", "ben@example.net")
    refused = plan_commands(read_agent_reply("#follow Bob@Example.com support+7@example.com\n"), now=NOW,
                            agents=AGENTS, groups=GROUPS, ours=ours)
    assert not refused.ok and USAGE["follow"] in refused.usage
    assert "bob@example.com is an agent" in refused.errors[0]
    assert "support+7@example.com is one of ticketd's own addresses" in refused.errors[0]


def test_follow_changes_nothing_only_when_everyone_named_is_on_the_ticket_already():
    from ticketd.domain.commands import unchanged_commands

    people = {"cust@example.org": "requester", "ann@example.org": "follower"}
    ticket = {"status": "open"}
    for text, unchanged in (("#follow cust@example.org ann@example.org\n", True),
                            ("#follow ann@example.org ben@example.net\n", False)):
        reply = read_agent_reply(text)
        checked = plan_commands(reply, now=NOW, agents=AGENTS, groups=GROUPS)
        assert unchanged_commands(reply, checked, ticket, people=people).whole_mail is unchanged


@pytest.mark.parametrize("line, into", [("#merge [#1042]", 1042), ("#merge #1042", 1042), ("#merge 1042.", 1042),
                                        ("#merge into [#1042]", 1042), ("#merge: [ #7 ]", 7),
                                        ("#Merge Into #12!", 12)])
def test_merge_names_the_ticket_this_one_joins(line, into):
    p = plan(f"{line}\nWe answer on your first ticket.")
    assert p.ok and p.merge_into == into and p.status is None


@pytest.mark.parametrize("text, error", [
    ("#merge", "#merge needs the ticket this one joins"),
    ("#merge the printer one", "'the printer one' is not a ticket"),
    ("#merge [#1042] [#1043]", "is not a ticket"),
    ("#merge [#0]", "there is no ticket 0"),
    ("#merge [#99999999999]", "there is no ticket 99999999999"),
    ("#merge [#1042]\n#close", "#merge [#1042] closes this ticket, and #close would change only the ticket"),
    ("#merge [#1042]\n#assign bob@example.com\n#priority high",
     "and #assign bob@example.com; #priority high would change only"),
    ("#merge [#1042]\n#merge [#1043]", "#merge is given twice"),
])
def test_merge_refuses_what_it_cannot_do_with_how_to_write_it(text, error):
    p = plan(text)
    assert not p.ok and any(error in e for e in p.errors), p.errors
    assert USAGE["merge"] in p.usage or "given twice" in error


def test_merge_goes_with_a_note_follow_and_history():
    p = plan("#merge [#7]\n#note\n#follow pat@example.org\n#history\nSame printer as [#7].")
    assert p.ok and (p.merge_into, p.internal, p.follow, p.history) == (7, True, ("pat@example.org",), True)


def test_a_long_word_on_a_follow_line_is_read_in_linear_time():
    """Addresses on #follow were looked for from every character of a word: 100 kB of one took minutes."""
    started = time.perf_counter()
    assert not plan("#follow " + "x" * 100_000 + "\nHi").ok
    assert time.perf_counter() - started < 5


# ---------------------------------------------------------------- a desk command on a ticket


@pytest.mark.parametrize("text, line", [
    ("#away 2w\nBob will take over while I am on holiday.", "#away 2w"),
    ("#away: 2w\nBob will take over while I am on holiday.", "#away: 2w"),
    ("# away 2w\nBob will take over.", "# away 2w"),
    ("#Back:\nThanks.", "#Back:"),
    ("#summary: please\n", "#summary: please"),
])
def test_a_desk_command_in_any_form_on_a_ticket_is_refused_never_relayed(text, line):
    """`#away: 2w` over a reply was relayed to the customer word for word, while `#away 2w` was refused."""
    result = plan_commands(read_agent_reply(text), now=NOW, agents=AGENTS, groups=GROUPS, desk="desk@example.com")
    assert not result.ok
    assert result.errors[0].startswith(f"{line}: #") and "write it to your desk address, desk@example.com" in (
        result.errors[0])


def test_a_desk_command_below_other_text_on_a_ticket_is_refused_saying_where_it_goes():
    reply = read_agent_reply("Hi team,\n#away 2w\nBob takes over.")
    assert reply.commands == () and stray_commands(reply.body) == ["#away 2w"]
    [error] = plan_commands(reply, now=NOW, agents=AGENTS, groups=GROUPS).errors
    assert error.startswith("'#away 2w' below other text") and "write it to your desk address" in error


@pytest.mark.parametrize("text", ["# Summary\nThe printer is fixed.", "# Summary: the fuser was replaced.\nBye",
                                  "Hello,\n# away from the office, see below\nBye",
                                  "# Back to your question\nThe fuser is worn."])
def test_a_summary_heading_over_a_ticket_reply_stays_text(text):
    reply = read_agent_reply(text)
    assert reply.commands == () and reply.body == text and plan(text).ok


# ---------------------------------------------------------------- a #close reason wrapped by the mail client


LONG = "#close Duplicate of the problem your colleague reported last week; we fixed"


@pytest.mark.parametrize("text, reason, body", [
    # Wrapped at 72-76 columns (mutt, Outlook): the rest of the sentence is the reason's.
    (f"{LONG}\nit in release 4.2, which you already have.\n",
     "Duplicate of the problem your colleague reported last week; we fixed it in release 4.2, which you "
     "already have.", ""),
    (f"{LONG}\nit in release 4.2, which you already have, and the update runs by\nitself overnight.\n\nBye",
     "Duplicate of the problem your colleague reported last week; we fixed it in release 4.2, which you "
     "already have, and the update runs by itself overnight.", "Bye"),
    (f"\u00a0{LONG}\u00a0\n\u00a0it in 4.2.\nThanks!", f"{LONG.removeprefix('#close ')} it in 4.2.", "Thanks!"),
    (f"#priority low\n{LONG}\nit in 4.2.", f"{LONG.removeprefix('#close ')} it in 4.2.", ""),
    # What stays the reply: a blank line between, a capital, a short line, a sentence ended, no reason.
    (f"{LONG}\n\nit in release 4.2.", LONG.removeprefix("#close "), "it in release 4.2."),
    (f"{LONG}\nIt is in release 4.2.", LONG.removeprefix("#close "), "It is in release 4.2."),
    ("#close duplicate\nthanks for your patience.", "duplicate", "thanks for your patience."),
    (f"{LONG}.\nthanks for your patience.", LONG.removeprefix("#close ") + ".", "thanks for your patience."),
    ("#close\nthanks for your patience, the printer has been replaced by a new one today.", None,
     "thanks for your patience, the printer has been replaced by a new one today."),
    (f"{LONG}\n> it in 4.2\nThanks.", LONG.removeprefix("#close "), "Thanks."),
])
def test_a_close_reason_wrapped_onto_the_next_line_is_one_reason(text, reason, body):
    """It went out as two mails: a reply whose whole text was the half sentence, and the reason cut."""
    reply = read_agent_reply(text)
    assert reply.body == body
    result = plan_commands(reply, now=NOW, agents=AGENTS, groups=GROUPS)
    assert result.ok, result.errors
    assert (result.status, result.close_reason) == (Status.CLOSED, reason)


def test_only_a_free_text_command_takes_the_next_line():
    text = "#assign bob@example.com and keep it with him until the customer is back from holiday\nplease.\n"
    reply = read_agent_reply(text)
    assert [c.args for c in reply.commands] == [
        "bob@example.com and keep it with him until the customer is back from holiday"]
    assert reply.body == "please."
