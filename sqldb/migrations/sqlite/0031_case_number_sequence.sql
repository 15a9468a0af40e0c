-- Issue 19 §2: PostgreSQL numbers cases from a sequence (its 0031). SQLite,
-- with one writer, keeps counting in counters (never below the highest
-- number stored: sqlstore.nextCaseNumber) and needs no change; this entry
-- keeps both engines at one schema version, which backups record and a
-- restore into either engine checks.
SELECT 1;
