//! The simulator's agenda: events ordered by simulated time, ties broken by insertion order so
//! that the schedule is a pure function of the seed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A time-ordered queue of pending events. Equal times pop in insertion (FIFO) order.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<(u64, u64, Queued<E>)>>,
    next_sequence: u64,
}

/// Wrapper that lets `E` ride in the heap without requiring `E: Ord`; ordering is decided by
/// `(time, sequence)` alone, and sequences are unique.
#[derive(Debug)]
struct Queued<E>(E);

impl<E> PartialEq for Queued<E> {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}
impl<E> Eq for Queued<E> {}
impl<E> PartialOrd for Queued<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Queued<E> {
    fn cmp(&self, _other: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty agenda.
    pub fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            next_sequence: 0,
        }
    }

    /// Schedules `event` at simulated time `at`.
    pub fn push(&mut self, at: u64, event: E) {
        self.heap
            .push(Reverse((at, self.next_sequence, Queued(event))));
        self.next_sequence += 1;
    }

    /// Removes and returns the earliest event with its time.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        self.heap
            .pop()
            .map(|Reverse((at, _, Queued(event)))| (at, event))
    }

    /// The time of the earliest event, if any.
    pub fn peek_time(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// `true` when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::EventQueue;

    #[test]
    fn pops_by_time_then_insertion_order() {
        let mut queue = EventQueue::new();
        queue.push(5, "c");
        queue.push(1, "a");
        queue.push(5, "d");
        queue.push(1, "b");
        assert_eq!(queue.peek_time(), Some(1));
        let order: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(order, vec![(1, "a"), (1, "b"), (5, "c"), (5, "d")]);
        assert!(queue.is_empty());
    }
}
