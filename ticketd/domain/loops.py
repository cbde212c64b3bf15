"""Signals that a mail was written by a machine, so we must not answer it (RFC 3834)."""

from __future__ import annotations

from collections.abc import Mapping

_ROBOT_LOCALPARTS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "do-not-reply", "donotreply")


def auto_generated_reason(
    headers: Mapping[str, str],
    envelope_from: str | None,
    from_addr: str | None,
    content_type: str = "",
) -> str | None:
    """Why this mail must not be answered, or None if a human may be waiting.

    `headers` maps lower-case names to values. `envelope_from` is the SMTP
    MAIL FROM or the Return-Path: "" (the null path, RFC 5321 section 4.5.5)
    marks a bounce; None means we do not know it.
    """
    auto = headers.get("auto-submitted", "").split(";")[0].strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"  # RFC 3834 section 5
    if envelope_from is not None and envelope_from.strip("<> ") == "":
        return "null return path"
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    if headers.get("list-id") or headers.get("list-unsubscribe"):
        return "mailing list (List-Id)"
    if headers.get("x-auto-response-suppress"):
        return "X-Auto-Response-Suppress"
    if headers.get("x-autoreply") or headers.get("x-autorespond"):
        return "X-Autoreply"
    if content_type.lower().startswith("multipart/report"):
        return "delivery or disposition report"  # RFC 6522
    local = (from_addr or "").split("@", 1)[0].lower()
    if local in _ROBOT_LOCALPARTS or local.startswith("mailer-daemon"):
        return f"robot sender {from_addr}"
    return None
