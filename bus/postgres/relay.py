"""`OutboxRelay`: publishes the outbox through a `Transport` with confirms, then marks the rows sent.

Claiming is a lease: one statement moves `next_attempt_at` of up to a batch of due unsent rows (`FOR UPDATE SKIP
LOCKED`) `claim_lease` seconds ahead and returns them, and commits at once. The rows are then published pipelined
(all publishes in flight, confirmed together) with no transaction open, and marked in one statement. So:
- no database transaction spans the broker's confirms (a slow confirm holds no row lock and no pool slot);
- a row that commits after a row with a higher id is still unsent and is claimed on a later pass (nothing is
  skipped, unlike polling `id > last_seen`);
- several relays share the backlog without publishing the same row twice in practice; a relay that dies
  mid-batch leaves its rows unsent, and they are claimed again once the lease runs out (at least once, which the
  inbox absorbs);
- a relay's next batch is claimed while the previous one awaits its confirms (two batches in flight at most).
A failed publish leaves its row unsent with `next_attempt_at` pushed back exponentially.
Order: one relay publishes in id order within a batch, and starts a batch's publishes only after the previous
batch's were written; rows retried later, or shared between several relays, may overtake each other, so consumers
must not rely on order across messages.
The relay wakes on NOTIFY (sent by the unit of work right after its commit), or directly when the unit of work runs
in the same process on the same pool (see `wake`), waits `coalesce` seconds so that the commits arriving together
make one batch, and polls as a safety net, which also covers writers of the outbox that do not notify.
A sent row is kept for `sent_retention` for an operator's look; the body of a message that carries a secret (a
field the journal masks, such as a pool's password) is emptied as it is marked sent, so that no secret stays at rest
in the outbox once it is delivered.
"""

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime

import asyncpg
import structlog

from bus.errors import Unroutable
from bus.ports import Transport, WireMessage
from bus.postgres.errors import is_driver_error, translate, translated_errors
from bus.postgres.migrate import DEFAULT_SCHEMA, validate_schema
from bus.postgres.pool import Pool, PoolConnection
from bus.postgres.records import notify_channel
from bus.postgres.relay_settings import PassResult, RelaySettings
from bus.postgres.undeliverable import UndeliverableCommands, is_undeliverable
from bus.postgres.unit_of_work import PostgresUnitOfWorkFactory
from bus.postgres.wake import RelayWakes
from schemas import registry
from schemas.errors import InvalidArgument, StrataError
from schemas.redact import needs_redaction

log = structlog.get_logger(__name__)
# An event is a fact for whoever listens: with no queue bound it is not an error (it is in the journal), so its row
# is settled with this note instead of being retried forever. An unroutable command still fails and is retried.
NO_SUBSCRIBER = "no queue subscribes to this event"
_RELISTEN_INTERVAL = 1.0  # seconds between attempts to LISTEN again while the poll alone wakes the relay


class OutboxRelay:
    """Publishes rows of `<schema>.outbox`; run one or several, in any process that can reach the database."""

    def __init__(
        self,
        pool: Pool,
        transport: Transport,
        *,
        database_url: str,
        schema: str = DEFAULT_SCHEMA,
        settings: RelaySettings | None = None,
        wakes: RelayWakes | None = None,
    ) -> None:
        """`wakes`: where units of work of this process on the same pool find this relay to wake it after their
        commit (the bootstrap gives the same `RelayWakes` to its unit-of-work factory); by default a NOTIFY wakes it."""
        self._pool = pool
        self._wakes = wakes if wakes is not None else RelayWakes()
        self._transport = transport
        self._database_url = database_url  # for the LISTEN connection, which must not hold a pool slot forever
        self._schema = validate_schema(schema)
        self._settings = settings or RelaySettings()
        self._channel = notify_channel(self._schema)
        self._wake = asyncio.Event()
        self._stopping = False
        self._listener: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        units = PostgresUnitOfWorkFactory(pool, schema=self._schema, wakes=self._wakes)
        self._undeliverable = UndeliverableCommands(units, transport)
        self._secret_types: dict[str, bool] = {}
        self._claim = f"""
            UPDATE {self._schema}.outbox AS o SET next_attempt_at = now() + make_interval(secs => $2)
            FROM (
                SELECT id FROM {self._schema}.outbox
                WHERE sent_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= now()
                ORDER BY id
                LIMIT $1
                FOR UPDATE SKIP LOCKED
            ) AS due
            WHERE o.id = due.id
            RETURNING o.id, o.message_id::text AS message_id, o.exchange, o.routing_key, o.type, o.body, o.headers,
                      o.correlation_id, o.occurred_at, o.app_id, o.content_type, o.reply_to, o.attempts,
                      o.created_at"""
        self._release = f"""
            UPDATE {self._schema}.outbox SET next_attempt_at = now() WHERE id = ANY($1::bigint[]) AND sent_at IS NULL"""
        self._mark_sent = f"""
            UPDATE {self._schema}.outbox SET sent_at = now(), attempts = attempts + 1, last_error = NULL,
                body = CASE WHEN id = ANY($2::bigint[]) THEN ''::bytea ELSE body END
            WHERE id = ANY($1::bigint[])"""
        self._mark_unheard = f"""
            UPDATE {self._schema}.outbox SET sent_at = now(), attempts = attempts + 1, last_error = '{NO_SUBSCRIBER}'
            WHERE id = ANY($1::bigint[])"""
        self._mark_failed = f"""
            UPDATE {self._schema}.outbox AS o
            SET attempts = o.attempts + 1, last_error = f.error,
                next_attempt_at = now() + make_interval(secs => f.delay)
            FROM unnest($1::bigint[], $2::text[], $3::float8[]) AS f(id, error, delay)
            WHERE o.id = f.id"""

    async def relay_once(self) -> PassResult:
        """Claim one batch of due rows, publish them all, mark the published ones sent and the others retried."""
        rows = await self._claim_batch()
        if not rows:
            return PassResult(0, 0, 0)
        return await self._settle(rows)

    async def drain(self) -> int:
        """Relay passes until no due row is left; return how many messages were published.

        The next batch is claimed and its publishes written while the previous batch awaits its confirms.
        """
        published = 0
        previous: asyncio.Task[PassResult] | None = None
        try:
            while True:
                rows = await self._claim_batch()
                if rows:
                    # Writing the publishes starts here, in claim order, before the previous batch is awaited.
                    current: asyncio.Task[PassResult] | None = asyncio.create_task(self._settle(rows))
                    await asyncio.sleep(0)
                else:
                    current = None
                if previous is not None:
                    task, previous = previous, None
                    published += (await task).published
                previous = current
                if current is None or len(rows) < self._settings.batch_size:
                    break
            if previous is not None:
                task, previous = previous, None
                published += (await task).published
        finally:
            if previous is not None:
                previous.cancel()
                with contextlib.suppress(BaseException):
                    await previous
        return published

    async def _claim_batch(self) -> list[asyncpg.Record]:
        with translated_errors():
            rows = await self._pool.fetch(self._claim, self._settings.batch_size, float(self._settings.claim_lease))
        return sorted(rows, key=lambda row: int(row["id"]))  # RETURNING follows no order

    async def _settle(self, rows: list[asyncpg.Record]) -> PassResult:
        """Publish the batch (one call, written in row order, confirms awaited together) and settle each row."""
        try:
            outcomes = await self._transport.publish_each(
                [(row["exchange"], row["routing_key"], _wire(row)) for row in rows]
            )
        except BaseException:
            await self._release_quietly([row["id"] for row in rows])
            raise
        for outcome in outcomes:
            if outcome is not None and not isinstance(outcome, Exception):
                # Cancellation: the rows go back to due at once rather than waiting out their lease.
                await self._release_quietly([row["id"] for row in rows])
                raise outcome
        sent = [row["id"] for row, outcome in zip(rows, outcomes, strict=True) if outcome is None]
        unheard = [row["id"] for row, outcome in zip(rows, outcomes, strict=True) if _nobody_listens(row, outcome)]
        failed = [
            (row, outcome)
            for row, outcome in zip(rows, outcomes, strict=True)
            if isinstance(outcome, Exception) and row["id"] not in unheard
        ]
        now = datetime.now(UTC)
        after = self._settings.undeliverable_after
        given_up = [(row, error) for row, error in failed if is_undeliverable(row, error, now, after)]
        failed = [(row, error) for row, error in failed if not is_undeliverable(row, error, now, after)]
        with translated_errors():
            async with self._pool.acquire() as connection:
                if unheard:
                    await connection.execute(self._mark_unheard, unheard)
                if sent:
                    secret = [
                        row["id"]
                        for row, outcome in zip(rows, outcomes, strict=True)
                        if outcome is None and self._carries_secrets(row["type"])
                    ]
                    await connection.execute(self._mark_sent, sent, secret)
                if failed:
                    await self._record_failures(connection, failed)
        for row, error in given_up:
            assert isinstance(error, Unroutable)
            await self._undeliverable.give_up(row, _wire(row), error)
        return PassResult(len(rows), len(sent) + len(unheard), len(failed) + len(given_up))

    def _carries_secrets(self, type_name: str) -> bool:
        """True if messages of `type_name` have a field the journal masks (a type this process does not know:
        False, and not remembered: the type may be registered later)."""
        known = self._secret_types.get(type_name)
        if known is None:
            try:
                known = self._secret_types[type_name] = needs_redaction(registry.model_for(type_name))
            except StrataError:
                return False
        return known

    async def _release_quietly(self, ids: list[int]) -> None:
        """Give claimed rows back (best effort, shielded from the cancellation in progress); the lease is the net."""
        try:
            await asyncio.shield(self._pool.execute(self._release, ids))
        except BaseException as error:
            if isinstance(error, Exception) and not is_driver_error(error):
                raise

    async def pending(self) -> int:
        """How many rows are not yet sent (due or backing off); rows given up on are not counted."""
        with translated_errors():
            count = await self._pool.fetchval(
                f"SELECT count(*) FROM {self._schema}.outbox WHERE sent_at IS NULL AND given_up_at IS NULL"
            )
        return int(count)

    async def backlog(self) -> tuple[int, float]:
        """How many rows still wait to be published, and how many seconds the oldest of them has waited (0 if none).
        A row given up on (an undeliverable command) waits no more: it is in the dead letters."""
        with translated_errors():
            row = await self._pool.fetchrow(
                f"SELECT count(*) AS rows, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) AS oldest "
                f"FROM {self._schema}.outbox WHERE sent_at IS NULL AND given_up_at IS NULL"
            )
        assert row is not None  # an aggregate always returns its row
        return int(row["rows"]), float(row["oldest"])

    async def housekeeping(self) -> tuple[int, int]:
        """Delete sent outbox rows and inbox rows older than their retention; return how many of each."""
        sent = await self.purge_sent(self._settings.sent_retention)
        with translated_errors():
            status = await self._pool.execute(
                f"DELETE FROM {self._schema}.inbox WHERE received_at < now() - make_interval(secs => $1)",
                float(self._settings.inbox_retention),
            )
        return sent, int(status.rsplit(" ", 1)[1])

    async def purge_sent(self, older_than_seconds: float) -> int:
        """Delete rows sent more than `older_than_seconds` ago; return how many. The journal keeps the record."""
        if older_than_seconds < 0:
            raise InvalidArgument("older_than_seconds must not be negative", field="older_than_seconds")
        with translated_errors():
            status = await self._pool.execute(
                f"DELETE FROM {self._schema}.outbox "
                "WHERE sent_at IS NOT NULL AND sent_at < now() - make_interval(secs => $1)",
                float(older_than_seconds),
            )
        return int(status.rsplit(" ", 1)[1])

    def listening(self) -> bool:
        """Tell whether the relay is subscribed to NOTIFY (if not, it relies on its poll)."""
        return self._listener is not None and not self._listener.is_closed()

    async def start(self) -> None:
        """Start relaying in the background until `stop`."""
        if self._task is not None:
            return
        self._stopping = False
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self._schema}")
        # Units of work on the same pool in this process wake this relay directly instead of sending NOTIFY, for as
        # long as it runs (a relay whose task ended for whatever reason is forgotten at once).
        self._wakes.register(self._wake.set)
        self._task.add_done_callback(lambda _: self._wakes.unregister(self._wake.set))

    async def stop(self) -> None:
        """Finish the batch in flight, then stop and close the LISTEN connection."""
        self._wakes.unregister(self._wake.set)
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        await self._close_listener()

    async def run(self) -> None:
        """Relay until `stop`: drain on every NOTIFY, and at least every `poll_interval` seconds."""
        failures = 0
        next_housekeeping = time.monotonic()
        while not self._stopping:
            await self._ensure_listener()
            self._wake.clear()  # before draining: a NOTIFY during the drain triggers another one
            delay = self._settings.poll_interval
            try:
                if self._settings.coalesce:
                    await asyncio.sleep(self._settings.coalesce)
                await self.drain()
                if time.monotonic() >= next_housekeeping:
                    next_housekeeping = time.monotonic() + self._settings.housekeeping_interval
                    await self.housekeeping()
                failures = 0
            except Exception as error:
                # The database is unreachable or refused, or a bug: keep going, slower, rather than die silently
                # with the outbox filling up behind.
                failures += 1
                delay = min(self._settings.backoff(failures), self._settings.poll_interval * 10)
                if isinstance(error, StrataError):
                    log.warning("outbox relay pass failed", error_class=type(error).__name__, error=error.message)
                else:
                    log.exception("outbox relay pass failed unexpectedly", error_class=type(error).__name__)
            if self._stopping:
                break
            if not self.listening():
                delay = min(delay, _RELISTEN_INTERVAL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _record_failures(
        self,
        connection: PoolConnection,
        failed: list[tuple[asyncpg.Record, Exception]],
    ) -> None:
        ids = [row["id"] for row, _ in failed]
        errors = [_describe(error) for _, error in failed]
        delays = [self._settings.backoff(row["attempts"] + 1) for row, _ in failed]
        await connection.execute(self._mark_failed, ids, errors, delays)
        log.warning(
            "outbox publish failed; will retry",
            rows=len(failed),
            first_message_id=failed[0][0]["message_id"],
            error=errors[0],
        )

    async def _ensure_listener(self) -> None:
        if self.listening():
            return
        listener: asyncpg.Connection | None = None
        try:
            listener = await asyncpg.connect(self._database_url)
            await listener.add_listener(self._channel, self._on_notify)
            # A lost LISTEN connection wakes the loop, which reconnects and drains what it may have missed.
            listener.add_termination_listener(self._on_listener_lost)
        except Exception as error:
            if listener is not None:
                listener.terminate()
            if not is_driver_error(error):
                raise
            # Without LISTEN the poll still relays everything, only later.
            log.warning("outbox relay cannot LISTEN; polling only", error=translate(error).message)
            return
        self._listener = listener

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            try:
                await listener.close(timeout=5)
            except Exception as error:
                if not is_driver_error(error):
                    raise
                listener.terminate()

    def _on_notify(self, connection: object, pid: int, channel: str, payload: object) -> None:
        self._wake.set()

    def _on_listener_lost(self, connection: object) -> None:
        self._wake.set()


def _nobody_listens(row: asyncpg.Record, outcome: BaseException | None) -> bool:
    return isinstance(outcome, Unroutable) and row["exchange"] == "events"


def _wire(row: asyncpg.Record) -> WireMessage:
    return WireMessage(
        body=bytes(row["body"]),
        message_id=row["message_id"],  # as text: no UUID object made and printed again per row
        type=row["type"],
        headers=json.loads(row["headers"]),
        correlation_id=row["correlation_id"],
        timestamp=row["occurred_at"],
        app_id=row["app_id"],
        content_type=row["content_type"],
        reply_to=row["reply_to"],
    )


def _describe(error: BaseException) -> str:
    # Only strata's own messages are stored: a foreign exception's text might quote a URL with its password.
    text = f"{error.code}: {error.message}" if isinstance(error, StrataError) else type(error).__name__
    return text[:500]
