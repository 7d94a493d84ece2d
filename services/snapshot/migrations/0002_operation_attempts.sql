-- How many times the agent was asked: an operation a plugin crashed in is asked again (its calls are idempotent
-- and finish what a crash interrupted), a bounded number of times.
ALTER TABLE __SCHEMA__.operations ADD COLUMN attempts integer NOT NULL DEFAULT 1;
