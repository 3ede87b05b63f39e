//! Scheduling policies and placement, as pure data structures.
//!
//! No I/O, no clocks, no randomness: given the same calls, the same answers.
//! The scheduler service drives these types from events; a simulator can drive
//! them in virtual time. Both run the same code.
//!
//! # Layout
//! - [`queue`]: the [`QueuePolicy`] interface (the order in which a pool's
//!   waiting tasks are served), [`PolicyKind`] (the names pools use), and
//!   [`Fcfs`], first come, first served.
//!   - [`queue::round_robin`]: [`RoundRobin`], turns across tenants.
//!   - [`queue::sjf`]: [`Sjf`], shortest estimated runtime first, with aging
//!     on a logical clock (its doc states the bound on overtaking).
//!   - [`queue::wfq`]: [`Wfq`], weighted fair queuing across tenants on
//!     virtual finish times.
//!   - [`queue::drf`]: [`Drf`], dominant resource fairness across tenants on
//!     what they hold now.
//!   - [`queue::priority`]: [`Priority`], strict priority classes over any
//!     inner policy.
//! - [`placement`]: the [`Fleet`] of nodes with their free resources, indexed
//!   by what they have free, and best-fit or spread placement.
//! - [`turn`]: one pool's turn, pick then place ([`take_turn`]), holding a
//!   node for a task that fits nowhere now so that it cannot be overtaken
//!   for ever.
//! - [`quota`]: a pool's [`Quotas`] (tasks, CPU and memory placed at once,
//!   tasks per tenant), the [`Usage`] held against them, and why a quota
//!   holds a task back ([`Refusal`]).
//! - [`round`]: the planning round across pools: the [`Planner`] holds
//!   every pool's queue, quota usage and held node over the shared fleet,
//!   and [`Planner::plan_round`] decides placements turn by turn across
//!   pools. The scheduler service, the simulator and the decision bench all
//!   run this round.

pub mod placement;
pub mod queue;
pub mod quota;
pub mod round;
pub mod turn;

pub use placement::held::{HOLD_CANDIDATES, Shortfall};
pub use placement::{Fleet, NodeSlot, PLACEMENT_WALK, Placed, Rules, Verdict};
pub use queue::{
    Drf, Fcfs, MAX_LOOKAHEAD, PolicyKind, Priority, QueuePolicy, RoundRobin, Sjf, UnknownPolicy,
    Waiting, Wfq,
};
pub use quota::{Quotas, Refusal, Usage};
pub use round::{Decision, Planner, Pool, Round};
pub use turn::{HeadHold, PoolRules, Turn, Unplaceable, release_hold, take_turn};
