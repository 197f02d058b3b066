//! The set of running members a nursery polls: chunks of slots, each with a waker, and a queue of
//! the slots that were woken.
//!
//! It does what `FuturesUnordered` does for us, with no allocation per member beyond the member
//! itself: slots come in chunks of `CHUNK`, and so do their wakers (`slot_waker.rs`). A slot's
//! waker is lent to each poll of whichever member occupies the slot (nothing is stored or counted
//! per slot; a member that keeps it clones it). A stale wake-up
//! from a member that has ended can only cause a harmless extra poll of the slot's next occupant,
//! never a lost one: a slot whose index is queued stays queued until it is polled.
//!
//! Under a seeded testing runtime each batch is shuffled by the seed, so the order in which ready
//! members are polled is permuted reproducibly.
//!
//! Each `poll_batch` works through one batch: the slots queued when it started. Members woken
//! during the batch (a member that yields wakes itself) go to the next batch, and the nursery's
//! waker has been woken for them, so a member that never blocks cannot monopolise the thread.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::cancelled::Cancelled;
use crate::clock::Clock;
use crate::context;
use crate::slab::{NONE, index_u32};
use crate::slot_queue::SlotQueue;
use crate::slot_waker::{CHUNK, Ready, ReadyQueue, WakerChunk};
use crate::sync::{self, Arc, Frozen, Ordering};
use smallvec::SmallVec;

/// How many added members are queued together (see `MemberSet::added`).
const ADDED: usize = 32;

pub(crate) struct MemberSet<F> {
    /// The slots, in chunks of `CHUNK` that never move once allocated: growing to a hundred
    /// thousand members allocates each slot once instead of copying the lot at every doubling.
    slots: Vec<Vec<Occupant<F>>>,
    /// The wakers of each chunk of `slots`.
    wakers: Vec<Frozen<WakerChunk>>,
    /// The first slot without a member (`NONE` if none): reused before `slots` grows. Vacant
    /// slots name the next one, so the free list never allocates.
    free: u32,
    len: usize,
    queue: Frozen<ReadyQueue>,
    /// Slots of members added since the ready queue was last locked, queued there together when
    /// this is full or a batch begins: adding members takes the queue's lock once per [`ADDED`]
    /// members instead of once each.
    added: SmallVec<[u32; ADDED]>,
    /// The batch being worked through, and how far.
    batch: SlotQueue,
    cursor: usize,
    /// The clock of a seeded testing runtime, which shuffles each batch.
    schedule: Option<Arc<Clock>>,
    /// How many members returned `Pending` last in a foreign future (their slots' `foreign`
    /// mark): the set's owner watches its scope for them (S19).
    foreign: usize,
}

/// A member that can be ended where it is blocked in a foreign future, when its scope is
/// cancelled (S19): it is dropped, and ends as if its cancellation point had failed (or as a
/// panic, if its drop panicked), in the scope of its set.
pub(crate) trait Reached: Future {
    fn reached(self, cancelled: Cancelled) -> Self::Output;
}

/// A slot: its member, or the next vacant slot (the free list, in the space of the member).
enum Occupant<F> {
    Occupied(F),
    Vacant { next_free: u32 },
}

/// Moves the slots in `added` to the ready queue, with room there for all `slots` of the set
/// (see `MemberSet::push`).
fn queue_added(added: &mut SmallVec<[u32; ADDED]>, slots: usize, ready: &mut Ready) {
    ready.slots.reserve(slots);
    ready.slots.extend(added.drain(..));
}

/// Keeps `waker` in `slot` to be woken later, cloning only when the slot holds none or one that
/// would wake another task.
pub(crate) fn remember(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(kept) => kept.clone_from(waker), // `Waker::clone_from` skips an equivalent waker
        None => *slot = Some(waker.clone()),
    }
}

impl<F> MemberSet<F> {
    pub(crate) fn new() -> Self {
        MemberSet {
            slots: Vec::new(),
            wakers: Vec::new(),
            free: NONE,
            len: 0,
            queue: ReadyQueue::new(),
            added: SmallVec::new(),
            batch: SlotQueue::new(),
            cursor: 0,
            schedule: None,
            foreign: 0,
        }
    }

    /// Polls each batch in the order `clock`'s seeded schedule draws (no change without a seed).
    pub(crate) fn set_schedule(&mut self, clock: Option<Arc<Clock>>) {
        self.schedule = clock;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a member is blocked in a foreign future: the owner then registers with its scope,
    /// to end them when it is cancelled ([`take_foreign`](Self::take_foreign)).
    pub(crate) fn has_foreign(&self) -> bool {
        self.foreign > 0
    }

    /// Marks whether the member at `index` is blocked in a foreign future.
    fn mark_foreign(&mut self, index: usize, foreign: bool) {
        let flag = self.wakers[index / CHUNK].foreign(index % CHUNK);
        // Only this set touches the mark: a load and a store, no read-modify-write.
        if flag.load(Ordering::Relaxed) != foreign {
            flag.store(foreign, Ordering::Relaxed);
            if foreign {
                self.foreign += 1;
            } else {
                self.foreign -= 1;
            }
        }
    }

    /// Takes the member at `index` out, if there is one, leaving its slot vacant at the head of
    /// the free list (and unmarked): the one way a slot is emptied.
    fn take(&mut self, index: usize) -> Option<F> {
        let slot = &mut self.slots[index / CHUNK][index % CHUNK];
        if let Occupant::Vacant { .. } = slot {
            return None;
        }
        let taken = std::mem::replace(
            slot,
            Occupant::Vacant {
                next_free: self.free,
            },
        );
        self.free = index_u32(index);
        self.len -= 1;
        self.mark_foreign(index, false);
        match taken {
            Occupant::Occupied(member) => Some(member),
            Occupant::Vacant { .. } => None,
        }
    }

    /// Adds a member; it is polled in the next batch.
    pub(crate) fn push(&mut self, member: F) {
        self.len += 1;
        let (index, fresh) = match self.free {
            NONE => {
                if self.slots.last().is_none_or(|chunk| chunk.len() == CHUNK) {
                    self.add_chunk();
                }
                let last = self.slots.len() - 1;
                (last * CHUNK + self.slots[last].len(), true)
            }
            free => {
                let index = free as usize;
                let Occupant::Vacant { next_free } = self.slots[index / CHUNK][index % CHUNK]
                else {
                    unreachable!("the free list holds vacant slots only");
                };
                self.free = next_free;
                (index, false)
            }
        };
        let (chunk, position) = (index / CHUNK, index % CHUNK);
        // Queued as if woken. A fresh slot never lent its waker, so nothing can race its flag; a
        // reused one may be queued already by a stale wake-up of its previous member.
        let queued = self.wakers[chunk].queued(position);
        let already_queued = if fresh {
            queued.store(true, Ordering::Release);
            false
        } else {
            queued.swap(true, Ordering::AcqRel)
        };
        if fresh {
            // Room for every slot in the batch (and in the ready queue, when the slot is queued
            // there: they swap), so that waking members, even a cancellation waking them all,
            // never allocates.
            self.batch.reserve(index + 1);
            self.slots[chunk].push(Occupant::Occupied(member));
        } else {
            self.slots[chunk][position] = Occupant::Occupied(member);
        }
        if already_queued {
            return;
        }
        // The first member added after the queue was locked has the set's task polled again (it
        // may be parked, waiting for a wake-up); until the queue is locked again, the others
        // find that wake-up pending.
        let nursery = if self.added.is_empty() || self.added.len() == ADDED {
            let slots = self.slot_count();
            let mut ready = sync::lock(&self.queue.state);
            queue_added(&mut self.added, slots, &mut ready);
            ready.nursery.take()
        } else {
            None
        };
        self.added.push(index_u32(index));
        if let Some(nursery) = nursery {
            nursery.wake();
        }
    }

    /// How many slots there are, occupied or vacant.
    fn slot_count(&self) -> usize {
        self.slots.len().saturating_sub(1) * CHUNK + self.slots.last().map_or(0, Vec::len)
    }

    /// Adds a chunk of slots and their wakers.
    fn add_chunk(&mut self) {
        let first = self.slots.len() * CHUNK;
        self.slots.push(Vec::with_capacity(CHUNK));
        self.wakers
            .push(WakerChunk::new(index_u32(first), self.queue.clone()));
    }
}

impl<F> MemberSet<F> {
    /// Takes every member out, in slot order, and hands each to `f`; their slots (and wakers)
    /// stay for reuse. A panic in `f` leaves the members not yet taken in the set.
    pub(crate) fn take_each(&mut self, mut f: impl FnMut(F)) {
        for index in 0..self.slot_count() {
            if let Some(member) = self.take(index) {
                f(member);
            }
        }
    }
}

impl<F> MemberSet<F> {
    /// Takes out every member blocked in a foreign future, now that the set's scope is
    /// cancelled (S19), for the owner to end where they are ([`Reached::reached`]) once it has
    /// let go of the set: ending one drops its future, whose drop may spawn into the nursery.
    pub(crate) fn take_foreign(&mut self) -> Vec<F> {
        let mut taken = Vec::with_capacity(self.foreign);
        for index in 0..self.slot_count() {
            let marked = self.wakers[index / CHUNK].foreign(index % CHUNK);
            if marked.load(Ordering::Relaxed)
                && let Some(member) = self.take(index)
            {
                taken.push(member);
            }
        }
        taken
    }
}

impl<F> Extend<F> for MemberSet<F> {
    fn extend<I: IntoIterator<Item = F>>(&mut self, members: I) {
        for member in members {
            self.push(member);
        }
    }
}

impl<F: Future + Unpin> MemberSet<F> {
    /// Polls the woken members of a fresh batch, handing the output of each member that ends to
    /// `ended` (which cannot reach the set: it is borrowed). `Ready` once the set is empty.
    pub(crate) fn poll_batch(
        &mut self,
        cx: &mut Context<'_>,
        mut ended: impl FnMut(F::Output),
    ) -> Poll<()> {
        if self.len == 0 {
            // Registered even so: a member added from another thread later (a handle used there
            // while the nursery waits for its body) must wake this task, not one it was before.
            remember(&mut sync::lock(&self.queue.state).nursery, cx.waker());
            return Poll::Ready(());
        }
        if self.cursor == self.batch.len() {
            self.start_batch(cx);
        }
        // Only the member's poll is done here: nested nurseries recurse through it, and what
        // comes before and after is in functions of their own (issue 24, item 7).
        while let Some(index) = self.next_in_batch() {
            let (chunk, position) = (index / CHUNK, index % CHUNK);
            let Occupant::Occupied(member) = &mut self.slots[chunk][position] else {
                continue;
            };
            let waker = WakerChunk::lend_waker(&self.wakers[chunk], position);
            let watch = context::Watch::begin();
            let polled = Pin::new(member).poll(&mut Context::from_waker(&waker));
            let reachable = watch.end();
            self.polled(index, polled, reachable, &mut ended);
        }
        if self.len == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// A fresh batch: the slots queued so far. The waker is registered under the same lock, so
    /// a wake-up after the swap finds it; one that takes it during the batch has the set's task
    /// polled again, which starts the next batch and registers it again.
    #[cfg_attr(debug_assertions, inline(never))] // out of the frame members are polled in
    #[cfg_attr(not(debug_assertions), inline)]
    fn start_batch(&mut self, cx: &mut Context<'_>) {
        self.batch.clear();
        self.cursor = 0;
        let slots = self.slot_count();
        let mut ready = sync::lock(&self.queue.state);
        #[cfg(not(wherefore_loom_broken_batch))]
        remember(&mut ready.nursery, cx.waker());
        queue_added(&mut self.added, slots, &mut ready);
        std::mem::swap(&mut self.batch, &mut ready.slots);
        drop(ready);
        // The deliberately broken build registers the waker after the swap, under a lock of its
        // own (register-after-swap): a wake-up in between goes to the previous waker.
        #[cfg(wherefore_loom_broken_batch)]
        remember(&mut sync::lock(&self.queue.state).nursery, cx.waker());
        if let Some(clock) = &self.schedule {
            let batch = &mut self.batch;
            clock.shuffle_by(batch.len(), |i, j| batch.swap(i, j));
        }
    }

    /// The next slot of the batch, its queued flag cleared: a wake-up during its poll queues it
    /// again.
    #[cfg_attr(debug_assertions, inline(never))] // out of the frame members are polled in
    #[cfg_attr(not(debug_assertions), inline)]
    fn next_in_batch(&mut self) -> Option<usize> {
        let index = self.batch.get(self.cursor)? as usize;
        self.cursor += 1;
        self.wakers[index / CHUNK]
            .queued(index % CHUNK)
            .store(false, Ordering::Release);
        Some(index)
    }

    /// After the poll of the member in slot `index`: hands its output to `ended` if it ended,
    /// else marks whether it is blocked in a foreign future.
    #[cfg_attr(debug_assertions, inline(never))] // out of the frame members are polled in
    #[cfg_attr(not(debug_assertions), inline)]
    fn polled(
        &mut self,
        index: usize,
        polled: Poll<F::Output>,
        reachable: bool,
        ended: &mut impl FnMut(F::Output),
    ) {
        if let Poll::Ready(output) = polled {
            drop(self.take(index)); // the member's future is gone already
            ended(output);
        } else {
            self.mark_foreign(index, !reachable);
        }
    }
}

#[cfg(all(test, not(wherefore_loom)))]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::task::Waker;

    /// Ready on its second poll; keeps the waker of its first.
    struct Twice {
        name: &'static str,
        polls: Rc<Cell<u32>>,
        kept: Kept,
    }

    impl Future for Twice {
        type Output = &'static str;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
            self.polls.set(self.polls.get() + 1);
            if self.polls.get() == 2 {
                return Poll::Ready(self.name);
            }
            *self.kept.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// The waker a `Twice` keeps, shared with the test.
    type Kept = Rc<RefCell<Option<Waker>>>;

    fn twice(name: &'static str) -> (Twice, Rc<Cell<u32>>, Kept) {
        let (polls, kept) = (Rc::new(Cell::new(0)), Rc::new(RefCell::new(None)));
        let future = Twice {
            name,
            polls: polls.clone(),
            kept: kept.clone(),
        };
        (future, polls, kept)
    }

    fn poll_batch(set: &mut MemberSet<Twice>) -> (Poll<()>, Vec<&'static str>) {
        let mut ended = Vec::new();
        let mut cx = Context::from_waker(Waker::noop());
        let polled = set.poll_batch(&mut cx, |name| ended.push(name));
        (polled, ended)
    }

    #[test]
    fn a_stale_wake_up_polls_the_slots_next_member_once_more_and_loses_nothing() {
        let mut set = MemberSet::new();
        let (a, a_polls, a_waker) = twice("a");
        set.push(a);
        assert_eq!(poll_batch(&mut set), (Poll::Pending, vec![]));
        a_waker.borrow().as_ref().unwrap().wake_by_ref();
        assert_eq!(poll_batch(&mut set), (Poll::Ready(()), vec!["a"]));
        assert_eq!(a_polls.get(), 2);

        // "b" takes a's slot; a's old waker, still around, wakes that slot once more.
        let (b, b_polls, _b_waker) = twice("b");
        set.push(b);
        a_waker.borrow().as_ref().unwrap().wake_by_ref(); // queued already: no second entry
        assert_eq!(poll_batch(&mut set), (Poll::Pending, vec![]));
        assert_eq!(b_polls.get(), 1, "polled once, not twice, for two wake-ups");
        a_waker.borrow().as_ref().unwrap().wake_by_ref(); // stale: an extra poll of b
        assert_eq!(poll_batch(&mut set), (Poll::Ready(()), vec!["b"]));
        assert!(set.is_empty());
    }

    /// Counts the wake-ups of the set's own task.
    struct CountsWakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountsWakes {
        fn wake(self: std::sync::Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn members_added_while_the_set_waits_wake_it_once_and_all_run_in_the_next_batch() {
        let mut set = MemberSet::new();
        let (first, _, _) = twice("first");
        set.push(first);
        let wakes = std::sync::Arc::new(CountsWakes(Default::default()));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(
            set.poll_batch(&mut cx, |_| {}).is_pending(),
            "parked, waker registered"
        );
        let polls: Vec<_> = (0..2 * ADDED + 5)
            .map(|_| {
                let (member, polls, _) = twice("added");
                set.push(member);
                polls
            })
            .collect();
        assert_eq!(
            wakes.0.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "the first addition wakes the set's task; the others find the wake-up pending"
        );
        assert!(set.poll_batch(&mut cx, |_| {}).is_pending());
        assert!(
            polls.iter().all(|polls| polls.get() == 1),
            "every added member, also those still gathered when the batch began, was polled"
        );
    }

    #[test]
    fn slots_are_reused_last_freed_first_across_chunks() {
        let mut set = MemberSet::new();
        let mut wakers = Vec::new();
        for _ in 0..CHUNK + 2 {
            let (member, _, kept) = twice("m");
            set.push(member);
            wakers.push(kept);
        }
        assert_eq!(poll_batch(&mut set).1.len(), 0);
        assert_eq!(
            set.slots.len(),
            2,
            "a second chunk for the last two members"
        );
        for kept in &wakers {
            kept.borrow().as_ref().unwrap().wake_by_ref();
        }
        assert_eq!(poll_batch(&mut set).1.len(), CHUNK + 2);
        let (again, _, _) = twice("again");
        set.push(again);
        // "again" took the slot freed last (CHUNK + 1); the one freed before it is next.
        assert_eq!(set.free, index_u32(CHUNK));
        assert_eq!(set.slots.len(), 2, "no new chunk while slots are free");
    }
}
