//! A queue of slot indices (the member set's ready queue and its batch) stored in fixed chunks
//! that are allocated once each and never move or grow.
//!
//! Both queues keep room for every slot of their set, so that waking members (a cancellation
//! wakes them all) never allocates under the queue's lock. A `Vec` kept that roomy doubles its
//! way up, copying itself each time: growing to a hundred thousand slots allocates about twice
//! the room it ends with. In chunks of [`CHUNK`] indices, each index is allocated once (see
//! BENCHMARKS.md, workload 1).
//!
//! # Invariants
//!
//! 1. The first `len` indices are stored, in order, in the first chunks: index `i` is at
//!    `chunks[i / CHUNK][i % CHUNK]`.
//! 2. Chunks are only added ([`reserve`](SlotQueue::reserve), or a [`push`](SlotQueue::push)
//!    past the room), never freed while the queue lives: clearing keeps them for the next fill.

use crate::slot_waker::CHUNK;

/// The chunk and the place in it of index `position` (invariant 1).
#[inline]
fn locate(position: usize) -> (usize, usize) {
    (position / CHUNK, position % CHUNK)
}

#[derive(Debug, Default)]
pub(crate) struct SlotQueue {
    chunks: Vec<Box<[u32; CHUNK]>>,
    len: usize,
}

impl SlotQueue {
    pub(crate) const fn new() -> Self {
        SlotQueue {
            chunks: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// How many indices fit without allocating.
    pub(crate) fn room(&self) -> usize {
        self.chunks.len() * CHUNK
    }

    /// Makes room for `total` indices in all (not `total` more): allocates the missing chunks.
    pub(crate) fn reserve(&mut self, total: usize) {
        while self.room() < total {
            self.chunks.push(Box::new([0; CHUNK]));
        }
    }

    /// Appends `slot`; allocates only past the room reserved.
    #[inline]
    pub(crate) fn push(&mut self, slot: u32) {
        let (chunk, position) = locate(self.len);
        match self.chunks.get_mut(chunk) {
            Some(chunk) => chunk[position] = slot,
            None => {
                let mut fresh = Box::new([0; CHUNK]);
                fresh[0] = slot; // `position` is 0: the chunks before are full (invariant 1)
                self.chunks.push(fresh);
            }
        }
        self.len += 1;
    }

    /// The index at `position`, if it is below `len`.
    pub(crate) fn get(&self, position: usize) -> Option<u32> {
        let (chunk, place) = locate(position);
        (position < self.len).then(|| self.chunks[chunk][place])
    }

    pub(crate) fn swap(&mut self, a: usize, b: usize) {
        let ((ca, pa), (cb, pb)) = (locate(a), locate(b));
        let x = self.chunks[ca][pa];
        self.chunks[ca][pa] = std::mem::replace(&mut self.chunks[cb][pb], x);
    }

    /// Empties the queue; its room stays (invariant 2).
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// The indices, in order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.chunks
            .iter()
            .flat_map(|chunk| chunk.iter())
            .take(self.len)
            .copied()
    }
}

impl Extend<u32> for SlotQueue {
    fn extend<I: IntoIterator<Item = u32>>(&mut self, slots: I) {
        for slot in slots {
            self.push(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_past_a_chunk_keep_their_order_and_clearing_keeps_the_room() {
        let mut queue = SlotQueue::new();
        queue.extend(0..(CHUNK as u32 + 3));
        assert_eq!(queue.len(), CHUNK + 3);
        assert_eq!(queue.room(), 2 * CHUNK);
        assert_eq!(queue.get(CHUNK + 2), Some(CHUNK as u32 + 2));
        assert_eq!(queue.get(CHUNK + 3), None);
        queue.swap(0, CHUNK + 1);
        assert_eq!(
            (queue.get(0), queue.get(CHUNK + 1)),
            (Some(CHUNK as u32 + 1), Some(0))
        );
        assert!(queue.iter().eq((0..CHUNK as u32 + 3).map(|i| match i {
            0 => CHUNK as u32 + 1,
            i if i == CHUNK as u32 + 1 => 0,
            i => i,
        })));
        queue.clear();
        assert_eq!(
            (queue.len(), queue.room(), queue.iter().count()),
            (0, 2 * CHUNK, 0)
        );
    }

    #[test]
    fn reserving_a_total_allocates_only_the_missing_chunks() {
        let mut queue = SlotQueue::new();
        queue.reserve(1);
        assert_eq!(queue.room(), CHUNK);
        queue.reserve(CHUNK);
        assert_eq!(queue.room(), CHUNK, "room for a total, not for more");
        queue.reserve(CHUNK + 1);
        assert_eq!(queue.room(), 2 * CHUNK);
    }
}
