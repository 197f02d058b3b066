//! The timer queue's tests: every answer checked against a plain list of the live keys, and
//! the cases a timeout's life goes through.

use super::*;
use crate::clock::SplitMix64;
use std::pin::Pin;
use std::time::Duration;

/// A reproducible stream of numbers: the clock's seeded generator.
struct Numbers(SplitMix64);

impl Numbers {
    fn below(&mut self, n: u64) -> u64 {
        self.0.next() % n
    }

    /// A delay from nanoseconds to past the wheel's span (2^36 ms), most of them short.
    fn delay(&mut self) -> Duration {
        let nanos = match self.below(10) {
            0..=3 => self.below(3_000_000),
            4..=6 => self.below(10_000_000_000),
            7 | 8 => self.below(10 * 86_400 * 1_000_000_000),
            _ => self.below(5 * 365 * 86_400 * 1_000_000_000),
        };
        Duration::from_nanos(nanos)
    }
}

/// A timer stored in a node the test owns, pinned in its box.
type StoredTimer = Pin<Box<TimerNode<u64>>>;

/// How a test holds a timer it added: by handle, or as the node that stores it.
enum Held {
    Handle(TimerHandle),
    Node(StoredTimer),
}

impl Held {
    fn remove(&self, queue: &mut TimerQueue<u64>) -> Option<u64> {
        match self {
            Held::Handle(handle) => queue.remove(*handle),
            // SAFETY: the node is pinned in its box, added to this queue only, and the test
            // takes it back before the box goes (see `check_against_a_list`).
            Held::Node(node) => match unsafe { queue.remove_node(node) } {
                NodeTimer::Pending(value) => Some(value),
                NodeTimer::Popped(_) | NodeTimer::Off => None,
            },
        }
    }
}

/// Runs random insertions (by handle, or stored in a node), removals, time steps and
/// questions, checking every answer against a plain list of the live keys.
fn check_against_a_list(seed: u64, steps: usize) {
    let mut numbers = Numbers(SplitMix64(seed));
    let base = Instant::now();
    let mut now = base;
    let mut queue = TimerQueue::new(base);
    let mut live: Vec<(TimerKey, Held, u64)> = Vec::new();
    // Nodes whose timer fired: their handles, to ask them about it.
    let mut popped: Vec<(StoredTimer, TimerHandle)> = Vec::new();
    let mut seq = 0;
    for _ in 0..steps {
        match numbers.below(10) {
            0..=4 => {
                seq += 1;
                let rank = if numbers.below(2) == 0 {
                    numbers.below(3)
                } else {
                    (1 << 63) | numbers.below(3)
                };
                // Some timers share an instant, some lie in the past (never before `base`,
                // which is when the clock started: see `Stored`).
                let at = match numbers.below(8) {
                    0 => live.first().map_or(now, |(key, ..)| key.at),
                    1 => (now - base)
                        .checked_sub(numbers.delay())
                        .map_or(base, |since| base + since),
                    _ => now + numbers.delay(),
                };
                let key = TimerKey { at, rank, seq };
                let held = if numbers.below(2) == 0 {
                    Held::Handle(queue.insert(key, seq))
                } else {
                    let node = Box::pin(TimerNode::new());
                    // SAFETY: pinned in its box; taken back from this queue before the box
                    // is dropped (removed, or asked after it fired, below and at the end).
                    unsafe { queue.insert_node(key, &node, seq) };
                    Held::Node(node)
                };
                live.push((key, held, seq));
            }
            5 | 6 if !live.is_empty() => {
                // Often the latest or the earliest timer added, as nested, successive or
                // concurrent timeouts leave.
                let by_seq = |i: &usize| live[*i].0.seq;
                let index = match numbers.below(3) {
                    0 => (0..live.len()).max_by_key(by_seq).expect("not empty"),
                    1 => (0..live.len()).min_by_key(by_seq).expect("not empty"),
                    _ => numbers.below(live.len() as u64) as usize,
                };
                let (_, held, value) = live.swap_remove(index);
                assert_eq!(held.remove(&mut queue), Some(value));
                assert_eq!(
                    held.remove(&mut queue),
                    None,
                    "a removed timer stays removed"
                );
            }
            7 => {
                let earliest = live.iter().map(|(key, ..)| *key).min();
                // (With only removed timers left in a bucket it may still name an instant.)
                if let Some(key) = earliest {
                    let wake = queue
                        .next_wake()
                        .expect("a wake-up while a timer is pending");
                    assert!(
                        wake <= key.at,
                        "seed {seed}: never after the earliest timer"
                    );
                }
                assert_eq!(queue.first(), earliest);
            }
            _ => {
                now += numbers.delay() / (1 + numbers.below(1000) as u32);
                live.sort_by_key(|(key, ..)| *key);
                let due = live.iter().take_while(|(key, ..)| key.at <= now).count();
                let mut expected = Vec::new();
                let mut nodes = Vec::new();
                for (_, held, value) in live.drain(..due) {
                    expected.push(value);
                    if let Held::Node(node) = held {
                        nodes.push((value, node));
                    }
                }
                let mut fired = Vec::new();
                while let Some((handle, value)) = queue.pop_due(now) {
                    fired.push(value);
                    if let Some(i) = nodes.iter().position(|(v, _)| *v == value) {
                        popped.push((nodes.swap_remove(i).1, handle));
                    }
                }
                assert_eq!(fired, expected, "seed {seed}: what is due, in key order");
                for (node, handle) in popped.drain(..) {
                    // SAFETY: as where it was added.
                    unsafe {
                        assert_eq!(queue.node_popped(&node), Some(handle));
                        assert_eq!(queue.remove_node(&node), NodeTimer::Popped(handle));
                        assert_eq!(queue.remove_node(&node), NodeTimer::Off);
                    }
                }
            }
        }
    }
    for (_, held, value) in live.drain(..) {
        assert_eq!(
            held.remove(&mut queue),
            Some(value),
            "seed {seed}: still pending"
        );
    }
    assert_eq!(queue.first(), None);
}

#[test]
fn timers_fire_in_key_order_whatever_the_mix_of_delays_removals_and_questions() {
    // Under Miri (which checks the nodes' pointers) a few seeds: it runs ~1,000x slower.
    let seeds = if cfg!(miri) { 4 } else { 200 };
    for seed in 0..seeds {
        check_against_a_list(seed, 400);
    }
}

#[test]
fn a_handle_reaches_its_timer_until_it_fires_and_nothing_after() {
    let base = Instant::now();
    let mut queue = TimerQueue::new(base);
    let key = TimerKey {
        at: base + Duration::from_secs(3600),
        rank: 0,
        seq: 1,
    };
    let handle = queue.insert(key, "timeout");
    assert_eq!(queue.get_mut(handle).copied(), Some("timeout"));
    assert_eq!(queue.pop_due(base + Duration::from_secs(3599)), None);
    assert_eq!(queue.first(), Some(key));
    assert_eq!(
        queue.pop_due(key.at),
        Some((handle, "timeout")),
        "fires at its instant exactly"
    );
    assert_eq!(queue.get_mut(handle), None);
    assert_eq!(queue.remove(handle), None);
    assert_eq!(queue.first(), None);
}

/// Three timers stored in their owners, all in one bucket of the wheel.
fn three_stored_timers_in_one_bucket() -> (TimerQueue<u64>, Vec<StoredTimer>) {
    let base = Instant::now();
    let mut queue = TimerQueue::new(base);
    let nodes: Vec<_> = (0..3).map(|_| Box::pin(TimerNode::new())).collect();
    for (seq, node) in (0..).zip(&nodes) {
        let at = base + Duration::from_secs(3600) + Duration::from_micros(seq);
        // SAFETY: pinned in their boxes, which the test keeps until it took them back.
        unsafe { queue.insert_node(TimerKey { at, rank: 0, seq }, node, seq) };
    }
    (queue, nodes)
}

#[test]
fn a_stored_timer_leaves_its_bucket_from_the_middle_and_either_end() {
    let (mut queue, nodes) = three_stored_timers_in_one_bucket();
    let occupied = |queue: &TimerQueue<u64>| {
        let levels = queue.levels.as_ref().expect("a timer landed in the wheel");
        levels
            .iter()
            .map(|level| level.occupied.count_ones())
            .sum::<u32>()
    };
    assert_eq!(occupied(&queue), 1, "all three share one bucket");
    // SAFETY (each call): the nodes were added to this queue only.
    for (index, expected_first) in [(1, 0), (0, 2)] {
        let taken = unsafe { queue.remove_node(&nodes[index]) };
        assert_eq!(taken, NodeTimer::Pending(index as u64));
        assert_eq!(queue.first().map(|key| key.seq), Some(expected_first));
    }
    assert_eq!(
        unsafe { queue.remove_node(&nodes[2]) },
        NodeTimer::Pending(2)
    );
    assert_eq!(unsafe { queue.remove_node(&nodes[2]) }, NodeTimer::Off);
    assert_eq!(queue.first(), None);
    assert_eq!(
        occupied(&queue),
        0,
        "the emptied bucket is no longer marked"
    );
    assert_eq!(
        queue.entries.len(),
        0,
        "stored timers take no slab entry in the wheel"
    );
}

#[test]
fn a_stored_timer_that_comes_due_fires_from_a_slab_entry_its_node_remembers() {
    let (mut queue, nodes) = three_stored_timers_in_one_bucket();
    let at = queue.base + Duration::from_secs(3600);
    let (handle, value) = queue.pop_due(at).expect("the first is due at its instant");
    assert_eq!(value, 0);
    // SAFETY (each call): the nodes were added to this queue only.
    unsafe {
        assert_eq!(queue.node_popped(&nodes[0]), Some(handle));
        assert_eq!(queue.node_popped(&nodes[1]), None, "not due yet: not fired");
        assert_eq!(queue.remove_node(&nodes[0]), NodeTimer::Popped(handle));
        // Reaching the first moved the others down to the due heap, into slab entries.
        assert_eq!(queue.entries.len(), 2);
        let mut timer_of_1 = None;
        assert!(queue.with_node_timer(&nodes[1], |value| timer_of_1 = Some(*value)));
        assert_eq!(timer_of_1, Some(1), "a moved node still reaches its timer");
        assert_eq!(queue.remove_node(&nodes[1]), NodeTimer::Pending(1));
        assert_eq!(queue.remove_node(&nodes[2]), NodeTimer::Pending(2));
    }
    assert_eq!(queue.pop_due(at + Duration::from_secs(1)), None);
}

#[test]
fn timeouts_one_after_another_leave_nothing_behind() {
    let base = Instant::now();
    let mut queue = TimerQueue::new(base);
    for seq in 0..10_000 {
        let at = base + Duration::from_secs(3600) + Duration::from_millis(seq);
        let handle = queue.insert(TimerKey { at, rank: 0, seq }, ());
        assert_eq!(queue.remove(handle), Some(()));
    }
    assert_eq!(queue.stale, 0, "each key was taken back out of its bucket");
    assert_eq!(queue.first(), None);
}

/// A queue holding 10,000 timers an hour away, a microsecond apart, in the order added.
fn ten_thousand_timeouts_an_hour_away() -> (TimerQueue<()>, Vec<TimerHandle>) {
    let base = Instant::now();
    let mut queue = TimerQueue::new(base);
    let handles = (0..10_000)
        .map(|seq| {
            let at = base + Duration::from_secs(3600) + Duration::from_micros(seq);
            queue.insert(TimerKey { at, rank: 0, seq }, ())
        })
        .collect();
    (queue, handles)
}

#[test]
fn timeouts_ending_in_the_order_they_began_leave_nothing_behind() {
    let (mut queue, handles) = ten_thousand_timeouts_an_hour_away();
    for handle in handles {
        assert_eq!(queue.remove(handle), Some(()));
    }
    assert_eq!(
        queue.stale, 0,
        "each key was taken from the front of its bucket"
    );
}

#[test]
fn removals_are_swept_so_left_behind_keys_stay_bounded() {
    let (mut queue, handles) = ten_thousand_timeouts_an_hour_away();
    // A scrambled order (7,919 is prime to 10,000): most keys are inside their bucket.
    for i in 0..handles.len() {
        queue.remove(handles[i * 7_919 % handles.len()]);
    }
    let left: usize = queue
        .levels
        .iter()
        .flat_map(|levels| levels.iter())
        .flat_map(|level| level.slots.iter())
        .map(VecDeque::len)
        .sum();
    assert!(
        left <= 64,
        "{left} keys left behind after removing every timer"
    );
    assert_eq!(queue.first(), None);
}
