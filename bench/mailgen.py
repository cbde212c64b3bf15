"""Generated support mail for the ingest benchmark: real sizes, threads, attachments, non-ASCII, HTML."""

from __future__ import annotations

import html
import random
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from datetime import UTC, datetime, timedelta

SUPPORT = "support@example.com"

# Body text in the languages customers write in; non-ASCII on purpose.
SENTENCES = [
    "The export to CSV stops halfway and the file is empty.",
    "Since the update yesterday I cannot log in any more, the page just reloads.",
    "Could you please check why invoice 2024-0113 was charged twice?",
    "We have about forty users affected, mostly in the Berlin office.",
    "It happens every time, I attached a screenshot of the error.",
    "Die Synchronisation schlägt seit Montag fehl, Fehlermeldung siehe unten.",
    "Bitte um Rückruf, wir müssen das bis Freitag gelöst haben.",
    "Не приходит письмо для сброса пароля, проверил папку спам.",
    "Спасибо, но проблема осталась: отчёт по-прежнему пустой.",
    "La factura de marzo aparece duplicada en el panel de administración.",
    "¿Pueden ampliar el límite de almacenamiento para nuestra cuenta?",
    "导出功能在处理大文件时崩溃，请尽快处理。",
    "我们的账户无法登录，错误代码为 403。",
    "Le rapport mensuel n'est pas arrivé, pourriez-vous le renvoyer ?",
    "Thanks for the quick answer — that fixed it for most of our users.",
    "Our firewall logs show connections being reset after about 30 seconds.",
]
SUBJECTS = [
    "Export to CSV is broken", "Cannot log in after update", "Invoice charged twice",
    "Synchronisation schlägt fehl", "Не приходит письмо для сброса пароля", "Factura duplicada",
    "导出功能崩溃", "Rapport mensuel manquant", "Refund request for order 88231",
    "Storage limit reached", "Connection reset after 30 s", "Zugriff verweigert (403)",
]
NAMES = ["Anna Müller", "José Pérez", "Олег Петров", "王芳", "Chloé Durand", "John Smith",
         "Søren Kierkegaard", "Zoë O'Neil", "Ахмед Алиев", "Björn Ångström"]
ATTACHMENTS = [
    ("screenshot.png", "image", "png"), ("error-log.txt", "text", "plain"),
    ("Rechnung_März.pdf", "application", "pdf"), ("отчёт.xlsx", "application",
                                                   "vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("config backup.zip", "application", "zip"),
]


@dataclass(frozen=True)
class Mail:
    index: int
    sender: str          # envelope MAIL FROM and header From
    data: bytes          # the whole message, CRLF line ends
    reply_to: int | None  # index of the mail it answers, if a reply
    attachments: int
    html: bool


def _text(rng: random.Random, size: int) -> str:
    """Paragraphs of sentences, about `size` bytes of UTF-8."""
    out: list[str] = []
    length = 0
    while length < size:
        para = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(2, 6)))
        out.append(para)
        length += len(para.encode()) + 2
    return "\n\n".join(out)


def _target_size(rng: random.Random) -> int:
    # Log-uniform between 2 and 60 kB: most support mail is small, a tail is big.
    return int(2000 * (30 ** rng.random()))


def generate(n: int, seed: int = 1, *, reply_share: float = 0.30, attachment_share: float = 0.15,
             html_share: float = 0.25) -> list[Mail]:
    """`n` mails; replies thread into mails at least 8 positions earlier (sent first)."""
    rng = random.Random(seed)
    start = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
    mails: list[Mail] = []
    meta: list[tuple[str, str, str, list[str], str, int]] = []  # mid, sender, subject, refs, text, ticket guess
    new_tickets = 0
    for i in range(n):
        name = rng.choice(NAMES)
        reply_to = None
        if i >= 16 and rng.random() < reply_share:
            reply_to = rng.randint(max(0, i - 300), i - 8)
        if reply_to is None:
            sender = f"customer{rng.randint(1, 400)}@example.org"
            subject = rng.choice(SUBJECTS)
            refs: list[str] = []
            new_tickets += 1
            # Tickets are numbered in arrival order, so this is the number the
            # ack would carry (concurrent clients may swap neighbours).
            ticket_guess = new_tickets
            quoted = ""
        else:
            o_mid, sender, o_subject, o_refs, o_text, ticket_guess = meta[reply_to]
            base = o_subject.removeprefix("Re: ")
            subject = base if base.startswith("[#") else f"[#{ticket_guess}] {base}"
            subject = "Re: " + subject
            refs = (o_refs + [o_mid])[-10:]
            quoted = "\n\nOn Mon, 3 Mar 2025 at 09:12, Support <support@example.com> wrote:\n" + "\n".join(
                "> " + line for line in o_text[:1500].splitlines())
        size = _target_size(rng)
        n_att = 0
        if rng.random() < attachment_share:
            n_att = 1 if rng.random() < 0.8 else 2
        is_html = rng.random() < html_share
        cte = rng.choice(["quoted-printable", "base64", "8bit"])
        # Budget the text so the whole mail lands near `size`: the transfer
        # encoding inflates it by about a third, an HTML twin doubles it.
        text_size = size if not n_att else max(600, size // 4)
        text_size = max(500, int(text_size / (1.3 * (2 if is_html else 1))) - len(quoted))
        text = _text(rng, text_size) + f"\n\n-- \n{name}\nExample Org, Tel. +49 30 1234567"
        body = text + quoted

        msg = EmailMessage(policy=SMTP)
        mid = f"<bench.{seed}.{i}.{rng.getrandbits(40):x}@mail.example.org>"
        msg["From"] = formataddr((name, sender))
        msg["To"] = formataddr(("Support", SUPPORT))
        msg["Subject"] = subject
        msg["Date"] = format_datetime(start + timedelta(seconds=37 * i))
        msg["Message-ID"] = mid
        if refs:
            msg["In-Reply-To"] = refs[-1]
            msg["References"] = " ".join(refs)
        msg["User-Agent"] = rng.choice(["Thunderbird 128.3", "Microsoft Outlook 16.0", "Apple Mail (2.3774)"])
        msg.set_content(body, subtype="plain", charset="utf-8", cte=cte)
        if is_html:
            paras = "".join(f"<p>{html.escape(p)}</p>" for p in body.split("\n\n"))
            msg.add_alternative(f"<html><body style=\"font-family:Arial\">{paras}</body></html>", subtype="html",
                                charset="utf-8")
        for _ in range(n_att):
            filename, maintype, subtype = rng.choice(ATTACHMENTS)
            blob = rng.randbytes(max(500, (size - text_size) * 3 // 4 // n_att))
            msg.add_attachment(blob, maintype=maintype, subtype=subtype, filename=filename)
        data = msg.as_bytes(policy=SMTP)
        mails.append(Mail(i, sender, data, reply_to, n_att, is_html))
        meta.append((mid, sender, subject, refs, text, ticket_guess))
    return mails


def describe(mails: list[Mail]) -> str:
    sizes = sorted(len(m.data) for m in mails)
    n = len(mails)
    return (f"{n} mails, {sum(sizes) / 1e6:.1f} MB, size p50 {sizes[n // 2] / 1000:.1f} kB, "
            f"min {sizes[0] / 1000:.1f} kB, max {sizes[-1] / 1000:.1f} kB; "
            f"{sum(m.reply_to is not None for m in mails)} replies, "
            f"{sum(m.attachments > 0 for m in mails)} with attachments, {sum(m.html for m in mails)} with HTML")


if __name__ == "__main__":
    import sys

    print(describe(generate(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)))
