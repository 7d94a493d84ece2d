"""Secrets at rest: sealed with the deployment key, bound to their row, refused (without the secret) elsewhere."""

import base64
import os
import stat
from pathlib import Path

import pytest

from schemas.errors import FailedPrecondition, InvalidArgument
from services.runtime.sealing import KEY_BYTES, SecretSealer

pytestmark = pytest.mark.unit
SECRET = b'{"password": "hunter2-array-admin"}'


def test_a_sealed_secret_opens_with_the_same_key_and_context_only() -> None:
    key = os.urandom(KEY_BYTES)
    sealed = SecretSealer(key).seal(SECRET, b"pool-1")
    assert b"hunter2" not in sealed.encode()
    assert sealed != SecretSealer(key).seal(SECRET, b"pool-1")  # a fresh nonce every time
    assert SecretSealer(key).open(sealed, b"pool-1") == SECRET
    with pytest.raises(FailedPrecondition) as moved:
        SecretSealer(key).open(sealed, b"pool-2")
    with pytest.raises(FailedPrecondition) as other_key:
        SecretSealer(os.urandom(KEY_BYTES), source="secret key file /etc/strata/other.key").open(sealed, b"pool-1")
    assert "/etc/strata/other.key" in other_key.value.message
    for refused in (moved.value, other_key.value):
        assert "hunter2" not in refused.message
        assert refused.field == "secret_key_file"


def test_a_tampered_or_foreign_value_is_refused() -> None:
    sealer = SecretSealer(os.urandom(KEY_BYTES))
    sealed = sealer.seal(SECRET, b"pool-1")
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    for value in (flipped, "v1:not base64!", "v0:" + sealed[3:]):
        with pytest.raises(FailedPrecondition):
            sealer.open(value, b"pool-1")


def test_the_key_file_is_created_private_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "strata" / "secret.key"
    first = SecretSealer.from_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(base64.b64decode(path.read_text().strip())) == KEY_BYTES
    assert [entry.name for entry in path.parent.iterdir()] == ["secret.key"]  # no draft left behind
    second = SecretSealer.from_file(path)
    assert second.open(first.seal(SECRET, b"c"), b"c") == SECRET


def test_a_bad_key_is_refused_naming_the_file(tmp_path: Path) -> None:
    garbled = tmp_path / "garbled.key"
    garbled.write_text("this is not base64 !!\n")
    with pytest.raises(FailedPrecondition) as unreadable:
        SecretSealer.from_file(garbled)
    assert str(garbled) in unreadable.value.message
    short = tmp_path / "short.key"
    short.write_text(base64.b64encode(b"sixteen bytes!!!").decode())
    with pytest.raises(InvalidArgument) as wrong_size:
        SecretSealer.from_file(short)
    assert str(short) in wrong_size.value.message
