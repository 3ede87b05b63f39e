-- Indexes for the web console's task list and charts (V8 has state, pool,
-- pool and state, and tenant, each ending in `seq`).

-- The kind filter pages like the others: an index range of `limit` rows.
CREATE INDEX IF NOT EXISTS tasks_by_kind_seq ON tasks (kind, seq DESC);
-- Created after / before: a range on `created_at`.
CREATE INDEX IF NOT EXISTS tasks_by_created_at ON tasks (created_at);
-- Search by name prefix (`LIKE 'x%'` needs text_pattern_ops under any collation).
CREATE INDEX IF NOT EXISTS tasks_by_name_prefix ON tasks (name text_pattern_ops)
    WHERE name IS NOT NULL;
-- Throughput and latency per minute over the last hour.
CREATE INDEX IF NOT EXISTS tasks_by_finished_at ON tasks (finished_at)
    WHERE finished_at IS NOT NULL;
