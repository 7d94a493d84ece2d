-- Migration 0004's GIN index of the ids a payload names cost every journal insert a jsonpath walk of the payload:
-- measured, a unit of work (inbox, two journal rows, outbox) ran about a fifth slower with it, on the path every
-- handler takes. The replay tool's entity filter scans payloads as text instead (a parallel sequential scan: about
-- a second per million messages, less within a time range), an operator's occasional wait rather than a tax on
-- every commit.

DROP INDEX __SCHEMA__.journal_named;
DROP FUNCTION __SCHEMA__.journal_named_ids(jsonb);
