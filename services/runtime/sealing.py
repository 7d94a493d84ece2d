"""Secrets at rest: what a daemon must keep of a secret (a pool's storage password) is sealed with the deployment key.

The key is 32 random bytes in a file readable by its owner only, the same on every host of a deployment (as
CloudStack's management key is): an agent reopens a pool that another agent of its cluster attached. A sealed
value is `v1:` and the base64 of a 12-byte nonce and the AES-256-GCM ciphertext with its tag; the caller's
`context` (e.g. the pool's id) is authenticated with it, so a sealed value copied to another row does not open.

If the key file does not exist, `from_file` creates it (mode 0600, in a directory of mode 0700 if it creates that
too) and says so in the log: a single-host deployment then works at once, and the operator copies that file to
the other hosts. A value sealed with another key is refused with an error that says which key file to compare;
neither the key nor the plaintext ever appears in an error or a log line.
"""

import base64
import binascii
import os
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemas.errors import FailedPrecondition, InvalidArgument

log = structlog.get_logger(__name__)
KEY_BYTES = 32
_NONCE_BYTES = 12
_VERSION = "v1:"


class SecretSealer:
    """Seals and opens secrets with the deployment key (AES-256-GCM)."""

    def __init__(self, key: bytes, *, source: str = "the deployment key") -> None:
        if len(key) != KEY_BYTES:
            raise InvalidArgument(f"{source} must hold {KEY_BYTES} bytes (base64), not {len(key)}", field="secret_key")
        self._aead = AESGCM(key)
        self.source = source

    @classmethod
    def from_file(cls, path: Path) -> "SecretSealer":
        """The sealer of the key in `path` (base64 of 32 bytes), created there first if the file does not exist."""
        path = path.expanduser()
        if not path.exists():
            _create_key_file(path)
        try:
            text = path.read_text().strip()
            key = base64.b64decode(text, validate=True)
        except (OSError, UnicodeDecodeError, binascii.Error) as error:
            raise FailedPrecondition(
                f"cannot read the secret key file {path}: {type(error).__name__}", field="secret_key_file"
            ) from None
        return cls(key, source=f"secret key file {path}")

    def seal(self, plaintext: bytes, context: bytes) -> str:
        """`plaintext` sealed, bound to `context`."""
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + base64.b64encode(nonce + self._aead.encrypt(nonce, plaintext, context)).decode("ascii")

    def open(self, sealed: str, context: bytes) -> bytes:
        """The plaintext of `sealed`; `FailedPrecondition` if it was sealed with another key or for another context."""
        if not sealed.startswith(_VERSION):
            raise FailedPrecondition("a sealed secret has an unknown format", field="sealed")
        try:
            raw = base64.b64decode(sealed[len(_VERSION) :], validate=True)
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context)
        except (binascii.Error, ValueError, InvalidTag):
            raise FailedPrecondition(
                f"a sealed secret does not open with {self.source}: every host of a deployment needs the same key "
                "file (STRATA_SECRET_KEY_FILE)",
                field="secret_key_file",
            ) from None


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.new")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, base64.b64encode(os.urandom(KEY_BYTES)) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # A link, not a rename: of two daemons starting together on one host, one key wins whole and the other
        # daemon reads it (a rename would let the second replace the first's key after the first had used it).
        os.link(draft, path)
    except FileExistsError:
        return
    finally:
        draft.unlink()
    log.warning("created a new secret key; copy it to every host of this deployment", path=str(path))
