//! Finding the message a batch statement refuses, so that it alone is set
//! aside and the rest of its batch is recorded.
//!
//! Every hot-path consumer writes a whole batch in one statement. When
//! Postgres refuses that statement because of what one message holds (a
//! value it cannot store, a check it fails), retrying the batch as it is
//! would fail for ever, and the good messages beside the bad one would end
//! as dead letters with it. [`Bisection`] halves a refused batch until each
//! refused part is one message, the *poison*; the caller rejects or keeps
//! that one aside and acknowledges the rest. A failure that is not the
//! input's fault (Postgres or NATS away) is not bisected: the whole
//! remainder is handed back for a later retry, as before.
//!
//! A batch of `n` with one poison message costs about `2 log2 n` statements
//! instead of one; a batch without poison costs nothing more.

use std::ops::Range;

/// What a [`Bisection`] made of a batch of `len` items, by index.
#[derive(Debug)]
pub struct Isolated<O, E> {
    /// Parts that were recorded, with what recording them returned.
    pub recorded: Vec<(Range<usize>, O)>,
    /// Items refused on their own, with why.
    pub poison: Vec<(usize, E)>,
    /// Parts that were not recorded for a reason that is not theirs (a
    /// connection lost, a timeout), and the first such error: hand them
    /// back to be tried again later.
    pub retry: Vec<Range<usize>>,
    pub retry_error: Option<E>,
}

impl<O, E> Isolated<O, E> {
    /// Whether every item was recorded on the first try.
    pub fn all_recorded(&self, len: usize) -> bool {
        self.poison.is_empty() && self.retry.is_empty() && self.recorded_items() == len
    }

    /// How many items were recorded.
    pub fn recorded_items(&self) -> usize {
        self.recorded.iter().map(|(range, _)| range.len()).sum()
    }

    /// Indices of the items to hand back.
    pub fn retry_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.retry.iter().flat_map(|range| range.clone())
    }
}

/// Halves a refused batch until each refused part is one item. The caller
/// drives it, recording each part it is given with its own statement:
///
/// ```ignore
/// let mut bisection = Bisection::new(messages.len(), StoreError::is_poison);
/// while let Some(part) = bisection.next_part() {
///     let result = store.insert(&rows[part.clone()]).await;
///     bisection.record(part, result);
/// }
/// let isolated = bisection.finish();
/// ```
///
/// The first part is the whole batch; while a part is refused for what it
/// holds (`is_poison`), its two halves come next, left before right, so that
/// parts are recorded in the order the items came. After the first failure
/// that is not poison, nothing more is handed out: the rest waits for a
/// retry.
#[derive(Debug)]
pub struct Bisection<O, E> {
    parts: Vec<Range<usize>>,
    is_poison: fn(&E) -> bool,
    isolated: Isolated<O, E>,
}

impl<O, E> Bisection<O, E> {
    pub fn new(len: usize, is_poison: fn(&E) -> bool) -> Bisection<O, E> {
        Bisection {
            parts: if len == 0 {
                Vec::new()
            } else {
                std::iter::once(0..len).collect()
            },
            is_poison,
            isolated: Isolated {
                recorded: Vec::new(),
                poison: Vec::new(),
                retry: Vec::new(),
                retry_error: None,
            },
        }
    }

    /// The next part to record, or `None` when there is nothing more to try.
    pub fn next_part(&mut self) -> Option<Range<usize>> {
        if self.isolated.retry_error.is_some() {
            self.isolated.retry.append(&mut self.parts);
            return None;
        }
        self.parts.pop()
    }

    /// What recording `part` (as given by [`next_part`](Self::next_part)) came to.
    pub fn record(&mut self, part: Range<usize>, result: Result<O, E>) {
        match result {
            Ok(outcome) => self.isolated.recorded.push((part, outcome)),
            Err(err) if !(self.is_poison)(&err) => {
                self.isolated.retry.push(part);
                self.isolated.retry_error = Some(err);
            }
            Err(err) if part.len() == 1 => self.isolated.poison.push((part.start, err)),
            Err(_) => {
                let middle = part.start + part.len() / 2;
                self.parts.push(middle..part.end);
                self.parts.push(part.start..middle);
            }
        }
    }

    pub fn finish(mut self) -> Isolated<O, E> {
        self.isolated.retry.append(&mut self.parts);
        self.isolated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[derive(Debug, PartialEq)]
    enum Failure {
        Poison,
        Outage,
    }

    /// A "statement" over items that fails when any item in its range is
    /// poison, or for every call once `outage_after` calls have been made.
    fn run(
        len: usize,
        poison: &[usize],
        outage_after: Option<usize>,
    ) -> (Isolated<usize, Failure>, usize) {
        let poison: HashSet<usize> = poison.iter().copied().collect();
        let mut calls = 0;
        let mut bisection = Bisection::new(len, |err: &Failure| *err == Failure::Poison);
        while let Some(range) = bisection.next_part() {
            calls += 1;
            let result = if outage_after.is_some_and(|after| calls > after) {
                Err(Failure::Outage)
            } else if range.clone().any(|i| poison.contains(&i)) {
                Err(Failure::Poison)
            } else {
                Ok(range.len())
            };
            bisection.record(range, result);
        }
        (bisection.finish(), calls)
    }

    #[test]
    fn a_clean_batch_is_one_statement() {
        let (isolated, calls) = run(100, &[], None);
        assert_eq!(calls, 1);
        assert!(isolated.all_recorded(100));
    }

    #[test]
    fn one_poison_item_is_found_and_every_other_recorded() {
        let (isolated, calls) = run(100, &[37], None);
        let poison: Vec<usize> = isolated.poison.iter().map(|(i, _)| *i).collect();
        assert_eq!(poison, vec![37]);
        assert_eq!(isolated.recorded_items(), 99);
        assert!(isolated.retry.is_empty());
        // Halving, not one by one.
        assert!(calls <= 2 * 7 + 1, "{calls} statements");
        // Recorded parts cover everything else, in order, without overlap.
        let mut covered: Vec<usize> = isolated
            .recorded
            .iter()
            .flat_map(|(range, _)| range.clone())
            .collect();
        let sorted = {
            let mut s = covered.clone();
            s.sort_unstable();
            s
        };
        assert_eq!(covered, sorted);
        covered.push(37);
        covered.sort_unstable();
        assert_eq!(covered, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn every_poison_item_is_found() {
        let bad = [0, 1, 50, 98, 99];
        let (isolated, _) = run(100, &bad, None);
        let mut poison: Vec<usize> = isolated.poison.iter().map(|(i, _)| *i).collect();
        poison.sort_unstable();
        assert_eq!(poison, bad);
        assert_eq!(isolated.recorded_items(), 95);
    }

    #[test]
    fn an_outage_is_not_bisected() {
        let (isolated, calls) = run(100, &[], Some(0));
        assert_eq!(calls, 1);
        assert_eq!(isolated.retry, vec![0..100]);
        assert_eq!(isolated.retry_error, Some(Failure::Outage));
        assert!(isolated.poison.is_empty());
    }

    #[test]
    fn an_outage_while_bisecting_hands_back_the_rest() {
        // Poison at 10 splits the batch; Postgres goes away after the third
        // statement. Nothing is lost: recorded + poison + retry = all.
        let (isolated, calls) = run(64, &[10], Some(3));
        assert_eq!(calls, 4);
        let retried: usize = isolated.retry.iter().map(|r| r.len()).sum();
        assert_eq!(
            isolated.recorded_items() + isolated.poison.len() + retried,
            64
        );
        assert!(isolated.retry_indices().all(|i| i < 64));
    }

    #[test]
    fn nothing_to_record_makes_no_statement() {
        let (isolated, calls) = run(0, &[], None);
        assert_eq!(calls, 0);
        assert!(isolated.all_recorded(0));
    }
}
