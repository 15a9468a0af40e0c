-- contacts_retain_due (retain_until, id), added with the sweeper, answers
-- every query contacts_retain_until (retain_until) did; keeping both cost
-- every contact insert one more index write for nothing.
DROP INDEX contacts_retain_until;
