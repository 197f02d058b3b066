//! Traces: what each interpreter reports, and how a trace is normalised into lines.
//!
//! Both interpreters emit the same events (Rust builds [`Event`]s, the Python script the same
//! JSON). Normalising sorts the events by instant and, within one instant, by task, keeping each
//! task's own order (a task's events are sequential; the order of two tasks at one instant is
//! the scheduler's, which the comparison must not see), and prints one line per event.
//! Fields named `trio_*` and [`What::Evidence`] events are evidence the Python side adds for the
//! comparator's mapped choices; they are never printed.

use serde::{Deserialize, Serialize};

/// One event: when (ms of virtual time), in which task (its path: `main`, `main/m3`, ...),
/// what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Virtual time, ms from t=0.
    pub t: u64,
    /// The task's path: `main`, then each member's name below the task that started it.
    pub task: String,
    /// What happened.
    pub what: What,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum What {
    /// A member's first poll (Trio: its first step).
    Started,
    /// A cancellation point failed.
    Observed {
        /// The root cause.
        cause: Root,
        /// Trio's evidence for S14: the scope whose cancellation the task is in now holds a
        /// reason Trio copied from an ancestor whose cancellation no longer applies, and this is
        /// that scope's own first request, which wherefore reports. Never printed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trio_own: Option<Root>,
    },
    /// A member's shielded cleanup finished its sleep.
    CleanupDone,
    /// A task's body ended (members; `main` at the end of the program).
    Ended {
        /// How.
        out: Outcome,
    },
    /// A scope was left.
    ScopeExit {
        /// Its name.
        scope: String,
        /// Whether it absorbed a cancellation (Trio's `cancelled_caught`).
        caught: bool,
        /// What left it.
        out: Outcome,
    },
    /// A nursery finished (all its members ended).
    NurseryExit {
        /// Its name.
        nursery: String,
        /// What left it.
        out: Outcome,
        /// Trio's evidence for S18: the scope around the nursery was effectively cancelled
        /// when it finished. Never printed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        trio_parent_cancelled: bool,
    },
    /// A member's `JoinHandle::exit` disagreed with how its future ended (Rust only: a
    /// misclassified end, which Trio's trace never has).
    ExitMismatch {
        /// The member's path.
        member: String,
        /// What the handle said.
        exit: String,
    },
    /// Evidence from the Python side that a documented choice with effects beyond one line
    /// applies from this instant on (`S1`, `S13`: see `compare::Choice`). Never
    /// printed.
    Evidence {
        /// The choice, as DESIGN.md numbers it.
        choice: String,
    },
    /// Every task blocked, nothing pending (Rust: `Stuck`; Trio: its watchdog fired), reported
    /// at [`STUCK_AT`](crate::interpret::STUCK_AT).
    Stuck,
    /// The interpreter itself failed (Python exception, unexpected shape): always a divergence.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// The root cause of an observed cancellation and the scope that holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// `explicit`, `deadline`, `error` (a member or body failed), `panic`.
    pub kind: String,
    /// The scope whose own request it is.
    pub scope: String,
    /// For `error` and `panic`: the ids of the failing ops the failure carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<String>,
}

/// How a body, scope or nursery ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum Outcome {
    /// Normally.
    Ok,
    /// Normally, with a member's value.
    Value {
        /// The value.
        v: i64,
    },
    /// With a cancellation only.
    Cancelled,
    /// With failures: the ids of the failing ops (flattened through nested nurseries, sorted),
    /// and whether a cancellation travelled with them (Trio's group holds `Cancelled`s beside
    /// the failures; wherefore's never does, S3).
    Failed {
        /// Failing ops' ids, sorted.
        ops: Vec<String>,
        /// A cancellation travels with the failures.
        cancelled: bool,
    },
}

impl std::fmt::Display for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {}", self.kind, self.scope)?;
        if !self.ops.is_empty() {
            write!(f, " by {}", self.ops.join(","))?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Value { v } => write!(f, "value {v}"),
            Outcome::Cancelled => f.write_str("cancelled"),
            Outcome::Failed { ops, cancelled } => {
                write!(f, "failed [{}]", ops.join(","))?;
                if *cancelled {
                    f.write_str(" + cancelled")?;
                }
                Ok(())
            }
        }
    }
}

impl std::fmt::Display for What {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            What::Started => f.write_str("started"),
            What::Observed { cause, .. } => write!(f, "observed {cause}"),
            What::CleanupDone => f.write_str("cleanup done"),
            What::Ended { out } => write!(f, "ended {out}"),
            What::ScopeExit { scope, caught, out } => {
                write!(f, "scope {scope} exit caught={caught} {out}")
            }
            What::NurseryExit { nursery, out, .. } => write!(f, "nursery {nursery} exit {out}"),
            What::ExitMismatch { member, exit } => {
                write!(f, "exit of {member} mismatched: handle says {exit}")
            }
            What::Evidence { choice } => write!(f, "evidence for {choice}"),
            What::Stuck => f.write_str("stuck"),
            What::Error { message } => write!(f, "interpreter error: {message}"),
        }
    }
}

/// The normalised trace: events sorted by instant, then task (stable), one line each:
/// `t=<ms> <task> <event>`; evidence is left out.
pub fn normalise(events: &[Event]) -> Vec<String> {
    let mut sorted: Vec<&Event> = events
        .iter()
        .filter(|e| !matches!(e.what, What::Evidence { .. }))
        .collect();
    sorted.sort_by(|a, b| a.t.cmp(&b.t).then_with(|| a.task.cmp(&b.task)));
    sorted
        .into_iter()
        .map(|e| format!("t={} {} {}", e.t, e.task, e.what))
        .collect()
}
