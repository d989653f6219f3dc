"""The credential vault: AES-GCM bound to its row, fail-closed keys, and key rotation."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import VaultError
from core.vault import Vault, generate_key, key_fingerprint

SECRETS = {"api_key": "visible-api-key-123", "secret": "top-secret-value-XYZ"}
KEY_A = generate_key()
KEY_B = generate_key()


def seal(vault: Vault, secrets: dict[str, str] = SECRETS, owner_id: int = 7, credential_id: str = "cred-1") -> bytes:
    return vault.encrypt(secrets, owner_id=owner_id, credential_id=credential_id)


def test_encrypt_then_decrypt_returns_the_secrets():
    vault = Vault(KEY_A)
    assert vault.decrypt(seal(vault), owner_id=7, credential_id="cred-1") == SECRETS


def test_blob_does_not_contain_the_plaintext():
    blob = seal(Vault(KEY_A))
    for value in (*SECRETS.values(), *SECRETS.keys()):
        assert value.encode() not in blob
    assert json.dumps(SECRETS, sort_keys=True).encode() not in blob


def test_two_encryptions_of_the_same_secrets_differ():
    vault = Vault(KEY_A)
    assert seal(vault) != seal(vault)  # a fresh nonce each time


def test_decrypt_with_another_owner_fails():
    vault = Vault(KEY_A)
    with pytest.raises(VaultError, match="failed authentication"):
        vault.decrypt(seal(vault), owner_id=8, credential_id="cred-1")


def test_decrypt_with_another_credential_id_fails():
    vault = Vault(KEY_A)
    with pytest.raises(VaultError, match="failed authentication"):
        vault.decrypt(seal(vault), owner_id=7, credential_id="cred-2")


@pytest.mark.parametrize("position", [0, 1, 2, 9, 10, 21, 22, -17, -1])
def test_any_tampered_byte_fails(position):
    vault = Vault(KEY_A)
    blob = bytearray(seal(vault))
    blob[position] ^= 0x01
    with pytest.raises(VaultError):
        vault.decrypt(bytes(blob), owner_id=7, credential_id="cred-1")


@pytest.mark.parametrize("blob", [b"", b"v1", b"v1" + b"\x00" * 20, b"not a vault blob at all, just some bytes"])
def test_truncated_or_foreign_blob_fails(blob):
    with pytest.raises(VaultError):
        Vault(KEY_A).decrypt(blob, owner_id=7, credential_id="cred-1")


def test_a_different_key_fails_closed_naming_the_key_problem():
    blob = seal(Vault(KEY_A))
    other = Vault(KEY_B)
    assert other.can_open(blob) is False
    with pytest.raises(VaultError, match="COPYTRADE_SECRET_KEY") as info:
        other.decrypt(blob, owner_id=7, credential_id="cred-1")
    assert "not configured" in str(info.value)
    assert "COPYTRADE_OLD_SECRET_KEYS" in str(info.value)


def test_rotation_opens_old_blobs_and_reseals_them_under_the_new_key():
    old_blob = seal(Vault(KEY_A))
    rotating = Vault(KEY_B, old_keys=[KEY_A])
    assert rotating.can_open(old_blob)
    assert rotating.needs_rotation(old_blob) is True
    assert rotating.decrypt(old_blob, owner_id=7, credential_id="cred-1") == SECRETS

    new_blob = rotating.reseal(old_blob, owner_id=7, credential_id="cred-1")
    assert rotating.needs_rotation(new_blob) is False
    new_only = Vault(KEY_B)
    assert new_only.decrypt(new_blob, owner_id=7, credential_id="cred-1") == SECRETS
    assert new_only.can_open(old_blob) is False
    assert Vault(KEY_A).can_open(new_blob) is False


def test_reseal_keeps_the_row_binding():
    rotating = Vault(KEY_B, old_keys=[KEY_A])
    new_blob = rotating.reseal(seal(Vault(KEY_A)), owner_id=7, credential_id="cred-1")
    with pytest.raises(VaultError):
        rotating.decrypt(new_blob, owner_id=7, credential_id="cred-2")


def test_reseal_of_a_blob_under_an_unknown_key_fails():
    with pytest.raises(VaultError):
        Vault(KEY_B).reseal(seal(Vault(KEY_A)), owner_id=7, credential_id="cred-1")


def test_blobs_of_the_current_key_do_not_need_rotation():
    vault = Vault(KEY_A)
    assert vault.needs_rotation(seal(vault)) is False


@pytest.mark.parametrize(
    "bad_key",
    [
        "not base64 !!!",
        "%%%%",
        base64.urlsafe_b64encode(b"x" * 16).decode(),  # 16 bytes: too short
        base64.urlsafe_b64encode(b"x" * 33).decode(),  # too long
        "",
    ],
)
def test_malformed_current_key_raises_naming_the_variable(bad_key):
    with pytest.raises(VaultError, match="COPYTRADE_SECRET_KEY"):
        Vault(bad_key)


def test_malformed_old_key_raises_naming_the_old_keys_variable():
    with pytest.raises(VaultError, match="COPYTRADE_OLD_SECRET_KEYS"):
        Vault(KEY_A, old_keys=["short"])


def test_error_for_a_malformed_key_does_not_echo_the_key():
    bad = base64.urlsafe_b64encode(b"k" * 31).decode()
    with pytest.raises(VaultError) as info:
        Vault(bad)
    assert bad not in str(info.value)


def test_generate_key_produces_distinct_valid_32_byte_keys():
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(base64.urlsafe_b64decode(key)) == 32
        Vault(key)  # accepted


def test_key_fingerprint_is_stable_short_and_does_not_contain_the_key():
    material = "my-exchange-api-key-abcdef"
    fingerprint = key_fingerprint(material)
    assert fingerprint == key_fingerprint(material)
    assert fingerprint != key_fingerprint(material + "x")
    assert material not in fingerprint
    assert 8 <= len(fingerprint) <= 16  # fits Credential.key_fingerprint (max 16)


@settings(max_examples=60, deadline=None)
@given(
    secrets=st.dictionaries(st.text(max_size=20), st.text(max_size=200), max_size=6),
    owner_id=st.integers(min_value=0, max_value=2**63 - 1),
    credential_id=st.text(min_size=1, max_size=32),
)
def test_any_secrets_dict_round_trips(secrets, owner_id, credential_id):
    vault = Vault(KEY_A)
    blob = vault.encrypt(secrets, owner_id=owner_id, credential_id=credential_id)
    assert vault.decrypt(blob, owner_id=owner_id, credential_id=credential_id) == secrets
