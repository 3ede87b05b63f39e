//! Round robin across tenants: each tenant with waiting work takes the next
//! turn, and within a tenant tasks go first come, first served.

use super::{MAX_LOOKAHEAD, QueuePolicy, Waiting};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Round robin across tenants, FCFS (lowest `seq`, then id) within each.
///
/// Tenants with waiting work stand in a rotation. A pick offers each tenant's
/// head in rotation order, at most [`MAX_LOOKAHEAD`] tenants; the first head
/// that fits is served and its tenant goes to the back of the rotation (if it
/// still has work). A tenant whose head does not fit is skipped for that pick
/// and keeps its place, so it is first in line once room frees up.
///
/// Costs O(log n) per push, remove and served task, plus the bounded
/// lookahead.
#[derive(Debug, Default, Clone)]
pub struct RoundRobin {
    /// Each tenant's waiting tasks in FCFS order.
    tenants: BTreeMap<String, BTreeMap<(i64, Uuid), Waiting>>,
    /// The rotation: turn ticket → tenant; the lowest ticket goes next.
    rotation: BTreeMap<u64, String>,
    /// Each tenant's ticket in `rotation` (tenants with waiting work only).
    ticket_of: BTreeMap<String, u64>,
    /// The ticket the next tenant to (re)join the rotation gets.
    next_ticket: u64,
    /// Where each task sits: its tenant and FCFS key. Lookup only.
    key_of: HashMap<Uuid, (String, (i64, Uuid))>,
}

impl RoundRobin {
    /// Removes a task; if its tenant runs out of work, takes the tenant out
    /// of the rotation and returns the ticket it held.
    fn take(&mut self, id: Uuid) -> Option<(Waiting, Option<u64>)> {
        let (tenant, key) = self.key_of.remove(&id)?;
        let queue = self.tenants.get_mut(&tenant)?;
        let task = queue.remove(&key)?;
        let mut freed = None;
        if queue.is_empty() {
            self.tenants.remove(&tenant);
            if let Some(ticket) = self.ticket_of.remove(&tenant) {
                self.rotation.remove(&ticket);
                freed = Some(ticket);
            }
        }
        Some((task, freed))
    }

    fn join(&mut self, tenant: &str, ticket: Option<u64>) {
        let ticket = ticket.unwrap_or_else(|| {
            self.next_ticket += 1;
            self.next_ticket
        });
        self.rotation.insert(ticket, tenant.to_owned());
        self.ticket_of.insert(tenant.to_owned(), ticket);
    }
}

impl QueuePolicy for RoundRobin {
    fn name(&self) -> &'static str {
        "round_robin"
    }

    fn push(&mut self, task: Waiting) {
        // A redelivered task that was its tenant's only one keeps the
        // tenant's turn rather than sending it to the back.
        let kept = match self.take(task.id) {
            Some((old, Some(ticket))) if old.request.tenant == task.request.tenant => Some(ticket),
            _ => None,
        };
        let tenant = task.request.tenant.clone();
        let key = (task.request.seq, task.id);
        self.key_of.insert(task.id, (tenant.clone(), key));
        let queue = self.tenants.entry(tenant.clone()).or_default();
        queue.insert(key, task);
        if !self.ticket_of.contains_key(&tenant) {
            self.join(&tenant, kept);
        }
    }

    fn remove(&mut self, id: Uuid) -> Option<Waiting> {
        self.take(id).map(|(task, _)| task)
    }

    fn contains(&self, id: Uuid) -> bool {
        self.key_of.contains_key(&id)
    }

    fn len(&self) -> usize {
        self.key_of.len()
    }

    fn pick(&mut self, fits: &mut dyn FnMut(&Waiting) -> bool) -> Option<Waiting> {
        let id = self
            .rotation
            .values()
            .take(MAX_LOOKAHEAD)
            .filter_map(|tenant| self.tenants.get(tenant)?.values().next())
            .find(|head| fits(head))
            .map(|head| head.id)?;
        let (task, _) = self.take(id)?;
        let tenant = &task.request.tenant;
        if let Some(ticket) = self.ticket_of.remove(tenant) {
            self.rotation.remove(&ticket);
            self.join(tenant, None);
        }
        Some(task)
    }

    fn first(&self, n: usize) -> Vec<&Waiting> {
        // Serving everything in turn: round k takes each tenant's k-th task,
        // tenants in rotation order, skipping tenants that have run out.
        let mut queues: Vec<_> = self
            .rotation
            .values()
            .filter_map(|tenant| self.tenants.get(tenant))
            .map(|queue| queue.values())
            .collect();
        let mut out = Vec::with_capacity(n.min(self.len()));
        while out.len() < n && !queues.is_empty() {
            queues.retain_mut(|queue| match queue.next() {
                Some(task) if out.len() < n => {
                    out.push(task);
                    true
                }
                Some(_) => true,
                None => false,
            });
        }
        out
    }
}
