-- Leases: which replica of a service is the active one.
--
-- A replica that takes a lease moves its epoch on by one; statements that
-- only the active replica may run (the scheduler's placements, the resource
-- manager's health judgements) call taskyard_fence with the epoch their
-- replica holds, so an ex-leader that wakes from a pause after another took
-- over writes nothing. The check takes a share lock on the lease row, so a
-- takeover waits for placements already under way to commit; the new
-- holder then reads them when it rebuilds its state.
CREATE TABLE leases (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    epoch       bigint NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

-- SQLSTATE 55TY1 is in class 55 (object not in prerequisite state): the
-- statement is not at fault, its sender has lost the right to send it.
CREATE FUNCTION taskyard_fence(lease text, expected bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    current bigint;
BEGIN
    SELECT epoch INTO current FROM leases WHERE name = lease FOR SHARE;
    IF current IS DISTINCT FROM expected THEN
        RAISE EXCEPTION 'the % lease is at epoch %, not %: another replica took over', lease, current, expected
            USING ERRCODE = '55TY1';
    END IF;
    RETURN true;
END
$$;
