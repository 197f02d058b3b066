//! The comparator: Trio's trace mapped through wherefore's documented choices, then compared
//! line by line with wherefore's.
//!
//! A mapped choice rewrites what Trio reports into what DESIGN.md says wherefore reports instead,
//! and only where Trio's own evidence shows the situation the choice is about; so a divergence
//! that survives the mapping is unexplained. Each choice is known by its number in DESIGN.md.
//! A choice whose effects reach beyond one line (S1, S6, S13, S18) cannot be mapped line by line: from
//! the instant Trio's evidence shows it applies, a divergence is counted as explained by it and
//! the rest of the trace is not compared.

use std::collections::BTreeSet;
use std::fmt;

use crate::trace::{Event, Outcome, What, normalise};

/// A documented choice of wherefore's (DESIGN.md, "Choices where the peers disagree") where
/// Trio's trace is mapped to ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Choice {
    /// Level-triggered: a task fails at a cancellation point by the state of its scope when it
    /// runs. Trio delivers a cancellation to a blocked task when it begins (its wait is aborted
    /// there), so a shield raised before that task runs again does not take it back, where
    /// wherefore's task, woken, finds its scope shielded and waits on. Beyond one line: the
    /// comparison stops at the first divergence after Trio's evidence.
    S1,
    /// Failures win and are never swallowed: a nursery's error lists failures only, never a
    /// cancellation beside them, and a scope that a failure passes through has absorbed
    /// nothing. Trio's group carries the members' `Cancelled`s beside the failures, and a
    /// cancelled scope splits them off (`cancelled_caught`) as the failures go on.
    S3,
    /// A deadline moved into the past fires at once and never un-cancels (S13, with S12's
    /// past deadline as valid input: `deadline.rs::a_deadline_moved_into_the_past_cancels_at_the_next_checkpoint`).
    /// Trio checks deadlines in its run loop, "every once in a while" (its docs of
    /// `CancelScope.deadline`): until then a passed deadline has not fired, so a later move
    /// takes it back and a sleep to a past instant returns. What follows differs in more than
    /// one line, so the comparison stops at the first divergence after Trio's evidence.
    S13,
    /// A `fail_at` scope fails with a timeout only when its own deadline fired; cancelled
    /// otherwise (explicitly, through its handle) it hands the `Cancelled` on, which ends its
    /// task as an escaped cancellation (S16). Trio's `fail_at` raises `TooSlowError` for any
    /// cancellation it absorbed. Beyond one line: the comparison stops at the first divergence
    /// after Trio's evidence.
    S6,
    /// Each scope keeps its own first cause apart from the inherited one. Trio copies the
    /// parent's reason into the scope once and drops the scope's own later request, so when the
    /// parent's cancellation stops applying (a shield), Trio still reports the parent's reason
    /// and wherefore the scope's own.
    S14,
    /// A nursery is never where an ancestor's cancellation ends: finishing while an enclosing
    /// scope is cancelled, it returns that cancellation whatever its body returned. Trio's
    /// nursery raises only what its children raised, so with every member done (or none
    /// cancelled) it ends normally and the code after it runs on to its next checkpoint.
    /// What follows differs in more than one line (the cancellation travels up at once in
    /// wherefore), so the comparison stops at the first divergence after this point.
    S18,
    /// Nurseries never absorb (DESIGN.md, "The API"): a nursery whose body ended with its
    /// `Cancelled` returns `NurseryError::Cancelled`, having no value to return, even when the
    /// cancellation was lifted above it (a shield raised) before it ended; the first scope still
    /// cancelled above takes it. Trio's nursery cancels its own scope when its body or a child
    /// ends with any exception, `Cancelled` included (`Nursery._add_exc`), and that scope catches
    /// the `Cancelled` once no ancestor's cancellation is visible to it (`CancelScope._close`).
    /// Beyond one line: the comparison stops at the first divergence after Trio's evidence (a
    /// nursery's body ending with a cancellation its nursery no longer has). Seed 407986.
    NeverAbsorbs,
}

impl fmt::Display for Choice {
    /// Its number, `S3`: the choices are named as DESIGN.md numbers them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Choice {
    /// The choice an evidence event names.
    pub fn from_evidence(name: &str) -> Option<Choice> {
        match name {
            "S1" => Some(Choice::S1),
            "S6" => Some(Choice::S6),
            "S13" => Some(Choice::S13),
            "never-absorbs" => Some(Choice::NeverAbsorbs),
            _ => None,
        }
    }
}

/// Trio's trace with every mapped choice applied, and the choices that changed something.
pub fn map_trio(trio: &[Event]) -> (Vec<Event>, BTreeSet<Choice>) {
    let mut applied = BTreeSet::new();
    let mapped = trio
        .iter()
        .map(|event| {
            let mut event = event.clone();
            match &mut event.what {
                What::Observed { cause, trio_own } => {
                    if let Some(own) = trio_own.take() {
                        if *cause != own {
                            applied.insert(Choice::S14);
                        }
                        *cause = own;
                    }
                }
                What::Ended { out } => s3_outcome(out, &mut applied),
                What::ScopeExit { scope, caught, out } => {
                    // A `fail_at` scope that absorbed its own timeout fails with it: not S3.
                    let own_timeout = matches!(out, Outcome::Failed { ops, .. }
                        if *ops == [format!("t{scope}")]);
                    if *caught && !own_timeout && matches!(out, Outcome::Failed { .. }) {
                        *caught = false;
                        applied.insert(Choice::S3);
                    }
                    s3_outcome(out, &mut applied);
                }
                What::NurseryExit {
                    out,
                    trio_parent_cancelled,
                    ..
                } => {
                    s3_outcome(out, &mut applied);
                    if std::mem::take(trio_parent_cancelled) && *out == Outcome::Ok {
                        *out = Outcome::Cancelled;
                        applied.insert(Choice::S18);
                    }
                }
                _ => {}
            }
            event
        })
        .collect();
    (mapped, applied)
}

fn s3_outcome(out: &mut Outcome, applied: &mut BTreeSet<Choice>) {
    if let Outcome::Failed { cancelled, .. } = out
        && std::mem::take(cancelled)
    {
        applied.insert(Choice::S3);
    }
}

/// The verdict on one program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The traces agree once Trio's is mapped through these choices (none: identical).
    Agree(BTreeSet<Choice>),
    /// They agree up to a point after which a choice with effects beyond one line (S1, S6,
    /// S13, S18)
    /// explains what differs.
    Explained {
        /// The choice.
        choice: Choice,
        /// Every choice mapped.
        mapped: BTreeSet<Choice>,
    },
    /// An unexplained divergence.
    Diverge(Divergence),
}

/// Where two traces part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// Wherefore's normalised trace.
    pub ours: Vec<String>,
    /// Trio's, mapped and normalised.
    pub trio: Vec<String>,
    /// The index of the first line that differs.
    pub first: usize,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.ours.len().max(self.trio.len());
        writeln!(f, "  {:<60} | trio (mapped)", "wherefore")?;
        for i in 0..n {
            let a = self.ours.get(i).map(String::as_str).unwrap_or("");
            let b = self.trio.get(i).map(String::as_str).unwrap_or("");
            let mark = if i >= self.first && a != b { '!' } else { ' ' };
            writeln!(f, "{mark} {a:<60} | {b}")?;
        }
        Ok(())
    }
}

/// The instants from which a choice with effects beyond one line applies: an S18-mapped
/// nursery's end, and Trio's evidence (S1, S6, S13, the known ones).
fn cascade_points(mapped_trio: &[Event], original: &[Event]) -> Vec<(u64, Choice)> {
    let mut points: Vec<(u64, Choice)> = mapped_trio
        .iter()
        .zip(original)
        .filter(|(m, o)| {
            m.what != o.what
                && matches!(
                    m.what,
                    What::NurseryExit {
                        out: Outcome::Cancelled,
                        ..
                    }
                )
        })
        .map(|(m, _)| (m.t, Choice::S18))
        .collect();
    points.extend(original.iter().filter_map(|e| match &e.what {
        What::Evidence { choice } => Choice::from_evidence(choice).map(|c| (e.t, c)),
        _ => None,
    }));
    points.sort_by_key(|&(t, _)| t); // stable: at one instant, in the trace's order
    points
}

fn time_of(line: Option<&String>) -> u64 {
    line.and_then(|l| l.strip_prefix("t="))
        .and_then(|l| l.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Compares wherefore's trace with Trio's.
pub fn compare(ours: &[Event], trio: &[Event]) -> Verdict {
    let (mapped, applied) = map_trio(trio);
    let a = normalise(ours);
    let b = normalise(&mapped);
    if a == b {
        return Verdict::Agree(applied);
    }
    let first = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let at = time_of(a.get(first)).min(time_of(b.get(first)));
    // The latest point at or before the divergence: the nearest cause of it.
    if let Some(&(_, choice)) = cascade_points(&mapped, trio)
        .iter()
        .rev()
        .find(|(point, _)| *point <= at)
    {
        return Verdict::Explained {
            choice,
            mapped: applied,
        };
    }
    Verdict::Diverge(Divergence {
        ours: a,
        trio: b,
        first,
    })
}
