-- The console's disposition records page lists them newest first, keyset-
-- paged on (at, id), with or without filters: without this index every page
-- sorts the whole table.
CREATE INDEX dispositions_at ON dispositions(at, id);
