-- The client's estimate of a task's run time, for shortest-job-first.
ALTER TABLE tasks ADD COLUMN estimated_runtime_ms bigint CHECK (estimated_runtime_ms > 0);
