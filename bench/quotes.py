"""How much of the public reply corpora ingest.quotes.strip_reply gets exactly right.

Run from the repository root:  .venv/bin/python -m bench.quotes [-v] [--speed]

--speed also times strip_reply over the replies of bench/ingest.py's
generated mails (bench/mailgen.py, seed 1), the text ticketd strips in the
ingest benchmark.

Sets (../shared/corpus, see its README for the conventions):
  discourse  discourse/email_reply_trimmer: emails/X vs trimmed/X, compared after .strip()
  talon      mailgun/talon standard_replies: first text/plain part, expected "Hello" or X_reply_text
  talon-html mailgun/talon html_replies: the HTML body made text, then stripped; with all
             whitespace removed it must read "Hi.Iamfine.Thanks,Alex"
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from ingest.html_text import html_to_text
from ingest.parse import parse_mail
from ingest.quotes import strip_reply

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
DISCOURSE = CORPUS / "discourse-email_reply_trimmer"
TALON = CORPUS / "mailgun-talon"


def discourse_cases() -> list[tuple[str, str, str]]:
    """(name, input text, expected reply)."""
    cases = []
    for path in sorted((DISCOURSE / "emails").glob("*.txt")):
        text = path.read_bytes().decode("utf-8")
        expected = (DISCOURSE / "trimmed" / path.name).read_bytes().decode("utf-8")
        cases.append((path.stem, text, expected.strip()))
    return cases


def talon_cases() -> list[tuple[str, str, str]]:
    """(name, first text/plain part, expected reply)."""
    cases = []
    folder = TALON / "standard_replies"
    for path in sorted(folder.glob("*.eml")):
        parsed = parse_mail(path.read_bytes())
        expected_file = folder / f"{path.stem}_reply_text"
        expected = expected_file.read_text().strip() if expected_file.exists() else "Hello"
        # talon's rule is the first text/plain part; for all twelve mails that
        # is exactly parse_mail's text (checked when this bench was written).
        cases.append((path.stem, parsed.text, expected))
    return cases


def talon_html_cases() -> list[tuple[str, str, str]]:
    cases = []
    for path in sorted((TALON / "html_replies").glob("*.html")):
        cases.append((path.stem, html_to_text(path.read_bytes().decode("utf-8", "replace")), "Hi.Iamfine.Thanks,Alex"))
    return cases


def score(cases, *, squash: bool = False, verbose: bool = False) -> tuple[int, int, list[str]]:
    good, failed = 0, []
    for name, text, expected in cases:
        got = strip_reply(text).strip()
        ok = re.sub(r"\s+", "", got) == expected if squash else got == expected
        good += ok
        if not ok:
            failed.append(name)
            if verbose:
                print(f"--- {name}: expected\n{expected}\n--- got\n{got}\n")
    return good, len(cases), failed


def speed(n: int = 2000) -> str:
    """Milliseconds per reply over the generated benchmark mails' replies."""
    from bench import mailgen

    texts = [parsed.text for parsed in (parse_mail(mail.data) for mail in mailgen.generate(n, seed=1))
             if parsed.in_reply_to]
    started = time.perf_counter()
    for text in texts:
        strip_reply(text)
    elapsed = time.perf_counter() - started
    average = sum(map(len, texts)) / len(texts)
    return f"speed: {1000 * elapsed / len(texts):.2f} ms per reply ({len(texts)} replies of {average:.0f} characters)"


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    started = time.perf_counter()
    results = {
        "discourse": score(discourse_cases(), verbose=verbose),
        "talon": score(talon_cases(), verbose=verbose),
        "talon-html": score(talon_html_cases(), squash=True, verbose=verbose),
    }
    for name, (good, total, failed) in results.items():
        print(f"{name:11s} {good:3d}/{total:<3d} {100 * good / total:5.1f}%   failing: {' '.join(failed) or '-'}")
    good = sum(r[0] for r in results.values())
    total = sum(r[1] for r in results.values())
    print(f"{'all':11s} {good:3d}/{total:<3d} {100 * good / total:5.1f}%   ({time.perf_counter() - started:.2f} s)")
    if "--speed" in argv:
        print(speed())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
