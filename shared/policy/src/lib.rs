//! Scheduling policies and placement, as pure data structures.
//!
//! No I/O, no clocks, no randomness: given the same calls, the same answers.
//! The scheduler service drives these types from events; a simulator can drive
//! them in virtual time. Both run the same code.
//!
//! # Layout
//! - [`queue`]: the [`QueuePolicy`] interface (the order in which a pool's
//!   waiting tasks are served) and its policies ([`Fcfs`]).
//! - [`placement`]: the [`Fleet`] of nodes with their free resources, and
//!   best-fit placement.

pub mod placement;
pub mod queue;

pub use placement::{Fleet, NodeSlot, Placed, Rules, Verdict};
pub use queue::{Fcfs, PolicyKind, QueuePolicy, Waiting};
