//! Round robin across tenants: each tenant with waiting work takes the next
//! turn, and within a tenant tasks go first come, first served.

use super::numbering::{Named, Numbering};
use super::{MAX_LOOKAHEAD, QueuePolicy, Waiting};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
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
/// lookahead. Tenants are numbered while they have work, so a pick moves
/// them through the rotation without comparing or copying their names.
#[derive(Debug, Default, Clone)]
pub struct RoundRobin {
    /// Tenants with waiting work, by number.
    tenants: Numbering<Tenant>,
    /// The rotation: turn ticket → tenant number; the lowest ticket goes
    /// next.
    rotation: BTreeMap<u64, u32>,
    /// The ticket the next tenant to (re)join the rotation gets.
    next_ticket: u64,
    /// Where each task sits: its tenant's number and FCFS key. Lookup only.
    key_of: HashMap<Uuid, (u32, (i64, Uuid))>,
}

/// A tenant with waiting work.
#[derive(Debug, Clone)]
struct Tenant {
    name: Arc<str>,
    /// Its ticket in the rotation.
    ticket: u64,
    /// Its waiting tasks in FCFS order.
    queue: BTreeMap<(i64, Uuid), Waiting>,
}

impl Named for Tenant {
    fn name(&self) -> &Arc<str> {
        &self.name
    }
}

impl RoundRobin {
    fn tenant(&self, number: u32) -> Option<&Tenant> {
        self.tenants.get(number)
    }

    fn tenant_mut(&mut self, number: u32) -> Option<&mut Tenant> {
        self.tenants.get_mut(number)
    }

    fn new_ticket(&mut self) -> u64 {
        self.next_ticket += 1;
        self.next_ticket
    }

    /// Removes a task; if its tenant runs out of work, takes the tenant out
    /// of the rotation and returns the ticket it held.
    fn take(&mut self, id: Uuid) -> Option<(Waiting, Option<u64>)> {
        let (number, key) = self.key_of.remove(&id)?;
        let tenant = self.tenant_mut(number)?;
        let task = tenant.queue.remove(&key)?;
        if !tenant.queue.is_empty() {
            return Some((task, None));
        }
        let ticket = tenant.ticket;
        self.rotation.remove(&ticket);
        self.tenants.remove(number);
        Some((task, Some(ticket)))
    }

    /// A tenant joining the rotation, with `ticket` or at the back.
    fn join(&mut self, name: &str, ticket: Option<u64>) -> u32 {
        let ticket = ticket.unwrap_or_else(|| self.new_ticket());
        let tenant = Tenant {
            name: Arc::from(name),
            ticket,
            queue: BTreeMap::new(),
        };
        let number = self.tenants.insert(tenant);
        self.rotation.insert(ticket, number);
        number
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
        let number = match self.tenants.number(&task.request.tenant) {
            Some(number) => number,
            None => self.join(&task.request.tenant, kept),
        };
        let key = (task.request.seq, task.id);
        self.key_of.insert(task.id, (number, key));
        if let Some(tenant) = self.tenant_mut(number) {
            tenant.queue.insert(key, task);
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
        let (number, id) = self
            .rotation
            .values()
            .take(MAX_LOOKAHEAD)
            .filter_map(|number| Some((*number, self.tenant(*number)?.queue.values().next()?)))
            .find(|(_, head)| fits(head))
            .map(|(number, head)| (number, head.id))?;
        let (task, freed) = self.take(id)?;
        // A tenant with work left goes to the back of the rotation.
        if freed.is_none() {
            let ticket = self.new_ticket();
            if let Some(tenant) = self.tenant_mut(number) {
                let old = std::mem::replace(&mut tenant.ticket, ticket);
                self.rotation.remove(&old);
                self.rotation.insert(ticket, number);
            }
        }
        Some(task)
    }

    fn first(&self, n: usize) -> Vec<&Waiting> {
        // Serving everything in turn: round k takes each tenant's k-th task,
        // tenants in rotation order, skipping tenants that have run out.
        let mut queues: Vec<_> = self
            .rotation
            .values()
            .filter_map(|number| self.tenant(*number))
            .map(|tenant| tenant.queue.values())
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
