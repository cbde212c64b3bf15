"""`#commands` at the top of an agent's reply: read them, check them, plan their effect (pure).

PRODUCT.md, "Agents by email": only lines at the very top of the reply,
before any other text, are commands. A `#word` below the first line of the
agent's own text, or a command only in the HTML part (the caller reads the
plain text) is text. Quoted lines (`> …`) are never the agent's text: a
quoted `> #status closed` is no command, a quote above the commands does
not push them down, and a quote is relayed only as the question an inline
answer stands under (`_with_questions`). A command may be written
`#status open`, `#status: open` or `# status open`, a desk command too
(`#away: 2w` is refused on a ticket as `#away 2w` is, never relayed). A
top line that starts like one of ours and reads as none (`#note.`, `## Note`,
`#notes:`) is refused, never relayed: read as text it would reach the
customer, an internal note's words with it. `#close`'s reason hard-wrapped
by the mail client goes on to the next line (`_continuation`). A mail to
the desk address is read by the same rules (`read_agent_reply(desk=True)`,
ticketd.domain.absence). A mail's commands apply all
together or not at all: any error rejects them all. A checked command can
still change nothing (`#close` on a closed ticket): `unchanged_commands`
says which, and why, against the ticket as it is.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ingest.quotes import cut_signature
from ticketd.domain.following import already_on_ticket, follow_refusal
from ticketd.domain.ids import possible_id
from ticketd.domain.lifecycle import agent_may_set, type_named
from ticketd.domain.statuses import PRIORITIES, TYPES, Status, parse_status
from ticketd.domain.tags import format_tag
from ticketd.domain.timers import TooFarAhead, read_ahead

# The commands an agent writes to their desk address, about themselves (ticketd.domain.absence.DESK_USAGE).
DESK_COMMANDS = ("away", "back", "summary")

# How to write each command; quoted back in every rejection.
USAGE = {
    "note": "#note  (the whole reply becomes an internal note for agents; text may follow on the same line)",
    "status": "#status open | waiting_customer | solution_proposed | closed",
    "assign": "#assign <agent's email or full name, or a group name>",
    "priority": "#priority " + " | ".join(PRIORITIES),
    "type": "#type " + " | ".join(TYPES),
    "postpone": "#postpone <duration such as 3d, 12h, 2w, or an ISO date such as 2030-12-01>",
    "dev": "#dev <engineer> <tracker-key> <due date: ISO date such as 2030-12-01, or a duration such as 14d>",
    "propose": "#propose  (the text below it is the proposed solution the customer accepts or rejects)",
    "close": "#close  (optionally a reason on the same line)",
    "history": "#history  (ticketd mails you the ticket's conversation and files; it changes nothing)",
    "follow": "#follow <an address>  (they get the ticket's public replies from now on, this one included, and "
              "may write to it; several addresses may follow)",
    "unfollow": "#unfollow <a follower's address>  (they get the ticket's public replies no more; several "
                "addresses may follow)",
    "canned": "#canned <name>  (the saved reply canned/<name>.txt goes out as your reply; your own text, "
              "if any, below it)",
    "merge": "#merge [#1042]  (this ticket joins ticket 1042: its messages and people move there and it "
             "closes; your text, if any, still goes to this ticket's customers)",
}

# What `#merge` takes: the other ticket's tag or number, perhaps after "into" ("#merge into [#1042].").
_MERGE_TARGET = re.compile(r"^(?:into\s+)?(?:\[\s*#?\s*(\d{1,12})\s*\]|#?\s*(\d{1,12}))[.!]?$", re.IGNORECASE)
# Commands that change the ticket `#merge` closes: given with it, they would be lost with it.
_LOST_IN_MERGE = ("status", "close", "propose", "postpone", "dev", "assign", "priority", "type")

# Any Unicode whitespace counts as a space: clients put U+00A0 where the agent
# typed a space, and a command read as text would be relayed to the customer.
# Zero-width characters and a byte order mark are as invisible as a space.
_INVISIBLE = "\u200b\u2060\ufeff"
_SPACE = rf"[\s{_INVISIBLE}]"
# A full-width number sign is what a CJK input method types for '#'.
_HASH = "[#\uff03\ufe5f]"
# `#name`, `#name words`, `#name: words` (a colon as in "Status: open"), `# name`
# (spaces after the '#'). The colon and the spaced forms are commands only for a
# name in USAGE or DESK_COMMANDS (`_command`): "#TODO: ..." stays text.
_COMMAND_LINE = re.compile(rf"^{_SPACE}*{_HASH}(?P<gap>{_SPACE}*)(?P<name>[A-Za-z][\w-]*)"
                           rf"(?:(?P<colon>{_SPACE}*:){_SPACE}*|{_SPACE}+|(?=$))(?P<args>.*?){_SPACE}*$")
# A line that starts as a command might: '#'s, spaces, a word (`#note.`, `## Note`, `#priority=high`).
_LIKE_COMMAND = re.compile(rf"^{_SPACE}*{_HASH}+{_SPACE}*([A-Za-z][\w-]*)")
# A desk command whose spaced form over a ticket reply is a heading as often as a command: `# Summary`
# stays text there. At the desk address, whose mail reaches nobody else, it is the command.
_HEADINGS = ("summary",)

# The commands whose words on their line are free text, and so may be hard-wrapped onto the next
# line by the agent's mail client (`_continuation`): `#close`'s reason reaches the customer. (`#note`'s
# line and the text under it are one internal note anyway.)
_FREE_TEXT = ("close",)
# A command line at least this long may have been wrapped: clients wrap at 72 to 78 columns, and a
# word of up to ~15 letters that did not fit moves down whole.
_WRAPPED_AT = 60


@dataclass(frozen=True)
class Command:
    name: str        # lower case, without '#'
    args: str
    line: str        # as written, for messages back to the agent


# The `#note` a reply with words to an internal note's mail implies (ticketd/agent_mail.py), as the
# history and any message back to the agent show it.
IMPLIED_NOTE = "#note (a reply to an internal note's mail)"


@dataclass(frozen=True)
class AgentReply:
    commands: tuple[Command, ...]
    body: str        # the text after the commands, signature cut
    unreadable: tuple[str, ...] = ()   # the top line that looks like a command and is none (`_near_command`)


_BLANK = re.compile(rf"{_SPACE}*")
_QUOTED = re.compile(rf"{_SPACE}*>")


def _blank(line: str) -> bool:
    return _BLANK.fullmatch(line) is not None


def _quoted(line: str) -> bool:
    return _QUOTED.match(line) is not None


def _drop_quotes(lines: list[str]) -> list[str]:
    """The agent's own lines: '>' quotes left out with the blank lines they leave behind.

    PRODUCT.md: the reply text goes to customers with its quoted history
    stripped. A quote the reply-stripper keeps (above or between the agent's
    lines, with no "On ... wrote:" over it) is still what ticketd sent the
    agent, an internal note included; the agent's lines keep their order.
    """
    kept: list[str] = []
    after_quote = False
    for line in lines:
        if _quoted(line):
            after_quote = True
        elif _blank(line) and after_quote and (not kept or _blank(kept[-1])):
            continue
        else:
            after_quote = after_quote and _blank(line)
            kept.append(line)
    return kept


_QUOTE_MARKS = re.compile(rf"(?:{_SPACE}*>)+{_SPACE}*")


def _empty_in_quote(line: str) -> bool:
    """A blank line, or a quoted one of nothing but quote marks: where a quoted paragraph ends."""
    return _blank(_QUOTE_MARKS.sub("", line, count=1) if _quoted(line) else line)


def _with_questions(lines: list[str]) -> list[str] | None:
    """An inline reply: the agent's lines, each answer under a quote with the quoted paragraph it stands under.

    An answer is an agent's line right under a quote (blank lines between).
    Of that quote only its last paragraph goes with it: the question
    answered, not the notice around it (who wrote, how to reply); a quote
    under the last answer goes as in any reply. None when no quote stands
    between two of the agent's lines: not an inline reply.
    """
    kept: list[str] = []
    quote: list[str] = []          # the quoted lines (and the blank ones among them) since the agent's last line
    own = inline = False
    for line in lines:
        if _quoted(line) or (quote and _blank(line)):
            quote.append(line)
            continue
        if quote:
            end = len(quote)
            while end and _empty_in_quote(quote[end - 1]):
                end -= 1
            start = end
            while start and not _empty_in_quote(quote[start - 1]):
                start -= 1
            if start and kept and not _blank(kept[-1]):
                kept.append("")    # a gap where the rest of the quote was
            kept += quote[start:end]
            if end < len(quote):
                kept.append("")
            inline, quote = inline or own, []
        own = own or not _blank(line)
        kept.append(line)
    return kept if inline else None


def _written(line: str) -> str:
    """A line as the agent wrote it, without the spaces and invisible characters around it."""
    return line.strip().strip(_INVISIBLE).strip()


def _command(line: str, desk: bool = False) -> Command | None:
    """The command a line is, or None when it is text.

    `#word` (then a space or the end) is a command, one of ours or not (an
    unknown one is refused: `#notes`); the colon and spaced forms only with
    one of our names, a ticket's or the desk's (`#away: 2w`, `# away 2w`),
    except `# Summary` and `# Back to …` over a ticket reply, headings (`_HEADINGS`; #back takes no words).
    `desk`: the line is in a mail to the agent's desk address.
    """
    m = _COMMAND_LINE.match(line)
    if not m:
        return None
    name = m.group("name").lower()
    if (m.group("gap") or m.group("colon")) and name not in USAGE and name not in DESK_COMMANDS:
        return None
    if m.group("gap") and not desk and (name in _HEADINGS or (name == "back" and m.group("args").strip())):
        return None   # `# Summary`, `# Back to your question` (#back takes no words): headings
    return Command(name, m.group("args").strip(), _written(line))


def _near_command(word: str, names: Collection[str] = tuple(USAGE)) -> str | None:
    """The command of `names` a word after '#' is, or is a slip of (`notes`, `stauts`, `prio`, `closed`);
    None if no such.

    Measured as `#notes` is already refused: a line read as text goes to the
    customer word for word, an internal note's words with it.
    """
    word = word.casefold()
    for name in names:
        if word.startswith(name) or (len(word) >= 3 and name.startswith(word)):
            return name
    near = difflib.get_close_matches(word, names, n=1, cutoff=0.75) if len(word) >= 3 else []
    return near[0] if near else None


def _names(desk: bool) -> tuple[str, ...]:
    """The commands a line that reads as none may have been meant as: at the desk, the desk's first."""
    return (*DESK_COMMANDS, *USAGE) if desk else tuple(USAGE)


def meant_command(line: str, desk: bool = False) -> str | None:
    """The command a line that starts like one and reads as none was meant as (`#note.`, `## away 2w`), or None.

    On a ticket only a ticket's commands count: `## Background` over a reply
    is a heading, not a slip of `#back`. `desk`: in a mail to the desk address.
    """
    m = _LIKE_COMMAND.match(line)
    return _near_command(m.group(1), _names(desk)) if m else None


def _continuation(command: Command, written: str, line: str) -> bool:
    """Whether `line`, right under the command line `written`, is the rest of its words, wrapped by the client.

    "#close Duplicate of the problem you reported last week; we fixed" over
    "it in release 4.2." went out as two mails, the reply's whole text the
    half sentence. Only a long line of a free-text command whose sentence
    goes on, under it a line that starts in lower case: a reply under
    `#close` starts with a capital or after a blank line, and stays the reply.
    """
    return (command.name in _FREE_TEXT and bool(command.args) and len(written) >= _WRAPPED_AT
            and not written.endswith((".", "!", "?")) and _written(line)[:1].islower())


def read_agent_reply(text: str, desk: bool = False) -> AgentReply:
    """Split the command lines at the very top from the reply's text.

    Blank and quoted lines above or among the commands are not "other text"
    (PRODUCT.md): a bottom-posted "#note" under the quoted notification is a
    note, not a public reply carrying the quote. An inline reply (answers
    between quotes, as the reply-stripper keeps it: ingest/quotes.py) keeps
    the question each answer stands under, the first one's too when it is
    under the commands; any other reply keeps none of its quotes. A free-text
    command's words hard-wrapped onto the next line are its words
    (`_continuation`). `desk`: a mail to the agent's desk address, read by
    the same rules (`_command`, `meant_command`).
    """
    lines = (text or "").splitlines()
    commands: list[Command] = []
    i = after_commands = 0
    while i < len(lines):
        line = lines[i]
        if _blank(line) or _quoted(line):
            i += 1
            continue
        command = _command(line, desk)
        if command is None:
            break
        i += 1
        written = _written(line)
        while i < len(lines) and _continuation(command, written, lines[i]):
            written = _written(lines[i])
            command = Command(command.name, f"{command.args} {written}", f"{command.line} {written}")
            i += 1
        commands.append(command)
        after_commands = i
    # The line the commands end at, if it is one that failed to read as a command (it stays in the body).
    unreadable = (_written(lines[i]),) if i < len(lines) and meant_command(lines[i], desk) else ()
    body = _with_questions(lines[after_commands:])
    return AgentReply(tuple(commands), cut_signature("\n".join(_drop_quotes(lines[i:]) if body is None else body)),
                      unreadable)


def _words(text: str) -> str:
    return " ".join(text.split()).casefold()


def without_unseen_quotes(body: str, public_texts: Collection[str]) -> str:
    """The reply without the quoted paragraphs that are in none of the ticket's public mail.

    An inline answer's question goes to the customer only when the customer
    has seen it (their own words, or a public reply): the notice the agent
    answers also quotes internal notes and its own lines around them
    (PRODUCT.md: customers never see internal notes). The note check in
    agent_mail holds back a reply with a note's longer lines; a short one,
    or the notice's words, go quietly here, and the answer stays.
    """
    seen = " ".join(_words(text) for text in public_texts)
    lines = body.split("\n")
    kept: list[str] = []
    i = 0
    while i < len(lines):
        if not _quoted(lines[i]):
            kept.append(lines[i])
            i += 1
            continue
        j = i
        while j < len(lines) and _quoted(lines[j]):
            j += 1
        paragraph = _words(" ".join(_QUOTE_MARKS.sub("", line, count=1) for line in lines[i:j]))
        if paragraph and paragraph in seen:
            kept += lines[i:j]
        else:
            while kept and _blank(kept[-1]) and j < len(lines) and _blank(lines[j]):
                kept.pop()     # the gap around the quote, once
        i = j
    return "\n".join(kept).strip("\n")


def stray_commands(body: str, desk: bool = False) -> list[str]:
    """Lines of the reply's text that are exactly a command of ours, as written (`#close`, `#status open`).

    An unknown word after `#` is text (`#1 priority`, `#hashtag`), and so is
    `# Status` with spaces after the '#' (a heading in the text); a known
    command alone on a line below other text is an agent's slip, a desk
    command (`#away 2w`) too. `desk`: the text of a mail to the desk address,
    where a desk command counts in every form (`# away 2w`, `#away: 2w`).
    """
    stray = []
    for line in (body or "").splitlines():
        m = _COMMAND_LINE.match(line)
        if not m:
            continue
        name = m.group("name").lower()
        if (not m.group("gap") and name in (*USAGE, *DESK_COMMANDS)) or (desk and name in DESK_COMMANDS):
            stray.append(_written(line))
    return stray


@dataclass(frozen=True)
class Plan:
    """What an agent's mail asks for, once every command checked out."""
    internal: bool = False
    status: Status | None = None
    status_command: str | None = None        # the command line that sets the status
    close_reason: str | None = None
    assign_to: str | None = None              # an agent's email or a group name
    priority: str | None = None
    type: str | None = None
    postponed_until: datetime | None = None
    dev_engineer: str | None = None
    dev_tracker_key: str | None = None
    dev_due: datetime | None = None
    propose: bool = False
    history: bool = False                     # #history: the conversation is mailed to the agent
    canned: str | None = None                 # #canned: the saved reply's name, its text goes first
    follow: tuple[str, ...] = ()              # #follow: addresses made followers, lower case
    unfollow: tuple[str, ...] = ()            # #unfollow: followers taken off the ticket, lower case
    merge_into: int | None = None             # #merge: the ticket this one is merged into
    errors: tuple[str, ...] = ()
    usage: tuple[str, ...] = field(default=())  # how to write the commands that failed
    # Refused: a reply to a note's mail asked the customer something; the answer to the refusal is for them.
    asked_customer_from_note: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


# The statuses that wait for the customer to answer what the agent's words asked or proposed.
_ASKING_THE_CUSTOMER = (Status.WAITING_CUSTOMER, Status.SOLUTION_PROPOSED)

# Addresses as an agent writes them after #follow or #unfollow: bare, in <>, as mailto:, separated by
# spaces or commas.
_ADDRESSES = re.compile(r"(?<![^\s<>,;\"'])[^\s<>,;\"'@]+@[^\s<>,;\"']+[^\s<>,;\"'.]")


def _named_addresses(args: str) -> list[str]:
    """The addresses a command's words name, lower case, each once, in their order."""
    return list(dict.fromkeys(a.lower().removeprefix("mailto:") for a in _ADDRESSES.findall(args)))


def _word(args: str) -> str:
    """A one-word argument as typed in a hurry: `High.` is `high`."""
    return _typed_end_cut(args).lower()


def _typed_end_cut(args: str) -> str:
    """An argument without the full stop or comma a sentence would end it with: `#postpone 3d.` is `3d`."""
    return args.strip().rstrip(".,;:!")


def _name_key(text: str) -> str:
    """A name as compared: spaces (any Unicode ones) collapsed, case folded."""
    return " ".join(text.split()).casefold()


def assign_target(args: str, agents: Collection[str], groups: Collection[str],
                   names: Mapping[str, str]) -> tuple[str | None, str | None]:
    """What `#assign <args>` (or `ticketd tickets assign`) names: (an agent's email or a group's name, None),
    or (None, what is wrong).

    An address wins, then a group's name, then an agent's full name from
    rules.yaml (`Alice`): a group keeps its meaning when an agent is given
    its name (the agent is still named by address), and a name two agents
    share is refused with both addresses.
    """
    # As a mail client completes it: `Bob Smith <bob@example.com>`, or a mailto: link.
    named = re.search(r"<([^<>\s]+)>", args)
    target = (named.group(1) if named else args).strip("<> ").removeprefix("mailto:").lower()
    agent_set = {a.lower(): a for a in agents}
    group_set = {g.lower(): g for g in groups}
    if not target:
        return None, "#assign needs an agent's email or a group name."
    if target in agent_set:
        return agent_set[target], None
    if target in group_set:
        return group_set[target], None
    written = _name_key(args.strip().strip("\"'"))
    for key in (written, written.rstrip(".,;:!")):
        matches = sorted(email for email, name in names.items() if _name_key(name) == key)
        if len(matches) == 1:
            return matches[0], None
        if matches:
            return None, (f"{len(matches)} agents are named {args.strip()!r} in rules.yaml; name one by address: "
                          + " or ".join(f"#assign {email}" for email in matches) + ".")
    listed = ", ".join(f"{names[a]} ({a})" if names.get(a) else a for a in sorted(agents, key=str.lower))
    return None, (f"{args!r} is neither an agent nor a group in rules.yaml "
                  f"(agents: {listed or 'none'}; groups: {', '.join(sorted(group_set)) or 'none'}).")


def _desk_only(name: str, desk: str | None) -> str:
    """Where a desk command written on a ticket goes instead."""
    return (f"#{name} is about you, not a ticket: write it to your desk address" + (f", {desk}" if desk else "")
            + " (the Reply-To of your daily summary).")


def plan_commands(reply: AgentReply, *, now: datetime, agents: Collection[str],
                  groups: Collection[str], zone: str = "UTC", away: Mapping[str, str] | None = None,
                  names: Mapping[str, str] | None = None, followers: Collection[str] = (),
                  ours: Callable[[str], bool] = lambda address: False, desk: str | None = None,
                  with_files: bool = False) -> Plan:
    """Check every command; the plan, or every error with how to write it; dates are read in `zone`.

    `away`: the agents `#assign` may not name, each with why and what to
    write instead (ticketd.domain.absence.assign_refusals). `names`: each
    agent's name in rules.yaml by email, for `#assign Alice`. `followers`:
    the ticket's followers (lower case), the addresses `#unfollow` may name.
    `ours`: whether an address is ticketd's own, which `#follow` may not name.
    `desk`: the agent's desk address, where `#away`, `#back` and `#summary` go.
    `with_files`: the mail carries files for whom it goes to, which are a
    proposal's or a note's content as words are (a patch, a contract).
    """
    errors: list[str] = []
    usage: list[str] = []
    values: dict = {}
    status_lines: list[tuple[str, Status]] = []
    seen: dict[str, str] = {}

    def fail(cmd: Command | None, message: str, name: str | None = None) -> None:
        errors.append(f"{cmd.line}: {message}" if cmd else message)
        key = name or (cmd.name if cmd else None)
        if key in USAGE and USAGE[key] not in usage:
            usage.append(USAGE[key])

    for cmd in reply.commands:
        if cmd.name in DESK_COMMANDS:
            # Whoever knows #away from the daily summary writes it where tickets are answered, too.
            fail(cmd, _desk_only(cmd.name, desk))
            continue
        if cmd.name not in USAGE:
            fail(cmd, f"#{cmd.name} is not a command. Commands are: "
                      + ", ".join("#" + n for n in USAGE) + ".")
            continue
        if cmd.name in seen and cmd.name != "note":
            fail(cmd, f"#{cmd.name} is given twice ({seen[cmd.name]!r} and {cmd.line!r}); give it once.")
            continue
        seen[cmd.name] = cmd.line
        args = cmd.args.split()
        if cmd.name == "note":
            values["internal"] = True
        elif cmd.name == "status":
            status = parse_status(_word(cmd.args)) if cmd.args else None
            if not cmd.args:
                fail(cmd, "#status needs a status.")
            elif status is None:
                fail(cmd, f"{cmd.args!r} is not a status.")
            elif status == Status.POSTPONED:
                fail(cmd, "postponed needs a wake-up time: use #postpone instead.", "postpone")
            elif status == Status.IN_DEVELOPMENT:
                fail(cmd, "in_development needs engineer, tracker key and due date: use #dev instead.", "dev")
            elif not agent_may_set(status):
                fail(cmd, f"agents cannot set the status {status.value}.")
            else:
                status_lines.append((cmd.line, status))
                if status == Status.SOLUTION_PROPOSED:
                    values["propose"] = True
        elif cmd.name == "assign":
            target, wrong = assign_target(cmd.args, agents, groups, names or {})
            if wrong:
                fail(cmd, wrong)
            elif target in (away or {}):
                fail(cmd, away[target])
            else:
                values["assign_to"] = target
        elif cmd.name == "priority":
            if _word(cmd.args) in PRIORITIES:
                values["priority"] = _word(cmd.args)
            else:
                fail(cmd, f"{cmd.args!r} is not a priority." if cmd.args else "#priority needs a priority.")
        elif cmd.name == "type":
            # The words customers' key facts take (`#type feature` is idea), so the two never disagree.
            if (named := type_named(cmd.args)) is not None:
                values["type"] = named
            else:
                fail(cmd, f"{cmd.args!r} is not a type." if cmd.args else "#type needs a type.")
        elif cmd.name == "postpone":
            # A duration (`3d`, `1 day 2 hours`), or an ISO date with a time of day (`2030-12-01 09:00`).
            try:
                until = read_ahead(_typed_end_cut(cmd.args), now, zone)
            except TooFarAhead as exc:
                fail(cmd, str(exc))
                continue
            if until is None:
                fail(cmd, f"{cmd.args!r} is not a duration or an ISO date." if cmd.args
                     else "#postpone needs a duration or an ISO date.")
            elif until <= now:
                when = "is now" if until == now else "is in the past"   # `#postpone 0d`
                fail(cmd, f"{cmd.args!r} {when}; give a time to wake the ticket up in the future.")
            else:
                values["postponed_until"] = until
                status_lines.append((cmd.line, Status.POSTPONED))
        elif cmd.name == "dev":
            if len(args) != 3:
                fail(cmd, f"#dev takes exactly three words, engineer, tracker key and due date; got {len(args)}.")
            else:
                try:
                    due = read_ahead(args[2], now, zone)
                except TooFarAhead as exc:
                    fail(cmd, str(exc))
                    continue
                if due is None:
                    fail(cmd, f"{args[2]!r} is not an ISO date or a duration.")
                elif due <= now:
                    fail(cmd, f"the due date {args[2]!r} is in the past.")
                else:
                    values.update(dev_engineer=args[0][:320], dev_tracker_key=args[1][:128], dev_due=due)
                    status_lines.append((cmd.line, Status.IN_DEVELOPMENT))
        elif cmd.name == "propose":
            if cmd.args:
                fail(cmd, "#propose takes nothing on its line; put the proposed solution below it.")
            else:
                values["propose"] = True
                status_lines.append((cmd.line, Status.SOLUTION_PROPOSED))
        elif cmd.name == "close":
            values["close_reason"] = cmd.args or None
            status_lines.append((cmd.line, Status.CLOSED))
        elif cmd.name == "canned":
            if len(args) != 1:
                fail(cmd, "#canned takes the name of one saved reply.")
            else:
                values["canned"] = args[0].lower()
        elif cmd.name == "history":
            if cmd.args:
                fail(cmd, "#history takes nothing on its line.")
            else:
                values["history"] = True
        elif cmd.name == "follow":
            named = _named_addresses(cmd.args)
            agent_set = {a.lower() for a in agents}
            refused = [why for a in named if (why := follow_refusal(a, agent=a in agent_set, ours=ours(a)))]
            if not named:
                fail(cmd, "#follow needs the address of whom to add.")
            elif refused:
                fail(cmd, "; ".join(refused) + ".")
            else:
                values["follow"] = tuple(named)
        elif cmd.name == "unfollow":
            named = _named_addresses(cmd.args)
            strangers = [a for a in named if a not in followers]
            if not named:
                fail(cmd, "#unfollow needs a follower's address.")
            elif strangers:
                fail(cmd, f"{', '.join(strangers)} {'is' if len(strangers) == 1 else 'are'} not following this "
                          f"ticket (its followers: {', '.join(sorted(followers)) or 'none'}); the requester "
                          "always gets its replies.")
            else:
                values["unfollow"] = tuple(named)
        elif cmd.name == "merge":
            m = _MERGE_TARGET.match(" ".join(args))
            number = int(m.group(1) or m.group(2)) if m else None
            if not cmd.args:
                fail(cmd, "#merge needs the ticket this one joins, such as [#1042].")
            elif number is None:
                fail(cmd, f"{cmd.args!r} is not a ticket; name it by its tag, such as [#1042].")
            elif not possible_id(number):
                fail(cmd, f"there is no ticket {number}.")
            else:
                values["merge_into"] = number

    lost = [seen[name] for name in _LOST_IN_MERGE if name in seen]
    if "merge" in seen and lost:
        fail(None, f"{seen['merge']} closes this ticket, and {'; '.join(lost)} would change only the ticket "
                   "that closes. Merge first, then write them in a reply on the ticket it joins.", "merge")
    both = [a for a in values.get("follow", ()) if a in values.get("unfollow", ())]
    if both:
        fail(None, f"{', '.join(both)} {'is' if len(both) == 1 else 'are'} named by both #follow and #unfollow; "
                   "give one.", "follow")
    if len(status_lines) > 1 and len({s for _, s in status_lines}) > 1:
        fail(None, "these change the status in different ways: "
                   + "; ".join(line for line, _ in status_lines) + ". Give one status change per mail.")
    elif len(status_lines) > 1:
        fail(None, "the status is set twice: " + "; ".join(line for line, _ in status_lines)
                   + ". Give it once.")
    note_text = reply.body or next((c.args for c in reply.commands if c.name == "note"), "")
    implied_note = any(c.line == IMPLIED_NOTE for c in reply.commands)
    asked, asking = next(((line, s) for line, s in status_lines if s in _ASKING_THE_CUSTOMER), (None, None))
    if implied_note and asked:
        # The words stay with the agents, so the customer would never see the solution or the
        # question the ticket then waits on, its reminder and auto-close running all the same.
        keep = ("" if asking == Status.SOLUTION_PROPOSED
                else " To keep the words internal all the same, write #note above them.")
        fail(None, f"{asked}: this is a reply to the mail of a colleague's internal note, so its words stay "
                   "with the agents and the customer would never see them. Reply to this mail instead: "
                   f"that reaches the customer.{keep}")
    elif values.get("internal") and values.get("propose"):
        fail(None, "#note keeps the reply from the customer, but a proposed solution must reach them: "
                   "send the note and the proposal as two mails.", "propose")
    if values.get("propose") and not reply.body and not values.get("canned") and not with_files:
        line = next((c.line for c in reply.commands if c.name in ("propose", "status")), "#propose")
        fail(None, f"{line}: a proposed solution needs its text below the commands (or "
                   "the file that is the solution attached).", "propose")
    if values.get("internal") and not note_text and not values.get("canned") and not with_files:
        fail(None, "the note is empty; write it below #note (or attach the file it is about).", "note")

    for line in reply.unreadable:
        # "#note.\nVIP, credit limit 5000." was relayed to the customer word for word.
        near = meant_command(line)
        fail(None, f"{line}: cannot be read as a command (#{near}? write '#', the command's name, then a space "
                   "or a colon and what it takes), and as text it would have gone to the customer, so nothing "
                   "was sent.", near)

    for line in stray_commands(reply.body):
        # "Hi team,\n#close\nspam." went to the customer word for word, the ticket left open:
        # the agent meant a command, and the customer must not read it.
        name = _COMMAND_LINE.match(line).group("name").lower()
        fail(None, f"{line!r} below other text is not read as a command (commands go on the first lines, "
                   "before any other text), and the reply would have gone to the customer with it in. "
                   + (_desk_only(name, desk) if name in DESK_COMMANDS else "Put the commands at the top."))

    if errors:
        return Plan(errors=tuple(errors), usage=tuple(usage), asked_customer_from_note=bool(implied_note and asked))
    status_line, status = status_lines[0] if status_lines else (None, None)
    return Plan(status=status, status_command=status_line, **values)


@dataclass(frozen=True)
class Unchanged:
    """The commands of a checked plan that would change nothing on the ticket as it is."""
    reasons: tuple[str, ...] = ()   # "<command as written>: why nothing changes", one per such command
    whole_mail: bool = False        # every command is such, and there is no public text and no #note


# How the event that set the current status reads in an answer to the agent.
_STATUS_STEPS = {
    "closed_by_agent": "closed by agent {actor}",
    "accepted": "closed when {actor} accepted the proposed solution",
    "auto_closed": "closed automatically: {reason}",
    "rejected": "opened when {actor} rejected the proposed solution",
    "reopened": "reopened by a mail from {actor}",
}


def _when(at: datetime) -> str:
    return at.replace(microsecond=0).isoformat() + "Z"


def _since(event: Mapping | None) -> str:
    """Who set the current status and when, as " (closed by agent x at ...)"; empty without an event."""
    if event is None:
        return ""
    reason = (event.get("reason") or "").split(";")[0]
    step = _STATUS_STEPS.get(event["kind"], "set by {actor}").format(actor=event["actor"], reason=reason)
    return f" ({step} at {_when(event['at'])})"


def _status_unchanged(plan: Plan, ticket: Mapping, status_event: Mapping | None) -> str | None:
    """Why the plan's status change changes nothing, or None if it changes something."""
    if plan.status is None or plan.status.value != ticket["status"]:
        return None
    since = _since(status_event)
    if plan.status == Status.POSTPONED:
        if plan.postponed_until != ticket["postponed_until"]:
            return None
        return f"the ticket is already postponed until {_when(plan.postponed_until)}{since}"
    if plan.status == Status.IN_DEVELOPMENT:
        asked = (plan.dev_engineer, plan.dev_tracker_key, plan.dev_due)
        if asked != (ticket["dev_engineer"], ticket["dev_tracker_key"], ticket["dev_due"]):
            return None
        return f"the ticket is already in development with these engineer, tracker key and due date{since}"
    if plan.status == Status.CLOSED:
        return f"ticket {format_tag(ticket['id'])} is already closed{since}"
    return f"the status is already {plan.status.value}{since}"


def _unchanged_reason(cmd: Command, plan: Plan, ticket: Mapping, status_event: Mapping | None,
                      people: Mapping[str, str]) -> str | None:
    """Why one checked command changes nothing on the ticket, or None if it changes something."""
    if cmd.name in ("priority", "type"):
        value = getattr(plan, cmd.name)
        return f"the {cmd.name} is already {value}" if value == ticket[cmd.name] else None
    if cmd.name == "assign":
        # A group always picks again (skipping the current assignee): only an
        # agent named who already has the ticket changes nothing.
        target, assignee = plan.assign_to or "", ticket["assignee"] or ""
        if "@" in target and target.casefold() == assignee.casefold():
            return f"the ticket is already assigned to {assignee}"
        return None
    if cmd.name in ("status", "close", "propose", "postpone", "dev"):
        return _status_unchanged(plan, ticket, status_event)
    if cmd.name == "follow":
        on_it = [why for a in plan.follow if (why := already_on_ticket(a, people.get(a)))]
        return "; ".join(on_it) if len(on_it) == len(plan.follow) else None
    return None   # #note: not a change to the ticket's fields


def closed_waits_for_nobody(ticket_id: int) -> str:
    """Why a closed ticket is not given to anyone: the words of `#assign` and `ticketd tickets assign` alike."""
    return f"ticket {format_tag(ticket_id)} is closed: it waits for nobody"


def assign_refusal(reply: AgentReply, plan: Plan, ticket: Mapping) -> str | None:
    """Why a checked plan's `#assign` may not apply to `ticket`, as `ticketd tickets assign` refuses it; or None.

    A ticket that is closed after this mail, already or by its own
    `#close`, has nothing for an agent to do: handed over, they were told it
    was theirs, and a group with nobody available said it waited there.
    """
    if plan.assign_to is None:
        return None
    line = next(c.line for c in reply.commands if c.name == "assign")
    if plan.status == Status.CLOSED:
        return (f"{line}: {plan.status_command} closes the ticket, and a closed ticket waits for nobody. "
                "Give one of the two")
    if plan.status is None and ticket["status"] == Status.CLOSED.value:
        return (f"{line}: {closed_waits_for_nobody(ticket['id'])}. To give it to someone, reopen it: write "
                "#status open above the #assign")
    return None


def unchanged_commands(reply: AgentReply, plan: Plan, ticket: Mapping, *,
                       status_event: Mapping | None = None, people: Mapping[str, str] | None = None) -> Unchanged:
    """Which commands of a checked plan change nothing on `ticket`, and whether that is the whole mail.

    `status_event` is the history event that set the ticket's current status
    (`kind`, `actor`, `at`, `reason`), to say who did it and when. `people`:
    the ticket's participants' roles by address (lower case), for `#follow`.
    """
    changing = [c for c in reply.commands if c.name not in ("note", "history")]
    reasons = []
    for cmd in changing:
        why = _unchanged_reason(cmd, plan, ticket, status_event, people or {})
        if why is not None:
            reasons.append(f"{cmd.line}: {why}")
    # #history always has an effect: the mail it asks for.
    whole = (bool(changing) and len(reasons) == len(changing) and not reply.body and not plan.internal
             and not plan.history)
    return Unchanged(tuple(reasons), whole)
