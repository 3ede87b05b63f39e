-- How many tasks ended in each state, per pool and tenant, without
-- counting millions of rows: the console's overview, the REST summary, the
-- tenants page and the `taskyard_tasks` metric read these instead of
-- scanning the history. See docs/performance.md#counts.
--
-- A task's ending (its `outcome` set, or cleared by a retry) appends a
-- +1/-1 row to `task_count_deltas` from a row trigger: an append, never an
-- update of a shared counter row, so concurrent transactions never wait on
-- each other. Readers fold the deltas into `task_counts` (one statement
-- that deletes them and adds their sums) and read the sums.

CREATE TABLE task_counts (
    pool   text NOT NULL,
    tenant text NOT NULL,
    state  task_state NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (pool, tenant, state)
);

CREATE TABLE task_count_deltas (
    pool   text NOT NULL,
    tenant text NOT NULL,
    state  task_state NOT NULL,
    n      integer NOT NULL
);

CREATE FUNCTION task_count_delta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.outcome IS NOT NULL THEN
        INSERT INTO task_count_deltas VALUES (OLD.pool, OLD.tenant, OLD.outcome, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.outcome IS NOT NULL THEN
        INSERT INTO task_count_deltas VALUES (NEW.pool, NEW.tenant, NEW.outcome, 1);
    END IF;
    RETURN NULL;
END $$;

-- The WHEN clauses keep the function out of every transition that is not
-- an ending (placing, starting): those cost nothing here.
CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks
    FOR EACH ROW WHEN (NEW.outcome IS NOT NULL) EXECUTE FUNCTION task_count_delta();
CREATE TRIGGER task_counts_update AFTER UPDATE ON tasks
    FOR EACH ROW WHEN (OLD.outcome IS DISTINCT FROM NEW.outcome)
    EXECUTE FUNCTION task_count_delta();
CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks
    FOR EACH ROW WHEN (OLD.outcome IS NOT NULL) EXECUTE FUNCTION task_count_delta();

INSERT INTO task_counts (pool, tenant, state, n)
SELECT pool, tenant, outcome, count(*) FROM tasks WHERE outcome IS NOT NULL
GROUP BY pool, tenant, outcome;

-- A tenant's tasks by final state (the tenant and state filters together).
CREATE INDEX tasks_by_tenant_outcome_seq ON tasks (tenant, outcome, seq DESC)
    WHERE outcome IS NOT NULL;
