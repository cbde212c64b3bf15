"""How an IMAP poller logs in: a password, or an OAuth 2.0 access token a command prints.

Microsoft 365 no longer takes passwords over IMAP and Google takes them only
as app passwords: both want SASL XOAUTH2 (Google also OAUTHBEARER, RFC 7628)
with a short-lived access token. Getting and refreshing that token is the
identity provider's business and differs for each one, so ticketd runs the
admin's command for a fresh token at every login, as mutt's
`imap_oauth_refresh_command` and isync's `PassCmd` do (for example `oama
access support@example.com`, or a script around the provider's library).
The token is never logged: a failing command is reported by its exit status
and the first line it wrote to stderr.
"""

from __future__ import annotations

import subprocess

from imapclient import IMAPClient

from ticketd.settings import ImapSettings

# Longer than an interactive provider's tool should ever need for a refresh;
# the poller backs off and tries again after a failure.
TOKEN_COMMAND_SECONDS = 60


class TokenCommandError(Exception):
    """The token command failed, timed out, or printed no token."""


def access_token(command: str, timeout: float = TOKEN_COMMAND_SECONDS) -> str:
    """Run the admin's command (through /bin/sh, so pipes work) and return the token it prints."""
    try:
        done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise TokenCommandError(f"oauth2_token_command did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise TokenCommandError(f"oauth2_token_command could not run: {exc.strerror}") from None
    if done.returncode != 0:
        said = next((line.strip() for line in done.stderr.decode(errors="replace").splitlines() if line.strip()),
                    "nothing on stderr")
        raise TokenCommandError(f"oauth2_token_command exited with status {done.returncode}: {said}")
    token = done.stdout.decode(errors="replace").strip()
    if not token or any(c.isspace() for c in token):
        # A token is one word (RFC 6750 section 2.1: b64token); anything else
        # is a prompt or a usage text, which must not be sent as a credential.
        raise TokenCommandError("oauth2_token_command printed no access token (expected one word on stdout)")
    return token


class PasswordNotSendableError(Exception):
    """A password or user name LOGIN cannot carry, and the server offers no AUTHENTICATE PLAIN."""


def log_in(client: IMAPClient, box: ImapSettings) -> None:
    """Authenticate `client` as the mailbox settings say."""
    if box.auth == "password":
        if (box.username + box.password).isascii():
            client.login(box.username, box.password)
        elif client.has_capability("AUTH=PLAIN"):
            # LOGIN's strings are ASCII (RFC 3501 section 9; imaplib refuses
            # anything else, naming a character of the password); SASL PLAIN
            # carries UTF-8 (RFC 4616), which is what servers check against.
            client.plain_login(box.username, box.password)
        else:
            raise PasswordNotSendableError(
                "the password or user name has characters outside ASCII, which IMAP LOGIN cannot send, and the "
                "server offers no AUTHENTICATE PLAIN (AUTH=PLAIN) that could")
    elif box.auth == "xoauth2":
        client.oauth2_login(box.username, access_token(box.oauth2_token_command))
    else:
        client.oauthbearer_login(box.username, access_token(box.oauth2_token_command))
