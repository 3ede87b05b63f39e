-- Retries with backoff, delayed starts, placement deadlines, workflows (DAGs
-- with compensation) and dead letters.

-- Backoff between attempts: the n-th retry waits
-- min(retry_backoff_max_ms, retry_backoff_ms * 2^(n-1)), jittered down by up
-- to half. NULL takes the pool's setting.
ALTER TABLE tasks ADD COLUMN retry_backoff_ms bigint CHECK (retry_backoff_ms >= 0);
ALTER TABLE tasks ADD COLUMN retry_backoff_max_ms bigint CHECK (retry_backoff_max_ms >= 0);
-- While `retrying`: when the task is queued again.
ALTER TABLE tasks ADD COLUMN retry_at timestamptz;
-- A task that must not start before this time waits in `pending`.
ALTER TABLE tasks ADD COLUMN run_at timestamptz;
-- A queued task not placed within this many milliseconds is rolled back to
-- `rejected`.
ALTER TABLE tasks ADD COLUMN schedule_timeout_ms bigint CHECK (schedule_timeout_ms > 0);

-- Workflows: tasks that name their dependencies, and what undoes them.
CREATE TABLE workflows (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    tenant       text NOT NULL DEFAULT 'default',
    -- running → succeeded | compensating → failed; rejected when refused whole.
    state        text NOT NULL CHECK (state IN
                     ('running', 'succeeded', 'compensating', 'failed', 'cancelled', 'rejected')),
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);

-- The step's name within its workflow or batch.
ALTER TABLE tasks ADD COLUMN name text;
ALTER TABLE tasks ADD COLUMN workflow_id uuid REFERENCES workflows (id) ON DELETE CASCADE;
-- Tasks that must succeed before this one is queued.
ALTER TABLE tasks ADD COLUMN depends_on uuid[] NOT NULL DEFAULT '{}';
-- The task (a submission object) that undoes this one, run when a later step
-- of its workflow fails for good.
ALTER TABLE tasks ADD COLUMN compensation jsonb;
-- Set on a compensation task: the step it undoes.
ALTER TABLE tasks ADD COLUMN compensates uuid;

CREATE INDEX tasks_by_workflow ON tasks (workflow_id) WHERE workflow_id IS NOT NULL;
-- Dependents of a task, for their release or cancellation.
CREATE INDEX tasks_depends_on ON tasks USING gin (depends_on) WHERE state = 'pending';
-- What the reconciler looks at: tasks whose timer is due.
CREATE INDEX tasks_retry_due ON tasks (retry_at) WHERE state = 'retrying';
CREATE INDEX tasks_run_due ON tasks (run_at) WHERE state = 'pending' AND run_at IS NOT NULL;

ALTER TABLE pools ADD COLUMN retry_backoff_ms bigint NOT NULL DEFAULT 1000
    CHECK (retry_backoff_ms >= 0);
ALTER TABLE pools ADD COLUMN retry_backoff_max_ms bigint NOT NULL DEFAULT 300000
    CHECK (retry_backoff_max_ms >= 0);

-- One row per attempt, read from the history: where it ran, when, and how it
-- ended (the state it left `scheduled`/`running` for, with the reason).
CREATE VIEW task_attempts AS
SELECT task_id,
       attempt,
       (array_agg(node_id ORDER BY id) FILTER (WHERE to_state = 'scheduled'))[1] AS node_id,
       min(at) FILTER (WHERE to_state = 'scheduled') AS scheduled_at,
       min(at) FILTER (WHERE to_state = 'running') AS started_at,
       max(at) FILTER (WHERE from_state IN ('scheduled', 'running')
                         AND to_state <> 'running') AS ended_at,
       (array_agg(to_state::text ORDER BY id DESC)
           FILTER (WHERE from_state IN ('scheduled', 'running') AND to_state <> 'running'))[1]
           AS ended_as,
       (array_agg(reason ORDER BY id DESC)
           FILTER (WHERE from_state IN ('scheduled', 'running') AND to_state <> 'running'))[1]
           AS reason
FROM task_events
WHERE attempt > 0
GROUP BY task_id, attempt;

-- Messages that could never be handled: kept with their payload and why.
CREATE TABLE dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream      text NOT NULL,
    consumer    text NOT NULL,
    stream_seq  bigint NOT NULL,
    subject     text NOT NULL,
    payload     bytea NOT NULL,
    deliveries  integer NOT NULL,
    reason      text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream, stream_seq)
);
