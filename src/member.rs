//! A nursery member: its future, polled in place, and (for a member with a [`JoinHandle`]) the
//! exit its handle reads, in one allocation shared by the nursery's member set (which polls it)
//! and the handle (which reads how it ended).
//!
//! One allocation per member instead of two (a boxed future plus a shared slot for the exit):
//! allocation was most of what spawning cost (see BENCHMARKS.md). A member started without a
//! handle ([`Nursery::start_soon`](crate::Nursery::start_soon)) keeps no exit: its cell is its
//! task's number, where it was started, its name if it has one (no room at all if not), and its
//! future.
//!
//! It takes `unsafe` (the crate's others are the raw wakers of `slot_waker.rs`, the scope
//! addresses of `scope_tree/registered.rs` and the flags mirror of `context.rs`), each block with
//! its argument: the future reached through the shared cell by its one [`Member`] and polled in
//! place ([`InPlace`]); a handle whose type names neither the member's future nor the lifetime
//! `'env` of what that future borrows (so that a `JoinHandle<T>` can be kept anywhere a `T` can);
//! and the `Send` of a sendable nursery's members, whose type no longer names their future.
//!
//! # Invariants
//!
//! 1. A cell is only ever reached through the `Pin<DynArc<..>>` made in [`build`] or
//!    [`build_unjoined`]: it never moves, and neither does the [`InPlace`] in it (a pinned field).
//! 2. The future is never moved out of its [`InPlace`]: it is polled in place and dropped in
//!    place, by writing `None` over it, when it ends or when its [`Member`] is dropped, whichever
//!    is first.
//! 3. Only the [`Member`] touches the future (a handle reads [`Exit`] only), through `&mut` of
//!    itself (its poll and its drop; it is not `Clone`), and never from inside the future's own
//!    poll: at most one reference to the future exists at any time, on one thread.
//! 4. The [`Member`] holds one strong reference until it is dropped, and dropping it drops the
//!    future first (2). So when a handle lets go of the last reference, the future is gone: the
//!    cell's drop then touches only the exit (whose `T` the handle's type names) and the task's
//!    identity, neither of which borrows `'env`.
//! 5. A `Member<'_, _, Sendable>` is made only from a future and an output that are `Send`
//!    (`Sendable: Holds<F> + Holds<T>`, which only `Send` types satisfy, or `F: Send, T: Send`):
//!    see the `Send` impl below.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::body_poll::poll_reached;
use crate::cancelled::{CancelError, Cancelled};
use crate::context;
use crate::identity::{TaskId, TaskInfo};
use crate::member_scope::MemberScope;
use crate::member_set::Reached;
use crate::reach::Reach;
use crate::scope::reached;
use crate::scope_tree::ScopeNode;
use crate::sharing::{Holds, Sendable, Sharing};
use crate::sync::{DynArc, Frozen, UnsafeCell};
use crate::task::{
    End, Ended, Exit, ExitRef, HasExit, JoinHandle, TaskExit, ended_in, ended_reached, panicked,
    poll_member, report_exit,
};
use crate::trace::in_task_span;

/// A running member, as the nursery's member set owns it, in a nursery of sharing `S`. Dropping
/// it before the member ended drops the member's future and reports it [`TaskExit::Dropped`] (to
/// its handle, if it has one).
pub(crate) struct Member<'env, E, S> {
    cell: Pin<DynArc<dyn Run<E> + 'env>>,
    sharing: PhantomData<S>,
}

// SAFETY: the cell's type is erased to `dyn Run<E>`, which says nothing of `Send`, but a sendable
// member's cell holds a `Send` future and a `Send` output (invariant 5), its task's identity
// (`Send + Sync`), and an exit behind a mutex: moving the `Member` to another thread moves the
// right to poll and drop that future there, which `F: Send` allows, and its handle reaches only
// the exit (invariant 3), which `T: Send` lets any thread lock.
unsafe impl<E> Send for Member<'_, E, Sendable> {}

/// The member set's view of a member: poll it, end it blocked in a foreign future, or give it up.
trait Run<E> {
    fn poll_run(self: Pin<&Self>, cx: &mut Context<'_>) -> Poll<Ended<E>>;
    /// Drops the future, blocked in a foreign future when its nursery was cancelled, and ends
    /// the member as if its cancellation point had failed with `cancelled` (S19).
    fn reach(self: Pin<&Self>, cancelled: Cancelled) -> Ended<E>;
    fn abandon(self: Pin<&Self>);
}

/// A member's future inside its shared cell: polled in place through a shared reference, and
/// dropped in place (invariants 2 and 3). `None` once it ended or was dropped. Beside it, `X`:
/// what only the member's own polls touch (for a member with a handle, how it runs in its own
/// scope), reached the same way.
struct InPlace<F, X = ()>(UnsafeCell<(Option<F>, X)>);

impl<F, X> InPlace<F, X> {
    fn new(future: F, beside: X) -> Self {
        InPlace(UnsafeCell::new((Some(future), beside)))
    }

    /// Runs `f` with the future (pinned) and what lies beside it.
    fn with<R>(self: Pin<&Self>, f: impl FnOnce(Pin<&mut Option<F>>, &mut X) -> R) -> R {
        self.get_ref().0.with_mut(|slot| {
            // SAFETY: only the one `Member` calls this, through `&mut` of itself, and never from
            // inside the future's poll (invariant 3): no other reference to the slot exists.
            let (future, beside) = unsafe { &mut *slot };
            // SAFETY: `self` is pinned (invariant 1), so the `Option<F>` inside the cell never
            // moves, and the `F` in it is never moved out, only dropped in place (invariant 2:
            // `f` gets it pinned, which lets it poll it or write `None` over it, nothing else).
            f(unsafe { Pin::new_unchecked(future) }, beside)
        })
    }
}

impl<F> InPlace<F> {
    /// Polls the future as task `task`'s; once it ends, drops it in place and returns how it
    /// ended. Pending for good once it has ended (the member set does not poll it again).
    fn poll<T, E>(
        self: Pin<&Self>,
        task: TaskId,
        cx: &mut Context<'_>,
    ) -> Poll<(TaskExit<T>, End<E>)>
    where
        F: Future<Output = Result<T, E>>,
        E: CancelError + fmt::Display,
    {
        self.with(|mut future, ()| {
            let Some(running) = future.as_mut().as_pin_mut() else {
                return Poll::Pending;
            };
            let ended = std::task::ready!(poll_member(task, running, cx));
            future.set(None); // dropped in place
            Poll::Ready(ended)
        })
    }
}

impl<F, X> InPlace<F, X> {
    /// Drops the future in place, if it is still there; returns whether it was. Dropped even if
    /// its drop panics: the assignment writes `None` on unwinding too.
    fn drop_future(self: Pin<&Self>) -> bool
    where
        X: Default,
    {
        self.with(|mut future, beside| {
            let running = future.as_mut().as_pin_mut().is_some(); // through `&mut`, as in `poll_in`
            drop_in_cell(future, beside);
            running
        })
    }
}

/// Drops a member's future in place, and what its polls kept beside it (a record's watch,
/// registered with the scope): the cell may live on in a handle.
fn drop_in_cell<F, X: Default>(mut future: Pin<&mut Option<F>>, beside: &mut X) {
    future.set(None);
    *beside = X::default();
}

/// How a member with a handle runs in its own scope (`member_scope.rs`), as only its own polls
/// see it: once its scope is recorded, the record it runs in, and its watch over the member's
/// future there (S19: the record is the innermost scope around it). Boxed: most members never
/// have one.
#[derive(Default)]
struct InOwnScope {
    recorded: Option<Box<(ScopeNode, Reach)>>,
}

impl<F> InPlace<F, InOwnScope> {
    /// Polls the future as task `task`'s, in its own `scope`: recorded, or lent unrecorded; once
    /// it ends, drops it in place and returns how it ended, classified against that scope.
    fn poll_in<T, E>(
        self: Pin<&Self>,
        scope: &MemberScope,
        cx: &mut Context<'_>,
    ) -> Poll<(TaskExit<T>, End<E>)>
    where
        F: Future<Output = Result<T, E>>,
        E: CancelError + fmt::Display,
    {
        self.with(|mut future, own| {
            // Through `&mut`, not `&`: a shared reference to the whole of a self-referential
            // future would invalidate the references it holds into itself (Stacked Borrows).
            if future.as_mut().as_pin_mut().is_none() {
                return Poll::Pending;
            }
            if own.recorded.is_none() && scope.is_recorded() {
                let record = scope.record().expect("recorded: invariant 1");
                own.recorded = Some(Box::new((record, Reach::default())));
            }
            let _task = context::enter_task(scope.task.id);
            let ended = match &mut own.recorded {
                Some(recorded) => {
                    let (record, reach) = &mut **recorded;
                    let polled = catch_unwind(AssertUnwindSafe(|| {
                        let _lent = context::lend(record);
                        poll_reached(future.as_mut(), cx, Some(&mut *reach))
                    }));
                    match polled {
                        Ok(Poll::Pending) => return Poll::Pending,
                        Ok(Poll::Ready(polled)) => {
                            ended_in([&*record, scope.home()], reached(polled, reach))
                        }
                        Err(payload) => panicked(payload),
                    }
                }
                None => {
                    let polled = catch_unwind(AssertUnwindSafe(|| {
                        let _lent = context::lend_member(scope, cx.waker());
                        let running = future.as_mut().as_pin_mut().expect("checked above");
                        running.poll(cx)
                    }));
                    match polled {
                        Ok(Poll::Pending) => {
                            // Invariant 3 of `member_scope.rs`: recorded during this poll, or
                            // while it kept its waker, it is polled again, in the record. (The
                            // member set watches each poll of a member: whether it woke itself
                            // is this poll's alone.)
                            let recorded = scope.is_recorded()
                                || (!context::woke_itself() && scope.keep_waker(cx.waker()));
                            if recorded {
                                cx.waker().wake_by_ref();
                            }
                            return Poll::Pending;
                        }
                        Ok(Poll::Ready(result)) => {
                            let record = scope.is_recorded().then(|| scope.record()).flatten();
                            ended_in(record.iter().chain([scope.home()]), result)
                        }
                        Err(payload) => panicked(payload),
                    }
                }
            };
            drop_in_cell(future, own);
            Poll::Ready(ended)
        })
    }
}

pin_project_lite::pin_project! {
    /// A member with a handle: its exit and own scope, and its future.
    struct MemberCell<F, T> {
        exit: Exit<T>,
        #[pin]
        future: InPlace<F, InOwnScope>,
    }
}

pin_project_lite::pin_project! {
    /// A member without a handle: who it is, and its future.
    struct UnjoinedCell<F, N> {
        id: TaskId,
        started_at: &'static Location<'static>,
        name: N,
        #[pin]
        future: InPlace<F>,
    }
}

/// The name of a member without a handle: `()` for none (taking no room), or the name.
pub(crate) trait MemberName: Send + Sync {
    fn name(&self) -> Option<Frozen<str>>;
}

impl MemberName for () {
    fn name(&self) -> Option<Frozen<str>> {
        None
    }
}

impl MemberName for Frozen<str> {
    fn name(&self) -> Option<Frozen<str>> {
        Some(self.clone())
    }
}

/// Wraps a spawned future as a member of a nursery of sharing `S`, running in its own `scope`;
/// returns it and its handle.
pub(crate) fn member<'env, S, F, T, E>(
    scope: MemberScope,
    future: F,
) -> (Member<'env, E, S>, JoinHandle<T>)
where
    S: Holds<F> + Holds<T>,
    F: Future<Output = Result<T, E>> + 'env,
    T: 'env,
    E: CancelError + fmt::Display + 'env,
{
    build(scope, future)
}

/// [`member`] for a future the crate makes itself (a worker's proxy, a group's runner): `Send`,
/// so every sharing holds it.
pub(crate) fn sendable_member<'env, S, F, T, E>(
    scope: MemberScope,
    future: F,
) -> (Member<'env, E, S>, JoinHandle<T>)
where
    S: Sharing,
    F: Future<Output = Result<T, E>> + Send + 'env,
    T: Send + 'env,
    E: CancelError + fmt::Display + 'env,
{
    build(scope, future)
}

/// Builds a member and its handle. Called only by [`member`] and [`sendable_member`], whose
/// bounds keep invariant 5.
fn build<'env, S, F, T, E>(scope: MemberScope, future: F) -> (Member<'env, E, S>, JoinHandle<T>)
where
    F: Future<Output = Result<T, E>> + 'env,
    T: 'env,
    E: CancelError + fmt::Display + 'env,
{
    let future = in_task_span(&scope.task, future);
    let cell = DynArc::pin(MemberCell {
        exit: Exit::new(scope),
        future: InPlace::new(future, InOwnScope::default()),
    });
    let for_handle: Pin<DynArc<dyn HasExit<T> + 'env>> = cell.clone();
    // SAFETY: this only forgets the bound `'env` on the cell's type, which the handle may outlive.
    // Through the handle the cell is reached in two ways only: `HasExit::exit`, which returns the
    // exit and never touches the future, and the drop of the last reference, which finds the
    // future already dropped (invariant 4). What the handle does reach is typed by its `T`, which
    // its own type still names. Both sides are the same `Pin<DynArc<dyn ..>>`, apart from a
    // lifetime.
    let for_handle = unsafe {
        std::mem::transmute::<Pin<DynArc<dyn HasExit<T> + 'env>>, Pin<DynArc<dyn HasExit<T>>>>(
            for_handle,
        )
    };
    let member = Member {
        cell,
        sharing: PhantomData,
    };
    (member, JoinHandle::new(ExitRef::new(for_handle)))
}

/// [`unjoined`] for a future the crate makes itself (a group's runner): `Send`, so every sharing
/// holds it.
pub(crate) fn sendable_unjoined<'env, S, F, N, E>(
    task: &TaskInfo,
    name: N,
    future: F,
) -> Member<'env, E, S>
where
    S: Sharing,
    F: Future<Output = Result<(), E>> + Send + 'env,
    N: MemberName + 'env,
    E: CancelError + fmt::Display + 'env,
{
    build_unjoined(task, name, future)
}

/// Wraps a future started without a handle as a member of a nursery of sharing `S`: the task
/// `id` named `name`, started at `started_at`.
pub(crate) fn unjoined<'env, S, F, N, E>(task: &TaskInfo, name: N, future: F) -> Member<'env, E, S>
where
    S: Holds<F>,
    F: Future<Output = Result<(), E>> + 'env,
    N: MemberName + 'env,
    E: CancelError + fmt::Display + 'env,
{
    build_unjoined(task, name, future)
}

/// Builds a member without a handle. Called only by [`unjoined`] and [`sendable_unjoined`],
/// whose bounds keep invariant 5.
fn build_unjoined<'env, S, F, N, E>(task: &TaskInfo, name: N, future: F) -> Member<'env, E, S>
where
    F: Future<Output = Result<(), E>> + 'env,
    N: MemberName + 'env,
    E: CancelError + fmt::Display + 'env,
{
    // Invariant 5: `S` holds `F`, and the output `()` and a name are `Send`.
    let cell = DynArc::pin(UnjoinedCell {
        id: task.id,
        started_at: task.spawned_at,
        name,
        future: InPlace::new(in_task_span(task, future), ()),
    });
    Member {
        cell,
        sharing: PhantomData,
    }
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
        let this = self.project_ref();
        let (exit, end) = std::task::ready!(this.future.poll_in(&this.exit.scope, cx));
        this.exit.finish(exit);
        Poll::Ready(Ended {
            task: this.exit.task().clone(),
            end,
        })
    }

    fn reach(self: Pin<&Self>, cancelled: Cancelled) -> Ended<E> {
        let this = self.project_ref();
        let (exit, end) = ended_reached(
            || {
                this.future.drop_future();
            },
            cancelled,
        );
        this.exit.finish(exit);
        Ended {
            task: this.exit.task().clone(),
            end,
        }
    }

    fn abandon(self: Pin<&Self>) {
        let this = self.project_ref();
        // Finished even if the future's drop panics: its own scope must leave the tree before
        // the cell can go (`member_scope.rs`, invariant 2).
        let _finish = FinishDropped(this.exit);
        this.future.drop_future();
    }
}

/// Leaves [`TaskExit::Dropped`] for a member's handle when dropped, unless it ended already.
struct FinishDropped<'a, T>(&'a Exit<T>);

impl<T> Drop for FinishDropped<'_, T> {
    fn drop(&mut self) {
        if !self.0.is_finished() {
            self.0.finish(TaskExit::Dropped);
        }
    }
}

impl<F, N: MemberName> UnjoinedCell<F, N> {
    fn task(&self) -> TaskInfo {
        TaskInfo {
            id: self.id,
            name: self.name.name(),
            spawned_at: self.started_at,
        }
    }
}

impl<F, N, E> Run<E> for UnjoinedCell<F, N>
where
    F: Future<Output = Result<(), E>>,
    N: MemberName,
    E: CancelError + fmt::Display,
{
    fn poll_run(self: Pin<&Self>, cx: &mut Context<'_>) -> Poll<Ended<E>> {
        let (exit, end) = std::task::ready!(self.project_ref().future.poll(self.id, cx));
        let task = self.task(); // made once, when it ended: a named one's name is counted
        report_exit(&task, &exit);
        Poll::Ready(Ended { task, end })
    }

    fn reach(self: Pin<&Self>, cancelled: Cancelled) -> Ended<E> {
        let future = self.project_ref().future;
        let (exit, end) = ended_reached::<(), E>(
            || {
                future.drop_future();
            },
            cancelled,
        );
        let task = self.task();
        report_exit(&task, &exit);
        Ended { task, end }
    }

    fn abandon(self: Pin<&Self>) {
        if self.project_ref().future.drop_future() {
            report_exit(&self.task(), &TaskExit::<()>::Dropped);
        }
    }
}

impl<E, S> Future for Member<'_, E, S> {
    type Output = Ended<E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended<E>> {
        self.cell.as_ref().poll_run(cx)
    }
}

impl<E, S> Reached for Member<'_, E, S> {
    fn reached(self, cancelled: Cancelled) -> Ended<E> {
        self.cell.as_ref().reach(cancelled) // and the drop finds the member ended
    }
}

impl<E, S> Drop for Member<'_, E, S> {
    fn drop(&mut self) {
        self.cell.as_ref().abandon();
    }
}
