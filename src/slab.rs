//! A minimal slab: values addressed by the key returned on insertion.
//!
//! Used for a scope's children and its waiting wakers, where removal by key must be O(1) and the
//! storage must not grow with the number of values that came and went. A key carries a stamp that
//! is unique within the slab, so a key kept past its value's removal (a waiter that was woken and
//! drained) never reaches a later value stored at the same index.

/// A key into a [`Slab`]: the index in the low 32 bits, the insertion stamp in the high 32.
pub(crate) type SlabKey = u64;

#[derive(Debug)]
pub(crate) struct Slab<T> {
    entries: Vec<Option<(u32, T)>>,
    /// Indices of empty entries, reused before the vector grows.
    free: Vec<u32>,
    len: usize,
    next_stamp: u32,
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
            next_stamp: 0,
        }
    }

    pub(crate) fn insert(&mut self, value: T) -> SlabKey {
        let stamp = self.next_stamp;
        self.next_stamp = self.next_stamp.wrapping_add(1);
        self.len += 1;
        let index = match self.free.pop() {
            Some(index) => {
                self.entries[index as usize] = Some((stamp, value));
                index
            }
            None => {
                self.entries.push(Some((stamp, value)));
                u32::try_from(self.entries.len() - 1).expect("fewer than 2^32 live entries")
            }
        };
        (u64::from(stamp) << 32) | u64::from(index)
    }

    fn locate(key: SlabKey) -> (usize, u32) {
        ((key & 0xffff_ffff) as usize, (key >> 32) as u32)
    }

    pub(crate) fn remove(&mut self, key: SlabKey) -> Option<T> {
        let (index, stamp) = Self::locate(key);
        let entry = self.entries.get_mut(index)?;
        if entry.as_ref()?.0 != stamp {
            return None;
        }
        let (_, value) = entry.take()?;
        self.len -= 1;
        if self.len == 0 {
            self.entries = Vec::new();
            self.free = Vec::new();
        } else {
            self.free.push(index as u32);
        }
        Some(value)
    }

    pub(crate) fn get(&self, key: SlabKey) -> Option<&T> {
        let (index, stamp) = Self::locate(key);
        match self.entries.get(index)? {
            Some((s, value)) if *s == stamp => Some(value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: SlabKey) -> Option<&mut T> {
        let (index, stamp) = Self::locate(key);
        match self.entries.get_mut(index)? {
            Some((s, value)) if *s == stamp => Some(value),
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
            .find_map(|(offset, entry)| entry.as_ref().map(|(_, v)| (v, from + offset + 1)))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().flatten().map(|(_, v)| v)
    }

    /// Removes every value, yielding them, and frees the storage.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + use<T> {
        let entries = std::mem::take(&mut self.entries);
        self.free = Vec::new();
        self.len = 0;
        entries.into_iter().flatten().map(|(_, v)| v)
    }
}
