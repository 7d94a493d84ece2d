-- A command that no queue takes is retried for a bounded time, then given up: the relay fails it visibly (an event
-- to its sender, a dead letter for an operator) and marks its row given up, so that it leaves the backlog.

ALTER TABLE __SCHEMA__.outbox ADD COLUMN given_up_at timestamptz;
DROP INDEX __SCHEMA__.outbox_pending;
CREATE INDEX outbox_pending ON __SCHEMA__.outbox (id) WHERE sent_at IS NULL AND given_up_at IS NULL;
