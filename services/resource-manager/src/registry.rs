//! Node health from heartbeat times. Pure: the caller passes the clock.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use taskyard_store::nodes::{Health, HealthChange, NodeRow};
use taskyard_wire::event::{NodeEvent, NodeEventKind};
use taskyard_wire::heartbeat::{Capacity, Heartbeat};
use tokio::time::Instant;

/// When silence turns into suspicion, and suspicion into loss.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub suspect_after: Duration,
    pub lost_after: Duration,
}

#[derive(Debug, Clone)]
struct Known {
    last_seen: Instant,
    health: Health,
    capacity: Capacity,
    labels: BTreeMap<String, String>,
    draining: bool,
    cordoned: bool,
}

#[derive(Debug)]
pub struct Registry {
    thresholds: Thresholds,
    nodes: HashMap<String, Known>,
}

impl Registry {
    pub fn new(thresholds: Thresholds) -> Registry {
        Registry {
            thresholds,
            nodes: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// How many known nodes are in `health`.
    pub fn count_with(&self, health: Health) -> usize {
        self.nodes.values().filter(|k| k.health == health).count()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Takes a node from Postgres at start. Its silence is counted from now:
    /// this process did not hear what happened before it started.
    pub fn restore(&mut self, node: &NodeRow, now: Instant) {
        self.nodes.insert(
            node.id.clone(),
            Known {
                last_seen: now,
                health: node.health,
                capacity: node.capacity,
                labels: node.labels.clone(),
                draining: node.draining,
                cordoned: node.cordoned,
            },
        );
    }

    /// Becomes the registry of the active resource manager: each node's
    /// health and the operator's flags as Postgres has them (the judgements
    /// of the replica that was active), its silence as this process heard
    /// it as a standby, or counted from now for a node it never heard.
    pub fn take_over(&mut self, rows: &[NodeRow], now: Instant) {
        let heard: HashMap<String, Instant> = self
            .nodes
            .drain()
            .map(|(id, known)| (id, known.last_seen))
            .collect();
        for row in rows {
            self.restore(row, heard.get(&row.id).copied().unwrap_or(now));
        }
    }

    /// The node's health and flags, if known.
    pub fn status(&self, node_id: &str) -> Option<(Health, bool, bool)> {
        self.nodes
            .get(node_id)
            .map(|known| (known.health, known.cordoned, known.draining))
    }

    /// Cordons or uncordons a known node; returns the event to announce.
    pub fn set_cordoned(
        &mut self,
        node_id: &str,
        cordoned: bool,
        reason: &str,
    ) -> Option<NodeEvent> {
        let known = self.nodes.get_mut(node_id)?;
        known.cordoned = cordoned;
        Some(event(
            node_id,
            known,
            NodeEventKind::Updated,
            reason.to_owned(),
        ))
    }

    /// Forgets a node; returns the event to announce.
    pub fn remove(&mut self, node_id: &str, reason: &str) -> Option<NodeEvent> {
        let known = self.nodes.remove(node_id)?;
        Some(event(
            node_id,
            &known,
            NodeEventKind::Removed,
            reason.to_owned(),
        ))
    }

    /// Records a heartbeat; returns the event to announce, if any.
    pub fn observe(&mut self, beat: &Heartbeat, now: Instant) -> Option<NodeEvent> {
        // Cordoning is the operator's, not the worker's: it survives heartbeats.
        let cordoned = self.nodes.get(&beat.node_id).is_some_and(|k| k.cordoned);
        let previous = self.nodes.insert(
            beat.node_id.clone(),
            Known {
                last_seen: now,
                health: Health::Alive,
                capacity: beat.capacity,
                labels: beat.labels.clone(),
                draining: beat.draining,
                cordoned,
            },
        );
        let (kind, reason) = match previous {
            None => (NodeEventKind::Registered, "first heartbeat".to_owned()),
            Some(known) if known.health == Health::Lost => (
                NodeEventKind::Registered,
                "heartbeats resumed after the node was lost".to_owned(),
            ),
            Some(known) if known.health == Health::Suspect => (
                NodeEventKind::Alive,
                "heartbeats are on time again".to_owned(),
            ),
            Some(known)
                if known.capacity != beat.capacity
                    || known.labels != beat.labels
                    || known.draining != beat.draining =>
            {
                let reason = if !known.draining && beat.draining {
                    "node is draining"
                } else {
                    "capacity or labels changed"
                };
                (NodeEventKind::Updated, reason.to_owned())
            }
            Some(_) => return None,
        };
        let known = self.nodes.get(&beat.node_id)?;
        Some(event(&beat.node_id, known, kind, reason))
    }

    /// Counts every node's silence from `now` again, as at start: this
    /// process was cut off from NATS until now and heard nobody, so a
    /// silence meanwhile says nothing about the nodes.
    pub fn pardon(&mut self, now: Instant) {
        for known in self.nodes.values_mut() {
            known.last_seen = known.last_seen.max(now);
        }
    }

    /// Judges every node's silence; returns the health changes and their events.
    pub fn sweep(&mut self, now: Instant) -> Vec<(HealthChange, NodeEvent)> {
        let mut changes = Vec::new();
        for (node_id, known) in &mut self.nodes {
            let silent = now.saturating_duration_since(known.last_seen);
            let judged = if silent >= self.thresholds.lost_after {
                Health::Lost
            } else if silent >= self.thresholds.suspect_after {
                Health::Suspect
            } else {
                Health::Alive
            };
            // Only heartbeats make a node alive again (see `observe`).
            let worse = matches!(
                (known.health, judged),
                (Health::Alive, Health::Suspect | Health::Lost) | (Health::Suspect, Health::Lost)
            );
            if !worse {
                continue;
            }
            known.health = judged;
            let reason = format!("no heartbeat for {} ms", silent.as_millis());
            let kind = if judged == Health::Lost {
                NodeEventKind::Lost
            } else {
                NodeEventKind::Suspect
            };
            changes.push((
                HealthChange {
                    node_id: node_id.clone(),
                    health: judged,
                    reason: reason.clone(),
                },
                event(node_id, known, kind, reason),
            ));
        }
        changes
    }
}

fn event(node_id: &str, known: &Known, kind: NodeEventKind, reason: String) -> NodeEvent {
    NodeEvent {
        node_id: node_id.to_owned(),
        kind,
        capacity: known.capacity,
        labels: known.labels.clone(),
        draining: known.draining,
        cordoned: known.cordoned,
        reason: Some(reason),
        at: taskyard_wire::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(node: &str, cpu: u32) -> Heartbeat {
        Heartbeat {
            node_id: node.to_owned(),
            hostname: "h".to_owned(),
            version: "0".to_owned(),
            started_at: taskyard_wire::now(),
            capacity: Capacity {
                cpu_millis: cpu,
                memory_mb: 1024,
                slots: 8,
            },
            usage: Default::default(),
            running: 0,
            labels: Default::default(),
            draining: false,
            at: taskyard_wire::now(),
        }
    }

    fn thresholds() -> Thresholds {
        Thresholds {
            suspect_after: Duration::from_secs(3),
            lost_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn silence_makes_a_node_suspect_then_lost_and_a_heartbeat_brings_it_back() {
        let mut registry = Registry::new(thresholds());
        let t0 = Instant::now();
        let first = registry.observe(&beat("n1", 1000), t0).map(|e| e.kind);
        assert_eq!(first, Some(NodeEventKind::Registered));
        assert_eq!(
            registry.observe(&beat("n1", 1000), t0),
            None,
            "nothing changed"
        );
        assert!(registry.sweep(t0 + Duration::from_secs(2)).is_empty());
        let suspect = registry.sweep(t0 + Duration::from_secs(4));
        assert_eq!(suspect.len(), 1);
        assert_eq!(suspect[0].0.health, Health::Suspect);
        assert!(
            registry.sweep(t0 + Duration::from_secs(5)).is_empty(),
            "announced once"
        );
        let lost = registry.sweep(t0 + Duration::from_secs(11));
        assert_eq!(lost[0].1.kind, NodeEventKind::Lost);
        let back = registry.observe(&beat("n1", 1000), t0 + Duration::from_secs(12));
        assert_eq!(back.map(|e| e.kind), Some(NodeEventKind::Registered));
    }

    #[test]
    fn a_pardon_counts_silence_from_then() {
        let mut registry = Registry::new(thresholds());
        let t0 = Instant::now();
        registry.observe(&beat("n1", 1000), t0);
        registry.pardon(t0 + Duration::from_secs(20));
        assert!(
            registry.sweep(t0 + Duration::from_secs(21)).is_empty(),
            "alive: its silence counts from the pardon"
        );
        let lost = registry.sweep(t0 + Duration::from_secs(31));
        assert_eq!(lost.first().map(|c| c.0.health), Some(Health::Lost));
    }

    #[test]
    fn a_cordon_outlives_heartbeats() {
        let mut registry = Registry::new(thresholds());
        let t0 = Instant::now();
        registry.observe(&beat("n1", 1000), t0);
        let cordon = registry.set_cordoned("n1", true, "maintenance");
        assert_eq!(cordon.map(|e| e.schedulable()), Some(false));
        assert_eq!(registry.observe(&beat("n1", 1000), t0), None);
        assert_eq!(registry.status("n1"), Some((Health::Alive, true, false)));
        let relabel = registry.observe(
            &Heartbeat {
                labels: [("zone".to_owned(), "b".to_owned())].into(),
                ..beat("n1", 1000)
            },
            t0,
        );
        assert_eq!(
            relabel.map(|e| (e.kind, e.cordoned)),
            Some((NodeEventKind::Updated, true))
        );
    }

    #[test]
    fn a_capacity_change_is_an_update() {
        let mut registry = Registry::new(thresholds());
        let t0 = Instant::now();
        registry.observe(&beat("n1", 1000), t0);
        let event = registry.observe(&beat("n1", 2000), t0);
        assert_eq!(event.map(|e| e.kind), Some(NodeEventKind::Updated));
    }
}
