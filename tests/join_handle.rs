//! A `JoinHandle` may outlive everything its member borrowed: the nursery it came from, and the
//! stack data the member's future borrowed. The member's future is dropped with its nursery (or
//! leaked with it), never by a handle. These tests also run under valgrind (see DESIGN.md,
//! "Members and their handles"), which would flag a handle touching a future after the data the
//! future borrowed was freed.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use common::{block_on, secs};
use wherefore::{Cancelled, JoinHandle, LocalNursery, TaskExit};

/// Counts its drops in a counter it borrows.
struct CountsDrop<'a>(&'a Cell<u32>);

impl Drop for CountsDrop<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A handle kept outside, a member borrowing `drops` on the nursery's stack frame, blocked for
/// an hour; the nursery is polled once, then dropped (or leaked, with `leak`) while `drops` is
/// still alive. Returns the handle and the number of drops seen before `drops` went away.
fn escape_a_handle(leak: bool) -> (JoinHandle<String>, u32) {
    let escaped: Rc<RefCell<Option<JoinHandle<String>>>> = Rc::default();
    let drops_seen = block_on(async {
        let drops = Cell::new(0); // what the member borrows: gone when this block ends
        let slot = escaped.clone();
        let drops_ref = &drops;
        let mut nursery = Box::pin(async move {
            let _ = wherefore::nursery_local(async move |n: LocalNursery<'_, Cancelled>| {
                let member = n.spawn(async move {
                    let _guard = CountsDrop(drops_ref);
                    wherefore::sleep(secs(3600)).await?;
                    Ok("finished".to_owned())
                });
                *slot.borrow_mut() = Some(member.unwrap());
                Ok(())
            })
            .await;
        });
        assert!(futures::poll!(nursery.as_mut()).is_pending());
        if leak {
            std::mem::forget(nursery);
        } else {
            drop(nursery);
        }
        drops.get()
    });
    let handle = escaped.borrow_mut().take().expect("the member was spawned");
    (handle, drops_seen)
}

#[test]
fn a_handle_outlives_a_dropped_nursery_and_what_its_member_borrowed() {
    let (mut handle, drops) = escape_a_handle(false);
    assert_eq!(
        drops, 1,
        "the member's future was dropped with its nursery, once"
    );
    assert!(handle.is_finished());
    assert!(matches!(handle.try_join(), Some(TaskExit::Dropped)));
    // The handle was the last owner of the member: dropping it touched no dropped future.
}

#[test]
fn a_handle_outlives_a_leaked_nursery_without_dropping_its_member() {
    let (handle, drops) = escape_a_handle(true);
    assert_eq!(
        drops, 0,
        "a leaked nursery leaks its members; nothing dropped them"
    );
    assert!(!handle.is_finished());
    assert_eq!(handle.to_string(), format!("{} (running)", handle.task()));
    drop(handle); // the leaked member keeps its future; the handle only lets go of its share
}

#[test]
fn a_member_that_holds_its_own_handle_can_read_it_while_it_runs() {
    block_on(async {
        let own: Rc<RefCell<Option<JoinHandle<()>>>> = Rc::default();
        let seen = Rc::new(Cell::new(None));
        wherefore::nursery_local(async |n: LocalNursery<'_, Cancelled>| {
            let (own_in, seen_in) = (own.clone(), seen.clone());
            let member = n.spawn(async move {
                wherefore::checkpoint().await?; // the body has stored the handle by now
                let me = own_in.borrow_mut().take().expect("stored by the body");
                seen_in.set(Some(me.is_finished()));
                Ok(()) // and drops its own handle while it runs
            });
            *own.borrow_mut() = Some(member.unwrap());
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(seen.get(), Some(false));
    });
}
