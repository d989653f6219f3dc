"""Authenticated encryption of credential blobs.

AES-256-GCM with the owner id and credential id as associated data, so a ciphertext copied
onto another row (another user, another credential) fails to decrypt. Every blob names the
key that sealed it (an 8-byte key id), which lets several keys be active during a rotation:
the current key encrypts, older keys only decrypt, and ``rotate-key`` re-seals rows one by
one while the service keeps running.

Blob layout: b"v1" | key_id (8) | nonce (12) | ciphertext+tag.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import VaultError

_VERSION = b"v1"
_KEY_ID_LEN = 8
_NONCE_LEN = 12


def generate_key() -> str:
    """A new random 256-bit key, URL-safe base64, for COPYTRADE_SECRET_KEY."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _decode_key(text: str, variable: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode() + b"=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raise VaultError(f"{variable} is not URL-safe base64 (generate one with `copytrade gen-key`)") from None
    if len(raw) != 32:
        raise VaultError(f"{variable} must decode to 32 bytes, got {len(raw)} (generate one with `copytrade gen-key`)")
    return raw


def key_fingerprint(material: str) -> str:
    """A short non-reversible fingerprint shown to users so they can tell keys apart."""
    return hashlib.sha256(material.encode()).hexdigest()[:12]


class Vault:
    def __init__(
        self,
        current_key: str,
        old_keys: list[str] | tuple[str, ...] = (),
        *,
        on_open: Callable[[Iterable[str]], None] | None = None,
    ) -> None:
        """``on_open`` is told every secret value the vault opens (the log redactor masks them)."""
        self._on_open = on_open
        self._current = _decode_key(current_key, "COPYTRADE_SECRET_KEY")
        self._current_id = self._key_id(self._current)
        self._keys = {self._current_id: AESGCM(self._current)}
        for text in old_keys:
            raw = _decode_key(text, "COPYTRADE_OLD_SECRET_KEYS")
            self._keys.setdefault(self._key_id(raw), AESGCM(raw))

    @staticmethod
    def _key_id(raw: bytes) -> bytes:
        return hashlib.sha256(b"copytrade-key-id" + raw).digest()[:_KEY_ID_LEN]

    @staticmethod
    def _associated_data(owner_id: int, credential_id: str) -> bytes:
        return f"copytrade/credential/{owner_id}/{credential_id}".encode()

    def encrypt(self, secrets_: dict[str, str], *, owner_id: int, credential_id: str) -> bytes:
        nonce = os.urandom(_NONCE_LEN)
        plaintext = json.dumps(secrets_, sort_keys=True).encode()
        sealed = self._keys[self._current_id].encrypt(nonce, plaintext, self._associated_data(owner_id, credential_id))
        return _VERSION + self._current_id + nonce + sealed

    def decrypt(self, blob: bytes, *, owner_id: int, credential_id: str) -> dict[str, str]:
        if blob[:2] != _VERSION or len(blob) < 2 + _KEY_ID_LEN + _NONCE_LEN + 16:
            raise VaultError(f"credential {credential_id} is not a copytrade vault blob")
        key_id = blob[2 : 2 + _KEY_ID_LEN]
        nonce = blob[2 + _KEY_ID_LEN : 2 + _KEY_ID_LEN + _NONCE_LEN]
        aead = self._keys.get(key_id)
        if aead is None:
            raise VaultError(
                f"credential {credential_id} was sealed with a key that is not configured "
                "(set COPYTRADE_SECRET_KEY or add the old key to COPYTRADE_OLD_SECRET_KEYS)"
            )
        try:
            plaintext = aead.decrypt(
                nonce, blob[2 + _KEY_ID_LEN + _NONCE_LEN :], self._associated_data(owner_id, credential_id)
            )
        except InvalidTag:
            raise VaultError(
                f"credential {credential_id} failed authentication: it was altered or belongs to another row"
            ) from None
        secrets: dict[str, str] = json.loads(plaintext)
        if self._on_open is not None:
            self._on_open(secrets.values())
        return secrets

    def needs_rotation(self, blob: bytes) -> bool:
        return blob[2 : 2 + _KEY_ID_LEN] != self._current_id

    def can_open(self, blob: bytes) -> bool:
        return blob[2 : 2 + _KEY_ID_LEN] in self._keys

    def reseal(self, blob: bytes, *, owner_id: int, credential_id: str) -> bytes:
        return self.encrypt(
            self.decrypt(blob, owner_id=owner_id, credential_id=credential_id),
            owner_id=owner_id,
            credential_id=credential_id,
        )
