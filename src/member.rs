//! A nursery member: its future and the exit its [`JoinHandle`] reads, in one allocation shared
//! by the nursery's member set (which polls it) and the handle (which reads how it ended).
//!
//! One allocation per member instead of two (a boxed future plus a shared slot for the exit):
//! allocation was most of what spawning cost (see BENCHMARKS.md). It takes two `unsafe` blocks
//! (the crate's others are the raw wakers of `slot_waker.rs` and the scope addresses of
//! `scope_tree/registered.rs`), each with its argument: a pinned
//! projection through a `RefCell`
//! (the future is polled in place while the cell is shared), and a handle whose type names
//! neither the member's future nor the lifetime `'env` of what that future borrows (so that a
//! `JoinHandle<T>` can be kept anywhere a `T` can, as before).
//!
//! # Invariants
//!
//! 1. The cell is only ever reached through the `Pin<Rc<..>>` made in [`member`]: it never moves.
//! 2. The future is never moved out of `future`: it is polled in place and dropped in place, by
//!    writing `None` over it, when it ends or when its [`Member`] is dropped, whichever is first.
//! 3. Only the [`Member`] touches `future` (the handle reads [`Exit`] only), and never from inside
//!    the future's own poll, so the `RefCell` borrow cannot fail.
//! 4. The [`Member`] holds one strong reference until it is dropped, and dropping it drops the
//!    future first (2). So when a handle lets go of the last reference, the future is gone: the
//!    cell's drop then touches only the exit (whose `T` the handle's type names) and the task's
//!    identity, neither of which borrows `'env`.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::cancelled::CancelError;
use crate::identity::TaskInfo;
use crate::task::{Ended, Exit, HasExit, JoinHandle, TaskExit, poll_member};

/// A running member, as the nursery's member set owns it. Dropping it before the member ended
/// drops the member's future and tells its handle [`TaskExit::Dropped`].
pub(crate) struct Member<'env, E> {
    cell: Pin<Rc<dyn Run<E> + 'env>>,
}

/// The member set's view of a member: poll it, or give it up.
trait Run<E> {
    fn poll_run(self: Pin<&Self>, cx: &mut Context<'_>) -> Poll<Ended<E>>;
    fn abandon(self: Pin<&Self>);
}

struct MemberCell<F, T> {
    exit: Exit<T>,
    /// The future while it runs; `None` once it ended or was dropped (invariant 2).
    future: RefCell<Option<F>>,
}

/// Wraps a spawned future as a nursery member; returns it and its handle.
pub(crate) fn member<'env, F, T, E>(task: TaskInfo, future: F) -> (Member<'env, E>, JoinHandle<T>)
where
    F: Future<Output = Result<T, E>> + 'env,
    T: 'env,
    E: CancelError + fmt::Display + 'env,
{
    let cell = Rc::pin(MemberCell {
        exit: Exit::new(task),
        future: RefCell::new(Some(future)),
    });
    let for_handle: Pin<Rc<dyn HasExit<T> + 'env>> = cell.clone();
    // SAFETY: this only forgets the bound `'env` on the cell's type, which the handle may outlive.
    // Through the handle the cell is reached in two ways only: `HasExit::exit`, which returns the
    // exit and never touches the future, and the drop of the last reference, which finds the
    // future already dropped (invariant 4). What the handle does reach is typed by its `T`, which
    // its own type still names. Both sides are the same `Pin<Rc<dyn ..>>`, apart from a lifetime.
    let for_handle = unsafe {
        std::mem::transmute::<Pin<Rc<dyn HasExit<T> + 'env>>, Pin<Rc<dyn HasExit<T>>>>(for_handle)
    };
    (Member { cell }, JoinHandle::new(for_handle))
}

impl<T, F> HasExit<T> for MemberCell<F, T> {
    fn exit(&self) -> &Exit<T> {
        &self.exit
    }
}

impl<F, T, E> Run<E> for MemberCell<F, T>
where
    F: Future<Output = Result<T, E>>,
    E: CancelError + fmt::Display,
{
    fn poll_run(self: Pin<&Self>, cx: &mut Context<'_>) -> Poll<Ended<E>> {
        let this = self.get_ref();
        let mut slot = this.future.borrow_mut();
        let Some(future) = slot.as_mut() else {
            return Poll::Pending; // it ended already; the set does not poll it again
        };
        // SAFETY: the cell is pinned (invariant 1), so the `Option<F>` inside it never moves, and
        // the `F` in it is never moved out, only dropped in place (invariant 2). Those are the
        // guarantees `Pin<&mut F>` asks for.
        let future = unsafe { Pin::new_unchecked(future) };
        let (exit, end) = std::task::ready!(poll_member(&this.exit.task, future, cx));
        *slot = None; // dropped in place
        drop(slot);
        this.exit.finish(exit);
        Poll::Ready(Ended {
            task: this.exit.task.clone(),
            end,
        })
    }

    fn abandon(self: Pin<&Self>) {
        let this = self.get_ref();
        // Never borrowed here (invariant 3); dropped in place even if its drop panics: the
        // assignment writes `None` on unwinding too.
        *this.future.borrow_mut() = None;
        if !this.exit.is_finished() {
            this.exit.finish(TaskExit::Dropped);
        }
    }
}

impl<E> Future for Member<'_, E> {
    type Output = Ended<E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended<E>> {
        self.cell.as_ref().poll_run(cx)
    }
}

impl<E> Drop for Member<'_, E> {
    fn drop(&mut self) {
        self.cell.as_ref().abandon();
    }
}
