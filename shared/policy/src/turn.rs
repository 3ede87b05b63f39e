//! One pool's turn at placement: the task its policy serves next that fits,
//! on the node placement chooses, with a node held for a task that would
//! otherwise be overtaken for ever.
//!
//! # Holding a node for the head
//! A policy may pass over tasks that do not fit now
//! ([`crate::MAX_LOOKAHEAD`]), so that one large task does not stop smaller
//! ones behind it. Alone, that starves the large task: while small tasks
//! keep arriving, every node that frees a little is refilled before it frees
//! enough. So when the first task the policy offers is refused for lack of
//! room (not for a quota) and a task behind it is placed instead, the turn
//! holds one node for it ([`Fleet::node_to_hold`]): the held node takes no
//! other new work, its tasks finish, and the task is placed there as soon as
//! it fits — or on any other node that frees enough first. Tasks behind it
//! go on filling the other nodes meanwhile (backfill).
//!
//! Other pools overtake too, where pools share nodes: the caller says when
//! anything was placed elsewhere since the pool's last turn
//! (`placed_elsewhere`), and that counts as overtaking.
//!
//! A pool holds at most one node at a time, so holds cost at most one node
//! per pool of idle room while a node drains. The wait they bound is the
//! longest remaining run on the held node, which timeouts bound in turn.

use crate::placement::{Fleet, Placed, Rules};
use crate::queue::{QueuePolicy, Waiting};
use std::collections::BTreeMap;
use taskyard_wire::pool::PlacementStrategy;
use uuid::Uuid;

/// A node held for a waiting task.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadHold {
    pub task: Waiting,
    pub node_id: String,
}

/// A pool's placement rules; a task's own node selector completes them.
#[derive(Debug, Clone, Copy)]
pub struct PoolRules<'a> {
    pub node_selector: &'a BTreeMap<String, String>,
    pub strategy: PlacementStrategy,
    pub overcommit: f64,
}

impl PoolRules<'_> {
    /// The rules for `task` in this pool.
    pub fn for_task<'t>(&'t self, task: &'t Waiting) -> Rules<'t> {
        Rules {
            pool_selector: self.node_selector,
            task_selector: &task.request.node_selector,
            strategy: self.strategy,
            overcommit: self.overcommit,
        }
    }
}

/// What one turn placed: the task and where (the reason says when it went
/// to the node held for it).
#[derive(Debug, Clone)]
pub struct Turn {
    pub task: Waiting,
    pub placed: Placed,
}

/// The policy served a task that its fits check refused, so placement found
/// no node for it: a bug in the policy (or in the fleet's index). The task
/// is back in the queue and its tenant uncharged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unplaceable {
    pub task: Uuid,
}

impl std::fmt::Display for Unplaceable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the policy served task {}, which its fits check refused",
            self.task
        )
    }
}

impl std::error::Error for Unplaceable {}

/// Takes one turn for a pool: places (and reserves on `fleet`) the task its
/// policy serves next among those that `admits` (the caller's quotas) and
/// that fit, and keeps `hold` up to date. `Ok(None)` when nothing can go
/// now.
///
/// The held task, once it fits on its node and `admits` agrees, goes before
/// anything else. `placed_elsewhere`: other pools placed tasks since this
/// pool's last turn, which may have taken room its head waits for.
pub fn take_turn(
    queue: &mut dyn QueuePolicy,
    fleet: &mut Fleet,
    hold: &mut Option<HeadHold>,
    rules: PoolRules<'_>,
    admits: &mut dyn FnMut(&Waiting) -> bool,
    placed_elsewhere: bool,
) -> Result<Option<Turn>, Unplaceable> {
    let ordinary = Ordinary {
        rules,
        placed_elsewhere,
    };
    let Some(current) = hold.take() else {
        return ordinary.take(queue, fleet, hold, admits);
    };
    let request = current.task.request.resources;
    let still_fits_there =
        fleet.could_take(&current.node_id, &request, &rules.for_task(&current.task));
    if !queue.contains(current.task.id) || !still_fits_there || !admits(&current.task) {
        // Placed elsewhere, cancelled, its node changed, or a quota holds
        // it back now (room would not help): hold afresh when next needed.
        fleet.set_held(&current.node_id, false);
        return ordinary.take(queue, fleet, hold, admits);
    }
    let ready = fleet.place_held(&current.node_id, &request, &rules.for_task(&current.task));
    let Some(placed) = ready else {
        *hold = Some(current);
        return ordinary.take(queue, fleet, hold, admits);
    };
    fleet.set_held(&current.node_id, false);
    // Served through the policy's own pick while it is within reach, so
    // that the policy's bookkeeping (turns, virtual times, aging) moves as
    // for any pick; else taken out and charged as a pick would be.
    let id = current.task.id;
    let task = match queue.pick(&mut |t| t.id == id) {
        Some(task) => task,
        None => {
            let Some(task) = queue.remove(id) else {
                return Ok(None);
            };
            queue.allocated(&task.request.tenant, &task.request.resources);
            task
        }
    };
    fleet.reserve(&placed.node_id, &task.request.resources);
    Ok(Some(Turn { task, placed }))
}

/// The ordinary turn: the policy's pick among tasks that fit now, then a hold
/// for the first task it offered if that one lacked room, was overtaken (a
/// task behind it was placed instead, or tasks of other pools were), and
/// nothing is held yet.
struct Ordinary<'a> {
    rules: PoolRules<'a>,
    placed_elsewhere: bool,
}

impl Ordinary<'_> {
    fn take(
        &self,
        queue: &mut dyn QueuePolicy,
        fleet: &mut Fleet,
        hold: &mut Option<HeadHold>,
        admits: &mut dyn FnMut(&Waiting) -> bool,
    ) -> Result<Option<Turn>, Unplaceable> {
        let rules = self.rules;
        // The policy offers tasks in its order, so the first offered is its
        // head. Cloned only when refused for room while nothing is held: the
        // common turn, and every turn while a node is held, clone nothing.
        let may_hold = hold.is_none();
        let mut offered_first = true;
        let mut lacking_room: Option<Waiting> = None;
        let picked = {
            let fleet = &*fleet;
            queue.pick(&mut |task| {
                let first = std::mem::take(&mut offered_first);
                if !admits(task) {
                    return false;
                }
                let fits = fleet.any_fits_with(&task.request.resources, &rules.for_task(task));
                if first && !fits && may_hold {
                    lacking_room = Some(task.clone());
                }
                fits
            })
        };
        let turn = match picked {
            None => None,
            Some(task) => match fleet.place(&task.request.resources, &rules.for_task(&task)) {
                Some(placed) => {
                    fleet.reserve(&placed.node_id, &task.request.resources);
                    if hold.as_ref().is_some_and(|h| h.task.id == task.id) {
                        // Another node freed enough first.
                        release_hold(fleet, hold);
                    }
                    Some(Turn { task, placed })
                }
                None => {
                    let id = task.id;
                    queue.released(&task.request.tenant, &task.request.resources);
                    queue.push(task);
                    return Err(Unplaceable { task: id });
                }
            },
        };
        if hold.is_none()
            && (turn.is_some() || self.placed_elsewhere)
            && let Some(head) = lacking_room
            && let Some(node_id) =
                fleet.node_to_hold(&head.request.resources, &rules.for_task(&head))
        {
            fleet.set_held(&node_id, true);
            *hold = Some(HeadHold {
                task: head,
                node_id,
            });
        }
        Ok(turn)
    }
}

/// Lets go of a hold whose pool is gone or whose task is no longer queued.
pub fn release_hold(fleet: &mut Fleet, hold: &mut Option<HeadHold>) {
    if let Some(current) = hold.take() {
        fleet.set_held(&current.node_id, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Fcfs;
    use crate::queue::tests::waiting;
    use taskyard_wire::heartbeat::Capacity;

    const NONE: &BTreeMap<String, String> = &BTreeMap::new();

    fn rules() -> PoolRules<'static> {
        PoolRules {
            node_selector: NONE,
            strategy: PlacementStrategy::BestFit,
            overcommit: 1.0,
        }
    }

    /// Two nodes of 2000m, each running two 1000m tasks; what runs where.
    fn full_pair() -> (Fleet, Fcfs, BTreeMap<String, Vec<Waiting>>) {
        let mut fleet = Fleet::default();
        for node in ["a", "b"] {
            let capacity = Capacity {
                cpu_millis: 2000,
                memory_mb: 4000,
                slots: 10,
            };
            fleet.upsert(node, capacity, true);
        }
        let mut queue = Fcfs::default();
        let mut running: BTreeMap<String, Vec<Waiting>> = BTreeMap::new();
        for seq in 1..=4 {
            queue.push(waiting(seq, 1000));
        }
        let mut hold = None;
        while let Some(turn) = take_turn(
            &mut queue,
            &mut fleet,
            &mut hold,
            rules(),
            &mut |_| true,
            false,
        )
        .expect("fcfs serves what fits")
        {
            running
                .entry(turn.placed.node_id)
                .or_default()
                .push(turn.task);
        }
        assert!(hold.is_none(), "nothing lacked room: {hold:?}");
        assert_eq!(running.values().map(Vec::len).sum::<usize>(), 4);
        (fleet, queue, running)
    }

    fn turn(fleet: &mut Fleet, queue: &mut Fcfs, hold: &mut Option<HeadHold>) -> Option<Turn> {
        take_turn(queue, fleet, hold, rules(), &mut |_| true, false).expect("fcfs serves what fits")
    }

    fn finish(fleet: &mut Fleet, running: &mut BTreeMap<String, Vec<Waiting>>, node: &str) {
        let done = running
            .get_mut(node)
            .and_then(Vec::pop)
            .expect("a task runs there");
        fleet.release(node, &done.request.resources);
    }

    /// [`full_pair`] with a node held, and which.
    struct HeldPair {
        fleet: Fleet,
        queue: Fcfs,
        running: BTreeMap<String, Vec<Waiting>>,
        hold: Option<HeadHold>,
        held: String,
        other: String,
    }

    /// [`full_pair`] with a 2000m task (seq 10) holding a node, after a
    /// 1000m task behind it (seq 11) took a freed core.
    fn held_pair() -> HeldPair {
        let (mut fleet, mut queue, mut running) = full_pair();
        queue.push(waiting(10, 2000));
        queue.push(waiting(11, 1000));
        let mut hold = None;
        assert!(turn(&mut fleet, &mut queue, &mut hold).is_none());
        assert!(hold.is_none(), "nothing overtook the head yet");
        finish(&mut fleet, &mut running, "a");
        let small = turn(&mut fleet, &mut queue, &mut hold).expect("task 11 takes the core");
        assert_eq!(
            (small.task.request.seq, small.placed.node_id.as_str()),
            (11, "a")
        );
        running
            .entry(small.placed.node_id)
            .or_default()
            .push(small.task);
        let held = hold.clone().expect("the overtaken head holds a node");
        assert_eq!(held.task.request.seq, 10);
        assert!(fleet.get(&held.node_id).is_some_and(|n| n.held));
        let other = if held.node_id == "a" { "b" } else { "a" };
        HeldPair {
            fleet,
            queue,
            running,
            hold,
            held: held.node_id,
            other: other.to_owned(),
        }
    }

    #[test]
    fn a_large_task_gets_a_held_node_that_smaller_ones_cannot_refill() {
        let HeldPair {
            mut fleet,
            mut queue,
            mut running,
            mut hold,
            held,
            other,
        } = held_pair();
        queue.push(waiting(12, 1000));
        queue.push(waiting(13, 1000));

        // Room on the other node goes to the small tasks behind (backfill).
        finish(&mut fleet, &mut running, &other);
        let backfilled = turn(&mut fleet, &mut queue, &mut hold).expect("a small task goes");
        assert_eq!(
            (
                backfilled.task.request.seq,
                backfilled.placed.node_id.as_str()
            ),
            (12, other.as_str())
        );

        // Room on the held node is kept for the head, though task 13 fits.
        finish(&mut fleet, &mut running, &held);
        assert!(turn(&mut fleet, &mut queue, &mut hold).is_none());
        assert!(fleet.get(&held).is_some_and(|n| n.held));

        finish(&mut fleet, &mut running, &held);
        let head = turn(&mut fleet, &mut queue, &mut hold).expect("the head goes");
        assert_eq!(head.task.request.seq, 10);
        assert_eq!(head.placed.node_id, held);
        assert!(
            head.placed.reason.contains("held for it"),
            "{}",
            head.placed.reason
        );
        assert!(hold.is_none());
        assert!(fleet.get(&held).is_some_and(|n| !n.held));
        assert_eq!(fleet.get(&held).map(|n| n.reserved_cpu), Some(2000));
        assert_eq!(queue.len(), 1, "task 13 still waits");
    }

    #[test]
    fn a_head_placed_elsewhere_or_cancelled_lets_go_of_its_node() {
        let HeldPair {
            mut fleet,
            mut queue,
            mut running,
            mut hold,
            held,
            other,
        } = held_pair();

        // The other node empties first: the head goes there.
        finish(&mut fleet, &mut running, &other);
        finish(&mut fleet, &mut running, &other);
        let head = turn(&mut fleet, &mut queue, &mut hold).expect("the head goes");
        assert_eq!(head.placed.node_id, other);
        assert!(hold.is_none());
        assert!(fleet.get(&held).is_some_and(|n| !n.held));
        running
            .entry(head.placed.node_id)
            .or_default()
            .push(head.task);

        // A second large task is overtaken and holds a node; cancelling it
        // lets that node take small tasks again.
        queue.push(waiting(20, 2000));
        queue.push(waiting(21, 1000));
        finish(&mut fleet, &mut running, &held);
        let small = turn(&mut fleet, &mut queue, &mut hold).expect("task 21 goes");
        assert_eq!(small.task.request.seq, 21);
        running
            .entry(small.placed.node_id)
            .or_default()
            .push(small.task);
        let second = hold.clone().expect("held again");
        assert_eq!(second.task.request.seq, 20);
        finish(&mut fleet, &mut running, &second.node_id);
        assert!(queue.remove(second.task.id).is_some());
        queue.push(waiting(22, 1000));
        let small = turn(&mut fleet, &mut queue, &mut hold).expect("task 22 goes");
        assert_eq!(small.task.request.seq, 22);
        assert_eq!(small.placed.node_id, second.node_id);
        assert!(hold.is_none());
        assert!(fleet.get(&second.node_id).is_some_and(|n| !n.held));
    }

    #[test]
    fn a_head_refused_by_a_quota_holds_nothing() {
        let (mut fleet, mut queue, mut running) = full_pair();
        queue.push(waiting(10, 2000));
        queue.push(waiting(11, 1000));
        finish(&mut fleet, &mut running, "a");
        let mut hold = None;
        let turn = take_turn(
            &mut queue,
            &mut fleet,
            &mut hold,
            rules(),
            &mut |t| t.request.seq != 10,
            false,
        )
        .expect("nothing served wrongly");
        assert_eq!(turn.map(|t| t.task.request.seq), Some(11));
        assert!(hold.is_none());
    }

    #[test]
    fn a_held_task_that_a_quota_holds_back_lets_go_of_its_node() {
        let HeldPair {
            mut fleet,
            mut queue,
            mut hold,
            held,
            ..
        } = held_pair();
        let turn = take_turn(
            &mut queue,
            &mut fleet,
            &mut hold,
            rules(),
            &mut |t| t.request.seq != 10,
            false,
        )
        .expect("nothing served wrongly");
        assert!(turn.is_none());
        assert!(hold.is_none());
        assert!(fleet.get(&held).is_some_and(|n| !n.held));
    }

    #[test]
    fn a_held_node_that_stops_taking_work_is_let_go() {
        let HeldPair {
            mut fleet,
            mut queue,
            mut running,
            mut hold,
            held,
            other,
        } = held_pair();
        fleet.set_schedulable(&held, false);
        assert!(turn(&mut fleet, &mut queue, &mut hold).is_none());
        assert!(hold.is_none());
        assert!(fleet.get(&held).is_some_and(|n| !n.held));

        // Overtaken again, it holds the node that still takes work.
        queue.push(waiting(30, 1000));
        finish(&mut fleet, &mut running, &other);
        let small = turn(&mut fleet, &mut queue, &mut hold).expect("task 30 goes");
        assert_eq!(small.placed.node_id, other);
        assert_eq!(hold.map(|h| h.node_id), Some(other));
    }
}
