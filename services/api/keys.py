"""API keys and console sessions, the only state the API daemon owns (schema `api`).

A key is 32 random bytes shown once when it is created; only its SHA-256 is kept, so the table leaks nothing
usable. A console session is a random token in an HttpOnly cookie, kept hashed the same way, with the CSRF token
that every form of that session must echo.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from time import monotonic
from typing import Any
from uuid import UUID, uuid4

from bus.postgres.errors import translated_errors
from bus.postgres.pool import Pool
from schemas.errors import InvalidArgument, NotFound

SCHEMA = "api"
KEY_PREFIX = "strata_"  # so that a key pasted in the wrong place is recognisable (and found by secret scanners)
CACHED_KEYS = 1024  # live keys remembered at most (the oldest forgotten first)


class Role(StrEnum):
    """Who may do what: a viewer reads, an operator also changes storage, an admin also manages keys."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Its place in the order viewer < operator < admin."""
        return list(Role).index(self)

    def allows(self, needed: "Role") -> bool:
        """Whether this role may do what `needed` may."""
        return self.rank >= needed.rank


@dataclass(frozen=True)
class ApiKey:
    """A key as the API knows it (never the key itself)."""

    key_id: UUID
    name: str
    role: Role
    created_at: datetime
    created_by: str
    revoked: bool = False

    @property
    def actor(self) -> str:
        """Who made a call, as the journal and the operations record it: `api:NAME(ROLE)`."""
        return f"api:{self.name}({self.role.value})"

    def public(self) -> dict[str, Any]:  # Any: JSON values
        """What GET /api-keys shows."""
        return {
            "key_id": str(self.key_id),
            "name": self.name,
            "role": self.role.value,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "revoked": self.revoked,
        }


@dataclass(frozen=True)
class Session:
    """A signed-in console: whose key, and the token its forms carry."""

    key: ApiKey
    csrf_token: str


def digest(secret: str) -> str:
    """The SHA-256 that is kept instead of a key or a session token."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _key_of(row: Any) -> ApiKey:  # an asyncpg Record
    return ApiKey(
        key_id=row["key_id"],
        name=row["name"],
        role=Role(row["role"]),
        created_at=row["created_at"],
        created_by=row["created_by"],
        revoked=row["revoked_at"] is not None,
    )


_KEY_COLUMNS = "key_id, name, role, created_at, created_by, revoked_at"


class KeyStore:
    """The keys and sessions on PostgreSQL."""

    def __init__(self, pool: Pool, *, session_hours: float = 12.0, cache_seconds: float = 0.0) -> None:
        self.pool = pool
        self.session_lifetime = timedelta(hours=session_hours)
        self.cache_seconds = cache_seconds
        """How long a key found live is trusted without asking the database again (0: always asked). A key revoked
        through this process is forgotten at once; one revoked through another API process is refused here at most
        this long after."""
        self._found: dict[str, tuple[ApiKey, float]] = {}  # key hash -> (key, until), oldest first

    async def create(self, name: str, role: Role, *, created_by: str) -> tuple[ApiKey, str]:
        """A new key: what is kept, and the key itself (returned this once, never stored)."""
        if not name.strip() or len(name) > 64:
            raise InvalidArgument("a key's name is 1 to 64 characters", field="name")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        with translated_errors():
            row = await self.pool.fetchrow(
                f"INSERT INTO {SCHEMA}.keys (key_id, name, role, key_hash, created_by) VALUES ($1, $2, $3, $4, $5) "
                f"RETURNING {_KEY_COLUMNS}",
                uuid4(),
                name.strip(),
                role.value,
                digest(secret),
                created_by,
            )
        return _key_of(row), secret

    async def find(self, secret: str) -> ApiKey | None:
        """The live key whose hash `secret` has, if any (a live one found within `cache_seconds` is not asked for
        again; an unknown or revoked one always is)."""
        hashed, now = digest(secret), monotonic()
        cached = self._found.get(hashed)
        if cached is not None and cached[1] > now:
            return cached[0]
        with translated_errors():
            row = await self.pool.fetchrow(
                f"SELECT {_KEY_COLUMNS} FROM {SCHEMA}.keys WHERE key_hash = $1 AND revoked_at IS NULL", hashed
            )
        self._found.pop(hashed, None)
        if row is None:
            return None
        key = _key_of(row)
        if self.cache_seconds > 0:
            while len(self._found) >= CACHED_KEYS:
                del self._found[next(iter(self._found))]
            self._found[hashed] = (key, now + self.cache_seconds)
        return key

    async def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        with translated_errors():
            rows = await self.pool.fetch(f"SELECT {_KEY_COLUMNS} FROM {SCHEMA}.keys ORDER BY created_at")
        return [_key_of(row) for row in rows]

    async def revoke(self, key_id: UUID) -> ApiKey:
        """Revoke a key and end its sessions; NotFound if there is no such key."""
        with translated_errors():  # one statement: the key revoked and its sessions gone together
            row = await self.pool.fetchrow(
                f"WITH gone AS (DELETE FROM {SCHEMA}.sessions WHERE key_id = $1) "
                f"UPDATE {SCHEMA}.keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = $1 "
                f"RETURNING {_KEY_COLUMNS}",
                key_id,
            )
        if row is None:
            raise NotFound(f"no API key {key_id}", field="key_id")
        for hashed in [hashed for hashed, (key, _) in self._found.items() if key.key_id == key_id]:
            del self._found[hashed]
        return _key_of(row)

    async def open_session(self, key: ApiKey) -> tuple[str, str]:
        """A new console session for `key`: its cookie token and its CSRF token."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with translated_errors():  # the expired sessions go as new ones come: the table holds live ones only
            await self.pool.execute(
                f"WITH expired AS (DELETE FROM {SCHEMA}.sessions WHERE expires_at < now()) "
                f"INSERT INTO {SCHEMA}.sessions (session_hash, key_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)",
                digest(token),
                key.key_id,
                csrf,
                datetime.now(UTC) + self.session_lifetime,
            )
        return token, csrf

    async def session(self, token: str) -> Session | None:
        """The live session of a cookie token (its key not revoked), if any."""
        with translated_errors():
            row = await self.pool.fetchrow(
                f"SELECT k.key_id, k.name, k.role, k.created_at, k.created_by, k.revoked_at, s.csrf_token "
                f"FROM {SCHEMA}.sessions s JOIN {SCHEMA}.keys k USING (key_id) "
                f"WHERE s.session_hash = $1 AND s.expires_at > now() AND k.revoked_at IS NULL",
                digest(token),
            )
        return Session(_key_of(row), row["csrf_token"]) if row is not None else None

    async def close_session(self, token: str) -> None:
        """Sign out: the session is gone."""
        with translated_errors():
            await self.pool.execute(f"DELETE FROM {SCHEMA}.sessions WHERE session_hash = $1", digest(token))
