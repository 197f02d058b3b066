//! The program language: cancellation scenarios as data, run the same way by both interpreters.
//!
//! A [`Program`] is the body of the main task: a list of [`Op`]s run in order. Scopes and
//! nurseries nest; a nursery's members run their own bodies in their own tasks. Every name (of a
//! scope, a nursery, a member) is unique in a program, and every time is in milliseconds of
//! virtual time from the start of the run (t=0), so that a program reads the same to Trio and to
//! wherefore. Serialised to JSON with serde's default (externally tagged) shape, which is what
//! `trio_interpreter.py` reads.

use serde::{Deserialize, Serialize};

/// A whole scenario: the main task's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    /// What the main task runs, in order.
    pub body: Vec<Op>,
}

/// One step of a body. Only [`SleepUntil`](Op::SleepUntil) and
/// [`SleepForever`](Op::SleepForever) are cancellation points; nothing else awaits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Sleep until this instant (ms from t=0); an instant already past is a cancellation point
    /// that returns at once.
    SleepUntil(u64),
    /// Wait until cancelled.
    SleepForever,
    /// Fail with an error naming this op (Rust: `Err`; Trio: `raise Fail(id)`).
    Fail(String),
    /// Panic with this op's id as the message (Rust: `panic!`, collected by the nursery around
    /// it; Trio: `raise Panic(id)`). Generated only where a nursery encloses it.
    Panic(String),
    /// Cancel the member of this name alone (Rust: `JoinHandle::cancel`; Trio, which has no
    /// such call: a `CancelScope` around the member's body, made when it is started). No effect
    /// before the member is started or after it ended.
    CancelTask(String),
    /// Cancel the scope or nursery of this name (no effect if the program has none).
    Cancel(String),
    /// Move a scope's deadline to this instant (ms from t=0).
    SetDeadline {
        /// The scope's name.
        scope: String,
        /// The new deadline, ms from t=0.
        at: u64,
    },
    /// Turn a scope's shield on or off.
    SetShield {
        /// The scope's name.
        scope: String,
        /// Shielded from now on, or not.
        on: bool,
    },
    /// Run a body in a cancel scope.
    Scope(ScopeBlock),
    /// Run a body in a nursery with members.
    Nursery(NurseryBlock),
}

/// A cancel scope around a body (Rust: `Scope` or `move_on_at`; Trio: `CancelScope`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeBlock {
    /// Unique in the program.
    pub name: String,
    /// Its deadline, ms from t=0 (a deadline already past when the scope is entered cancels it
    /// at its first cancellation point).
    pub deadline: Option<u64>,
    /// Shielded from the start.
    pub shield: bool,
    /// A `fail_at` scope (generated only with a deadline): when it absorbs a cancellation it
    /// fails with a timeout instead (Rust: `fail_at(..).named(..)`, `Err(TimedOut)`; Trio:
    /// `trio.fail_at`, `TooSlowError`), a failure whose id is `t` and the scope's name. Unlike
    /// other scopes it exists from its entry on (its handle comes from its future): an op that
    /// names it earlier has no effect, on both sides.
    #[serde(default)]
    pub fail: bool,
    /// What runs inside.
    pub body: Vec<Op>,
}

/// A nursery, inside a scope of the same name that [`Op::Cancel`] cancels (a nursery is
/// cancelled and carries on the way wherefore documents it: from a scope around it, which
/// absorbs; Trio's interpreter builds the same shape, so both cancel the same thing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NurseryBlock {
    /// Unique in the program; the nursery's and its enclosing scope's name.
    pub name: String,
    /// Started, in this order, before the body runs.
    pub members: Vec<Member>,
    /// The nursery's body, run by the task that opened the nursery.
    pub body: Vec<Op>,
}

/// A nursery member: a task of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Unique in the program; its task's path is its parent task's path, `/`, this name.
    pub name: String,
    /// What it runs.
    pub body: Vec<Op>,
    /// Shielded cleanup run when its body ends with a cancellation (then the cancellation is
    /// raised again).
    pub cleanup: Option<Cleanup>,
    /// What it returns when its body completes.
    pub value: i64,
}

/// Shielded cleanup after a member's cancellation (Rust: `shield_with_grace` or `shield`;
/// Trio: `CancelScope(shield=True, deadline=...)`), named `<member path>.cleanup`.
///
/// It starts when the cancellation arrives, an instant no program fixes, so its ends are given
/// as a least length and a residue: the cleanup sleeps until the first instant at least `sleep`
/// ms on whose residue modulo [`SLOT`](crate::generate::SLOT) is `residue`, and its grace ends
/// likewise (see [`Cleanup::end`]), so that they never meet another actor's instants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleanup {
    /// How long the cleanup sleeps at least, ms.
    pub sleep: u64,
    /// The residue of the instant the sleep ends at.
    pub residue: u64,
    /// The shield's own deadline, at least this many ms after the cleanup starts, and its
    /// residue; none: unbounded.
    pub grace: Option<(u64, u64)>,
}

impl Cleanup {
    /// The first instant (ms) at least `length` after `now` whose residue is `residue`.
    pub fn end(now: u64, length: u64, residue: u64) -> u64 {
        let slot = crate::generate::SLOT;
        let at = now + length;
        at + (residue + slot - at % slot) % slot
    }
}

impl Program {
    /// Every op of the program, depth first (bodies, then members' bodies), for statistics
    /// and for the generator's second pass.
    pub fn visit(&self, mut f: impl FnMut(&Op)) {
        fn walk(ops: &[Op], f: &mut dyn FnMut(&Op)) {
            for op in ops {
                f(op);
                match op {
                    Op::Scope(s) => walk(&s.body, f),
                    Op::Nursery(n) => {
                        for m in &n.members {
                            walk(&m.body, f);
                        }
                        walk(&n.body, f);
                    }
                    _ => {}
                }
            }
        }
        walk(&self.body, &mut f);
    }

    /// The same walk, with each op mutable.
    pub fn visit_mut(&mut self, mut f: impl FnMut(&mut Op)) {
        fn walk(ops: &mut [Op], f: &mut dyn FnMut(&mut Op)) {
            for op in ops {
                f(op);
                match op {
                    Op::Scope(s) => walk(&mut s.body, f),
                    Op::Nursery(n) => {
                        for m in &mut n.members {
                            walk(&mut m.body, f);
                        }
                        walk(&mut n.body, f);
                    }
                    _ => {}
                }
            }
        }
        walk(&mut self.body, &mut f);
    }

    /// The number of ops, members included: the program's size, which the shrinker reduces.
    pub fn size(&self) -> usize {
        let mut n = 0;
        self.visit(|op| {
            n += 1;
            if let Op::Nursery(nursery) = op {
                n += nursery.members.len();
            }
        });
        n
    }

    /// The names of scopes and nurseries that some op cancels, moves or shields (these need a
    /// handle; the others may run as plain timeouts).
    pub fn targets(&self) -> std::collections::HashSet<String> {
        let mut names = std::collections::HashSet::new();
        self.visit(|op| match op {
            Op::Cancel(name) | Op::CancelTask(name) | Op::SetDeadline { scope: name, .. } => {
                names.insert(name.clone());
            }
            Op::SetShield { scope, .. } => {
                names.insert(scope.clone());
            }
            _ => {}
        });
        names
    }

    /// Whether every `Panic` op runs inside a nursery (member or body), which collects it: a
    /// panic anywhere else would end the Rust run, where Trio's exception travels on. The
    /// generator keeps to it, and so does the shrinker.
    pub fn panics_are_collected(&self) -> bool {
        fn walk(ops: &[Op], in_nursery: bool) -> bool {
            ops.iter().all(|op| match op {
                Op::Panic(_) => in_nursery,
                Op::Scope(s) => walk(&s.body, in_nursery),
                Op::Nursery(n) => {
                    n.members.iter().all(|m| walk(&m.body, true)) && walk(&n.body, true)
                }
                _ => true,
            })
        }
        walk(&self.body, false)
    }

    /// Whether the program keeps the generator's timing rules (`generate`'s module docs):
    /// every member's first op is a sleep, and so is the op after each op that wakes other
    /// tasks (a cancel, a deadline moved, a shield changed). The shrinker keeps to it, so that
    /// a minimised program does not trade the divergence for a same-instant race.
    pub fn well_timed(&self) -> bool {
        fn walk(ops: &[Op]) -> bool {
            ops.iter().enumerate().all(|(i, op)| match op {
                Op::Cancel(_)
                | Op::CancelTask(_)
                | Op::SetDeadline { .. }
                | Op::SetShield { .. } => {
                    matches!(ops.get(i + 1), Some(Op::SleepUntil(_)))
                }
                Op::Scope(s) => walk(&s.body),
                Op::Nursery(n) => {
                    n.members
                        .iter()
                        .all(|m| matches!(m.body.first(), Some(Op::SleepUntil(_))) && walk(&m.body))
                        && walk(&n.body)
                }
                _ => true,
            })
        }
        walk(&self.body)
    }

    /// The program as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a program always serialises")
    }
}
