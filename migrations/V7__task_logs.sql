-- Output lines of exec attempts, as workers stream them (LOGS stream →
-- pool manager). At least once on the wire, once here: the key is the
-- attempt's own line number, so a redelivered batch inserts nothing.
CREATE TABLE task_logs (
    task_id  uuid NOT NULL REFERENCES tasks ON DELETE CASCADE,
    attempt  integer NOT NULL CHECK (attempt >= 1),
    seq      bigint NOT NULL CHECK (seq >= 1),
    stream   text NOT NULL CHECK (stream IN ('stdout', 'stderr')),
    line     text NOT NULL,
    at       timestamptz NOT NULL,
    PRIMARY KEY (task_id, attempt, seq)
);
