-- PostgreSQL only (its outbox_pos index becomes partial); SQLite's feed
-- position is seq, and both engines keep one migration list.
SELECT 1;
