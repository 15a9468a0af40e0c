-- Issue 19 §2: case numbers from a SEQUENCE instead of the one counters row
-- every case creation updated (a row lock held to commit, across replicas).
-- nextval never waits for another transaction; the price is gaps: a number
-- taken by a transaction that rolls back is not reused (docs/api.md).
-- counters keeps its row (backups carry it; SQLite still counts there).
CREATE SEQUENCE case_numbers;
SELECT setval('case_numbers', GREATEST(
  (SELECT value FROM counters WHERE name = 'case_number'),
  (SELECT COALESCE(MAX(number), 0) FROM cases)) + 1, false);

-- Rows inserted with their numbers (a backup restored, a case replayed)
-- must never be handed out again: after any INSERT into cases, move the
-- sequence past the highest number if it is behind. Cases numbered by
-- nextval never are (the check is one index probe), so the sequence is
-- only written after a restore.
CREATE FUNCTION case_numbers_floor() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  m BIGINT;
  last BIGINT;
  called BOOLEAN;
BEGIN
  SELECT MAX(number) INTO m FROM cases;
  SELECT last_value, is_called INTO last, called FROM case_numbers;
  IF m IS NOT NULL AND (m > last OR (m = last AND NOT called)) THEN
    PERFORM setval('case_numbers', m);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER cases_number_floor AFTER INSERT ON cases
  FOR EACH STATEMENT EXECUTE FUNCTION case_numbers_floor();
