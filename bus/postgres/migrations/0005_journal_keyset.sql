-- The journal read in keyset order (occurred_at, message_id), a page after another: a row comparison that a btree on
-- both columns answers with an index scan that stops at the page's end. The index on occurred_at alone made every
-- page scan and sort all the rows after it; this one serves its queries too, so it goes.

CREATE INDEX journal_keyset ON __SCHEMA__.journal (occurred_at, message_id);
DROP INDEX __SCHEMA__.journal_occurred;
