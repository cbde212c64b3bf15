"""The Received line the SMTP receiver puts on top of each mail it takes (RFC 5321 section 4.4)."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from email.utils import format_datetime

# RFC 5321 section 4.1.2: a domain or address literal is at most 255 octets; a longer HELO is cut there.
_HELO_MAX = 255


def received_line(*, helo: str | None, peer: object, by: str, esmtp: bool, smtputf8: bool,
                  recipients: list[str], when: datetime, line_end: bytes = b"\r\n") -> bytes:
    """`Received: from HELO ([address]) by BY (ticketd) with PROTOCOL for <rcpt>; date`, folded, ending in `line_end`.

    RFC 5321 section 4.4: a server that takes a mail for delivery MUST
    put such a line at the beginning of its content, saying who handed it
    over, from where and when; an operator reads it to trace a mail, and a
    mail's later hops keep it. The protocol is ESMTP, SMTP after a plain
    HELO, or UTF8SMTP when the sender asked for SMTPUTF8 (RFC 3848, RFC 6531
    section 3.7.3). `for` names the recipient only when there is one: with
    more, the line would show every copy's reader all of them, Bcc included.
    No reverse look-up is made: the 250 must not wait for DNS, and the
    address says the same.
    """
    protocol = "UTF8SMTP" if smtputf8 else "ESMTP" if esmtp else "SMTP"
    source = f"from {_helo_text(helo)}"
    address = _address_literal(peer)
    if address:
        source += f" ({address})"
    lines = [f"Received: {source}", f"\tby {by} (ticketd) with {protocol}"]
    if len(recipients) == 1:
        lines.append(f"\tfor <{recipients[0]}>")
    lines[-1] += f"; {format_datetime(when)}"
    text = line_end.decode().join(lines) + line_end.decode()
    return text.encode("utf-8", "surrogateescape")


def _helo_text(helo: str | None) -> str:
    """The name the client gave in HELO or EHLO, as a header may hold it: control characters, spaces and
    parentheses as `?` (they would end the word or open a comment), at most 255 characters."""
    if not helo:
        return "unknown"
    return "".join("?" if ch.isspace() or ord(ch) < 32 or ord(ch) == 127 or ch in "()" else ch
                   for ch in helo[:_HELO_MAX])


def _address_literal(peer: object) -> str:
    """The client's address as RFC 5321 section 4.1.3 writes it: `[192.0.2.1]`, `[IPv6:2001:db8::1]`."""
    if not isinstance(peer, tuple) or not peer:
        return ""   # a Unix socket, or no peer known
    try:
        ip = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped   # a dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d
        return f"[{mapped}]" if mapped is not None else f"[IPv6:{ip.compressed}]"
    return f"[{ip}]"
