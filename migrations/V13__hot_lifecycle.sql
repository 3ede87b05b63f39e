-- A task's row is written four times: created, placed, started, finished.
-- Postgres can make an update "HOT" (a new row version on the same page,
-- no new index entry) only when no indexed column changes. Before this
-- migration `state` and `node_id` were in ten of the seventeen indexes of
-- `tasks`, so every transition wrote a new entry in each of them
-- (94 HOT updates in 319,334). From here on no index names a column that
-- changes while a task lives (`state`, `attempt`, `node_id`, its times but
-- `finished_at`, `wait_reason`): placing and starting a task are HOT, and
-- only creation and the final transition touch indexes.
-- See docs/performance.md#one-row-two-lives.

-- A task's final state, NULL while it lives. Indexes that filter by state
-- use it (terminal states) or `finished_at IS NULL` (the live ones).
ALTER TABLE tasks ADD COLUMN outcome task_state
    GENERATED ALWAYS AS (CASE WHEN finished_at IS NOT NULL THEN state END) STORED;

-- Room on each page for the rows' next versions, so HOT updates find it:
-- at 80 % a third of the updates found no room and were not HOT, at 50 %
-- two thirds were (the heap of finished tasks is larger by as much).
ALTER TABLE tasks SET (fillfactor = 50);

DROP INDEX tasks_active;
DROP INDEX tasks_by_node;
DROP INDEX tasks_depends_on;
DROP INDEX tasks_retry_due;
DROP INDEX tasks_run_due;
DROP INDEX tasks_by_state_seq;
DROP INDEX tasks_by_pool_state_seq;
DROP INDEX tasks_by_finished_at;

-- The live part of the table, small however long the history: schedulers'
-- rebuilds, node loss, timers, waiting counts and the console's live-state
-- filters read it and check `state` in the row.
CREATE INDEX tasks_live ON tasks (pool, seq) WHERE finished_at IS NULL;
CREATE INDEX tasks_live_seq ON tasks (seq DESC) WHERE finished_at IS NULL;
-- Dependents of a task, for their release or cancellation: only tasks that
-- depend on something (an entry for every task in the GIN index's pending
-- list made each lookup slow), live or not, so that the live tasks' btree
-- indexes never look cheaper to a planner whose statistics are stale.
CREATE INDEX tasks_depends_on ON tasks USING gin (depends_on)
    WHERE cardinality(depends_on) > 0;
-- What the reconciler looks at: tasks whose timer is due.
CREATE INDEX tasks_retry_due ON tasks (retry_at) WHERE retry_at IS NOT NULL;
CREATE INDEX tasks_run_due ON tasks (run_at) WHERE run_at IS NOT NULL AND finished_at IS NULL;
-- The history by final state, for the console's and the API's filters.
CREATE INDEX tasks_by_outcome_seq ON tasks (outcome, seq DESC) WHERE outcome IS NOT NULL;
CREATE INDEX tasks_by_pool_outcome_seq ON tasks (pool, outcome, seq DESC) WHERE outcome IS NOT NULL;
CREATE INDEX tasks_by_finished_at ON tasks (finished_at) WHERE finished_at IS NOT NULL;

-- History rows are written only by the statement that changes their task,
-- from that statement's own result, so each has its task by construction;
-- tasks are never deleted one by one. The foreign key's check cost a
-- lookup and a row lock on `tasks` for every history row.
ALTER TABLE task_events DROP CONSTRAINT task_events_task_id_fkey;
