//! A minimal slab: values addressed by the key returned on insertion.
//!
//! Used for a scope's children, its waiting wakers and the clock's timers, where removal by key
//! must be O(1) and the storage must not grow with the number of values that came and went. A
//! key carries a stamp that is unique within the slab, so a key kept past its value's removal (a
//! waiter that was woken and drained) never reaches a later value stored at the same index.
//!
//! Vacant entries form the free list themselves (each names the next one), so removing a value
//! never allocates, and a slab that empties lets go of its storage. The first entry is stored
//! inline: a slab with one value (a scope with one child, every nested scope's parent) needs no
//! buffer besides itself. A scope's waiters and children are each a [`LazySlab`]: one word in
//! every scope record, and a slab (one allocation, holding the first value inline) only in the
//! scopes where a task ever blocked or a scope was ever entered.

use std::num::NonZeroU64;

use smallvec::SmallVec;

/// A key into a [`Slab`]: the index in the low 32 bits, the insertion stamp in the high 32.
/// Stamps are never zero, so an `Option<SlabKey>` takes no more room than a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SlabKey(NonZeroU64);

impl SlabKey {
    fn index(self) -> usize {
        (self.0.get() & 0xffff_ffff) as usize
    }

    fn stamp(self) -> u32 {
        (self.0.get() >> 32) as u32
    }
}

/// No entry: the end of a free list kept as `u32` indices (here and in the member set).
pub(crate) const NONE: u32 = u32::MAX;

/// `index` as a `u32` index, below [`NONE`].
pub(crate) fn index_u32(index: usize) -> u32 {
    u32::try_from(index)
        .ok()
        .filter(|&i| i != NONE)
        .expect("fewer than 2^32 - 1 entries")
}

#[derive(Debug)]
enum Entry<T> {
    Occupied { stamp: u32, value: T },
    Vacant { next: u32 },
}

impl<T> Entry<T> {
    fn value(&self) -> Option<&T> {
        match self {
            Entry::Occupied { value, .. } => Some(value),
            Entry::Vacant { .. } => None,
        }
    }

    fn into_value(self) -> Option<T> {
        match self {
            Entry::Occupied { value, .. } => Some(value),
            Entry::Vacant { .. } => None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Slab<T> {
    entries: SmallVec<[Entry<T>; 1]>,
    /// The first vacant entry, reused before the vector grows (`NONE` if there is none).
    free: u32,
    len: usize,
    next_stamp: u32,
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Self {
        Slab {
            entries: SmallVec::new(),
            free: NONE,
            len: 0,
            next_stamp: 1,
        }
    }

    pub(crate) fn insert(&mut self, value: T) -> SlabKey {
        let stamp = self.next_stamp; // never zero: it skips zero when it wraps
        self.next_stamp = self.next_stamp.checked_add(1).unwrap_or(1);
        self.len += 1;
        let occupied = Entry::Occupied { stamp, value };
        let index = match self.free {
            NONE => {
                self.entries.push(occupied);
                index_u32(self.entries.len() - 1)
            }
            index => {
                let entry = &mut self.entries[index as usize];
                let Entry::Vacant { next } = *entry else {
                    unreachable!("the free list holds vacant entries only");
                };
                self.free = next;
                *entry = occupied;
                index
            }
        };
        let key = (u64::from(stamp) << 32) | u64::from(index);
        SlabKey(NonZeroU64::new(key).expect("the stamp is not zero"))
    }

    pub(crate) fn remove(&mut self, key: SlabKey) -> Option<T> {
        let (index, stamp) = (key.index(), key.stamp());
        let entry = self.entries.get_mut(index)?;
        if !matches!(entry, Entry::Occupied { stamp: s, .. } if *s == stamp) {
            return None;
        }
        let vacant = Entry::Vacant { next: self.free };
        let Entry::Occupied { value, .. } = std::mem::replace(entry, vacant) else {
            unreachable!("checked above");
        };
        self.free = index as u32;
        self.len -= 1;
        if self.len == 0 {
            self.entries = SmallVec::new();
            self.free = NONE;
        }
        Some(value)
    }

    pub(crate) fn get(&self, key: SlabKey) -> Option<&T> {
        let (index, stamp) = (key.index(), key.stamp());
        match self.entries.get(index)? {
            Entry::Occupied { stamp: s, value } if *s == stamp => Some(value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: SlabKey) -> Option<&mut T> {
        let (index, stamp) = (key.index(), key.stamp());
        match self.entries.get_mut(index)? {
            Entry::Occupied { stamp: s, value } if *s == stamp => Some(value),
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The first value at an index at or after `from`, and the index after it: a cursor that
    /// stays valid while values come and go between calls.
    pub(crate) fn next_from(&self, from: usize) -> Option<(&T, usize)> {
        let rest = self.entries.get(from..)?;
        rest.iter()
            .enumerate()
            .find_map(|(offset, entry)| Some((entry.value()?, from + offset + 1)))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().filter_map(Entry::value)
    }

    /// Removes every value, yielding them, and frees the storage.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + use<T> {
        let entries = std::mem::take(&mut self.entries);
        self.free = NONE;
        self.len = 0;
        entries.into_iter().filter_map(Entry::into_value)
    }
}

/// A [`Slab`] that takes one word until its first value: the slab is allocated on the first
/// insertion and kept until it is drained or dropped (so a task that waits again and again in one
/// scope, or a scope that runs one timeout after another, allocates once). For slabs that most
/// owners never use (the waiters and the children of a scope: most scopes, timeouts above all,
/// never have a task blocked in them or a scope inside them), where the bytes of an empty `Slab`
/// in every owner cost more than an allocation in the few that fill it.
#[derive(Debug)]
pub(crate) struct LazySlab<T>(Option<Box<Slab<T>>>);

impl<T> LazySlab<T> {
    pub(crate) const fn new() -> Self {
        LazySlab(None)
    }

    pub(crate) fn insert(&mut self, value: T) -> SlabKey {
        self.0
            .get_or_insert_with(|| Box::new(Slab::new()))
            .insert(value)
    }

    pub(crate) fn remove(&mut self, key: SlabKey) -> Option<T> {
        self.0.as_mut()?.remove(key)
    }

    pub(crate) fn get_mut(&mut self, key: SlabKey) -> Option<&mut T> {
        self.0.as_mut()?.get_mut(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |slab| slab.len())
    }

    /// See [`Slab::next_from`].
    pub(crate) fn next_from(&self, from: usize) -> Option<(&T, usize)> {
        self.0.as_ref()?.next_from(from)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().flat_map(|slab| slab.iter())
    }

    /// Removes every value, yielding them, and frees the storage.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + use<T> {
        self.0.take().into_iter().flat_map(|mut slab| slab.drain())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vacant_entries_are_reused_last_freed_first_and_stale_keys_reach_nothing() {
        let mut slab = Slab::new();
        let keys: Vec<SlabKey> = (0..4).map(|v| slab.insert(v)).collect();
        assert_eq!(slab.remove(keys[1]), Some(1));
        assert_eq!(slab.remove(keys[2]), Some(2));
        assert_eq!(slab.remove(keys[2]), None);
        let reused = slab.insert(20); // index 2, freed last
        assert_eq!(reused.index(), 2);
        assert_eq!(
            slab.get(keys[2]),
            None,
            "the old key's stamp no longer matches"
        );
        assert_eq!(slab.get(reused), Some(&20));
        let again = slab.insert(10); // index 1
        assert_eq!(again.index(), 1);
        assert_eq!(slab.iter().copied().collect::<Vec<_>>(), [0, 10, 20, 3]);
        assert_eq!(slab.next_from(1), Some((&10, 2)));
        assert_eq!(slab.len(), 4);
    }

    #[test]
    fn a_single_entry_lives_inline() {
        let mut slab = Slab::new();
        let key = slab.insert("only");
        assert!(!slab.entries.spilled());
        slab.insert("second");
        assert!(slab.entries.spilled());
        assert_eq!(slab.remove(key), Some("only"));
        assert_eq!(slab.iter().copied().collect::<Vec<_>>(), ["second"]);
    }

    #[test]
    fn a_lazy_slab_allocates_with_its_first_value_and_frees_when_drained() {
        let mut slab = LazySlab::new();
        assert!(slab.0.is_none());
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!(slab.get_mut(a).map(|v| *v), Some("a"));
        assert_eq!((slab.remove(a), slab.len()), (Some("a"), 1));
        assert_eq!(slab.remove(b), Some("b"));
        assert!(slab.0.is_some(), "emptied, it is kept for the next value");
        assert_eq!(slab.remove(b), None);
        slab.insert("c");
        assert_eq!(slab.drain().collect::<Vec<_>>(), ["c"]);
        assert_eq!((slab.len(), slab.0.is_none()), (0, true));
    }

    #[test]
    fn an_emptied_slab_lets_go_of_its_storage() {
        let mut slab = Slab::new();
        let keys: Vec<SlabKey> = (0..100).map(|v| slab.insert(v)).collect();
        for key in keys {
            slab.remove(key);
        }
        assert!(!slab.entries.spilled());
        let key = slab.insert(7);
        assert_eq!((key.index(), slab.len()), (0, 1));
        assert_eq!(slab.drain().collect::<Vec<_>>(), [7]);
        assert_eq!(slab.next_from(0), None);
    }
}
