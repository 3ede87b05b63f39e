-- Taskyard's initial schema: tasks, their append-only history, and nodes.
-- The task_state ENUM mirrors shared/wire/src/state.rs and docs/state-machine.md.

CREATE TYPE task_state AS ENUM (
    'pending', 'queued', 'scheduled', 'running',
    'succeeded', 'failed', 'timed_out', 'cancelled',
    'retrying', 'rejected'
);

CREATE TYPE node_health AS ENUM ('alive', 'suspect', 'lost');

CREATE TABLE tasks (
    id              uuid PRIMARY KEY,
    -- Creation order across the cluster; FCFS serves the lowest first.
    seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    idempotency_key text,
    pool            text NOT NULL,
    kind            text NOT NULL,
    spec            jsonb NOT NULL DEFAULT 'null',
    cpu_millis      integer NOT NULL DEFAULT 0 CHECK (cpu_millis >= 0),
    memory_mb       integer NOT NULL DEFAULT 0 CHECK (memory_mb >= 0),
    priority        integer NOT NULL DEFAULT 0,
    tenant          text NOT NULL DEFAULT 'default',
    timeout_ms      bigint CHECK (timeout_ms > 0),
    max_attempts    integer NOT NULL DEFAULT 1 CHECK (max_attempts >= 1),
    labels          jsonb NOT NULL DEFAULT '{}',
    state           task_state NOT NULL,
    -- The fencing token: bumped by each placement; reports for another attempt
    -- change nothing.
    attempt         integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    node_id         text,
    result          jsonb,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    queued_at       timestamptz,
    scheduled_at    timestamptz,
    started_at      timestamptz,
    finished_at     timestamptz,
    CONSTRAINT finished_exactly_when_terminal CHECK (
        (finished_at IS NOT NULL) =
        (state IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'rejected'))
    ),
    CONSTRAINT rejected_says_why CHECK (state <> 'rejected' OR error IS NOT NULL),
    CONSTRAINT placed_on_a_node CHECK (
        state NOT IN ('scheduled', 'running') OR (node_id IS NOT NULL AND attempt > 0)
    )
);

-- Most tasks have no key; leaving them out of the index keeps every update
-- of a task one index entry cheaper.
CREATE UNIQUE INDEX tasks_idempotency_key ON tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The live part of the table: what schedulers and dashboards ask about.
CREATE INDEX tasks_active ON tasks (pool, state)
    WHERE state IN ('pending', 'queued', 'scheduled', 'running', 'retrying');
CREATE INDEX tasks_by_node ON tasks (node_id)
    WHERE state IN ('scheduled', 'running');

CREATE TABLE task_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id     uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    from_state  task_state,
    to_state    task_state NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    node_id     text,
    reason      text
);

CREATE INDEX task_events_by_task ON task_events (task_id, id);

-- History is append-only: rows are added and, with their task, deleted; never changed.
CREATE FUNCTION task_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'task_events is append-only';
END;
$$;

CREATE TRIGGER task_events_append_only
    BEFORE UPDATE ON task_events
    FOR EACH ROW EXECUTE FUNCTION task_events_append_only();

CREATE TABLE nodes (
    id                 text PRIMARY KEY,
    hostname           text NOT NULL,
    version            text NOT NULL,
    health             node_health NOT NULL,
    cpu_millis         integer NOT NULL CHECK (cpu_millis >= 0),
    memory_mb          integer NOT NULL CHECK (memory_mb >= 0),
    slots              integer NOT NULL CHECK (slots >= 0),
    cpu_percent        real NOT NULL DEFAULT 0,
    memory_used_mb     bigint NOT NULL DEFAULT 0,
    running            integer NOT NULL DEFAULT 0,
    labels             jsonb NOT NULL DEFAULT '{}',
    draining           boolean NOT NULL DEFAULT false,
    started_at         timestamptz NOT NULL,
    registered_at      timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at  timestamptz NOT NULL,
    health_changed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE node_events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node_id  text NOT NULL,
    kind     text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    reason   text
);

CREATE INDEX node_events_by_node ON node_events (node_id, id);
