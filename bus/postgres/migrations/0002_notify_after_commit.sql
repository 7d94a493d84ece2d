-- The outbox trigger's NOTIFY made every inserting transaction take PostgreSQL's notification-queue lock at
-- commit and hold it through its WAL flush, serializing all handler commits (group commit lost: about a third of
-- the throughput). The unit of work now sends NOTIFY in its own tiny transaction right after COMMIT, in the same
-- round trip; writers of the outbox that do not notify are still picked up by the relay's poll.

DROP TRIGGER outbox_notify ON __SCHEMA__.outbox;
DROP FUNCTION __SCHEMA__.outbox_notify();
