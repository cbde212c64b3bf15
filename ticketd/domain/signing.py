"""HMAC-signed tokens for reply addresses and Message-IDs, with rotating keys.

A token is `<payload>.<kid><mac>`: `kid` (4 hex) names the key that signed
it, so an old key listed in `previous_secret_keys` still verifies threads
opened before a rotation. Everything is lower case: some MTAs fold the
local part's case (RFC 5321 section 2.4 lets them treat it as they like).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

MAC_HEX = 16  # 64 bits: forging one by guessing takes 2**63 mails on average


def key_id(secret: str) -> str:
    return hashlib.sha256(b"ticketd-kid:" + secret.encode()).hexdigest()[:4]


def _mac(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()[:MAC_HEX]


@dataclass(frozen=True)
class Signer:
    """Signs with the current key; verifies with it and the previous ones."""

    secret: str
    previous: tuple[str, ...] = ()

    def sign(self, payload: str) -> str:
        payload = payload.lower()
        return f"{payload}.{key_id(self.secret)}{_mac(self.secret, payload)}"

    def verify(self, token: str) -> str | None:
        """The payload of a token we signed, or None if it is not ours."""
        token = token.strip().lower()
        payload, sep, signature = token.rpartition(".")
        if not sep or len(signature) != 4 + MAC_HEX:
            return None
        kid, mac = signature[:4], signature[4:]
        for secret in (self.secret, *self.previous):
            if key_id(secret) == kid and hmac.compare_digest(_mac(secret, payload), mac):
                return payload
        return None


def address_fingerprint(address: str) -> str:
    """A short, stable stand-in for an address inside a token."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()[:8]
