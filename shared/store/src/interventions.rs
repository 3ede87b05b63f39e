//! Transitions nobody's report asked for: an operator's cancel, and the loss
//! of a node with work on it. Their guards and single states come from their
//! rows in [`crate::transitions::table`]; the constants here are the
//! templates.

use crate::transitions::{
    Transition, returned_task, table, transition_columns, transition_from_row,
};
use crate::{Result, Store};
use uuid::Uuid;

/// Any live task → `cancelled`. Returns the old state and node, so that a
/// running attempt can be killed where it runs.
pub(crate) const CANCEL: &str = concat!(
    "
WITH old AS (
    SELECT id, state AS old_state, node_id AS old_node
    FROM tasks
    WHERE id = ANY($1) AND state {from}
    FOR UPDATE
), upd AS (
    UPDATE tasks t
    SET state = {to}, finished_at = now(), retry_at = NULL, wait_reason = NULL,
        error = $2
    FROM old o
    WHERE t.id = o.id
    RETURNING ",
    returned_task!(),
    ", o.old_state AS from_state,
              o.old_node AS node_id, t.finished_at, t.error AS reason
), history AS (
    INSERT INTO task_events (task_id, attempt, from_state, to_state, at, node_id, reason, actor)
    SELECT id, attempt, from_state, state, finished_at, node_id, reason, $3::text FROM upd
)
SELECT ",
    transition_columns!(),
    " FROM upd"
);

/// The attempts on a lost node end: `queued` again while attempts remain,
/// else `failed`, with the reason.
pub(crate) const NODE_LOST: &str = concat!(
    "
WITH old AS (
    SELECT id, state AS old_state
    FROM tasks
    WHERE finished_at IS NULL AND node_id = $1 AND state {from}
    FOR UPDATE
), upd AS (
    UPDATE tasks t
    SET state = (CASE WHEN t.attempt < t.max_attempts THEN 'queued' ELSE 'failed' END)::task_state,
        node_id = CASE WHEN t.attempt < t.max_attempts THEN NULL ELSE t.node_id END,
        queued_at = CASE WHEN t.attempt < t.max_attempts THEN now() ELSE t.queued_at END,
        finished_at = CASE WHEN t.attempt < t.max_attempts THEN NULL ELSE now() END,
        error = format('node %s was lost (%s) during attempt %s of %s', $1::text, $2::text,
                       t.attempt, t.max_attempts)
    FROM old o
    WHERE t.id = o.id
    RETURNING ",
    returned_task!(),
    ", o.old_state AS from_state,
              $1::text AS node_id, now() AS finished_at,
              CASE WHEN t.state = 'queued' THEN t.error || '; queued again'
                   ELSE t.error END AS reason
), history AS (
    INSERT INTO task_events (task_id, attempt, from_state, to_state, at, node_id, reason)
    SELECT id, attempt, from_state, state, finished_at, node_id, reason FROM upd
)
SELECT ",
    transition_columns!(),
    " FROM upd"
);

/// Where a task stands, for deciding what to tell a node about an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptHolder {
    pub task_id: Uuid,
    pub attempt: u32,
    pub node_id: Option<String>,
    pub live: bool,
}

impl Store {
    /// Cancels every live task among `ids`, with `reason` kept as its error
    /// and in its history, and `actor` (who asked: see [`crate::actors`])
    /// in the same history rows. Tasks already ended are left as they are.
    pub async fn cancel_tasks(
        &self,
        ids: &[Uuid],
        reason: &str,
        actor: Option<&str>,
    ) -> Result<Vec<Transition>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let statement = client.prepare_cached(table::CANCEL.sql()).await?;
        let rows = client.query(&statement, &[&ids, &reason, &actor]).await?;
        rows.iter().map(transition_from_row).collect()
    }

    /// Ends the attempts on a node that was declared lost (`why` says how).
    pub async fn requeue_lost_node(&self, node_id: &str, why: &str) -> Result<Vec<Transition>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(table::NODE_LOST.sql()).await?;
        let rows = client.query(&statement, &[&node_id, &why]).await?;
        rows.iter().map(transition_from_row).collect()
    }

    /// Nodes declared lost (or removed) that still hold `scheduled` or
    /// `running` tasks: their event was missed.
    pub async fn lost_nodes_with_work(&self) -> Result<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT t.node_id FROM tasks t LEFT JOIN nodes n ON n.id = t.node_id \
                 WHERE t.finished_at IS NULL AND t.state IN ('scheduled', 'running') \
                   AND (n.id IS NULL OR n.health = 'lost')",
                &[],
            )
            .await?;
        rows.iter().map(|row| Ok(row.try_get("node_id")?)).collect()
    }

    /// The current attempt and node of each task among `ids`, and whether it
    /// is still placed (`scheduled` or `running`).
    pub async fn attempt_holders(&self, ids: &[Uuid]) -> Result<Vec<AttemptHolder>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, attempt, node_id, state IN ('scheduled', 'running') AS live \
                 FROM tasks WHERE id = ANY($1)",
            )
            .await?;
        let rows = client.query(&statement, &[&ids]).await?;
        rows.iter()
            .map(|row| {
                Ok(AttemptHolder {
                    task_id: row.try_get("id")?,
                    attempt: crate::to_u32(row.try_get("attempt")?),
                    node_id: row.try_get("node_id")?,
                    live: row.try_get("live")?,
                })
            })
            .collect()
    }
}
