-- What shortest-job-first learns: per pool and kind, an exponentially
-- weighted mean of the run time of recent successful attempts, for tasks
-- that give no estimate of their own. Kept here so that a restart keeps it.
CREATE TABLE runtime_estimates (
    pool        text NOT NULL,
    kind        text NOT NULL,
    mean_ms     double precision NOT NULL CHECK (mean_ms >= 0),
    samples     bigint NOT NULL CHECK (samples > 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pool, kind)
);
