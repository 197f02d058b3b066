//! The journal: the events of one run, with their virtual times, as data and as text.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::cause::Cause;
use crate::event::{At, Event, Hook};
use crate::identity::{TaskId, TaskInfo};
use crate::sync::{self, Mutex};

/// One journal entry: when, and what.
///
/// ```
/// let report = wherefore::testing::run(async {});
/// let first = &report.journal().entries()[0];
/// assert_eq!(first.at(), std::time::Duration::ZERO);
/// assert!(matches!(first.event(), wherefore::event::Event::ScopeEntered { .. }));
/// ```
#[derive(Clone, Debug)]
pub struct Entry {
    at: Duration,
    event: Event,
}

impl Entry {
    /// Virtual time since the run started.
    ///
    /// ```
    /// use std::time::Duration;
    /// let report = wherefore::testing::run(wherefore::sleep(Duration::from_secs(3)));
    /// let last = report.journal().entries().last().unwrap();
    /// assert_eq!(last.at(), Duration::from_secs(3)); // virtual: the run took no real time
    /// ```
    pub fn at(&self) -> Duration {
        self.at
    }

    /// What happened.
    ///
    /// ```
    /// use wherefore::event::Event;
    /// let report = wherefore::testing::run(async {
    ///     let scope = wherefore::Scope::named("job");
    ///     scope.handle().cancel();
    ///     let _ = scope.run(wherefore::checkpoint()).await;
    /// });
    /// let cancelled = report.journal().entries().iter().find_map(|entry| match entry.event() {
    ///     Event::CancelRequested { scope, .. } => scope.name(),
    ///     _ => None,
    /// });
    /// assert_eq!(cancelled, Some("job"));
    /// ```
    pub fn event(&self) -> &Event {
        &self.event
    }
}

/// Everything that happened in one [`run`](super::run), in order.
///
/// `Display` gives one line per entry, `t=S.mmm ` then the event (tasks by name), a stable text
/// to compare literally. The entries can also be queried in code.
///
/// ```
/// use wherefore::Scope;
/// let report = wherefore::testing::run(async {
///     let scope = Scope::named("job");
///     scope.handle().cancel_with("stop");
///     let _ = scope.run(wherefore::checkpoint()).await;
/// });
/// let text = report.journal().to_string();
/// let lines: Vec<&str> = text.lines().collect();
/// assert!(lines[2].starts_with("t=0.000 cancel   scope \"job\": explicit (\"stop\") at "));
/// assert!(lines[2].ends_with(" [took effect]"));
/// assert_eq!(report.journal().observed_by("main").len(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Journal {
    entries: Vec<Entry>,
    /// Every task spawned in the run, to print tasks by name.
    tasks: BTreeMap<TaskId, TaskInfo>,
}

impl Journal {
    /// The entries, in order.
    ///
    /// ```
    /// use wherefore::event::Event;
    /// let report = wherefore::testing::run(async {});
    /// let entries = report.journal().entries();
    /// assert!(matches!(entries[0].event(), Event::ScopeEntered { .. })); // the root scope, first
    /// assert_eq!(entries.len(), report.journal().to_string().lines().count()); // a line each
    /// ```
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The causes the task named `name` observed at cancellation points, in order.
    ///
    /// ```
    /// use std::time::Duration;
    /// let report = wherefore::testing::run(async {
    ///     let nap = wherefore::sleep(Duration::from_secs(9));
    ///     let _ = wherefore::move_on_after(Duration::from_secs(1), nap).await;
    /// });
    /// let causes = report.journal().observed_by("main");
    /// assert_eq!(causes.len(), 1);
    /// assert_eq!(causes[0].kind(), "timeout");
    /// assert!(report.journal().observed_by("nobody").is_empty());
    /// ```
    pub fn observed_by(&self, name: &str) -> Vec<Cause> {
        self.entries
            .iter()
            .filter_map(|entry| match &entry.event {
                Event::CancellationObserved {
                    task: Some(task),
                    cause,
                    ..
                } if self.tasks.get(task).and_then(TaskInfo::name) == Some(name) => {
                    Some(cause.clone())
                }
                _ => None,
            })
            .collect()
    }

    fn write_event(&self, f: &mut fmt::Formatter<'_>, event: &Event) -> fmt::Result {
        match event {
            Event::CancellationObserved {
                task: Some(id),
                scope,
                cause,
                point,
            } => {
                match self.tasks.get(id) {
                    Some(task) => write!(f, "observe  {task}")?,
                    None => write!(f, "observe  {id}")?,
                }
                write!(f, " at {point} in {scope}: {cause}")
            }
            other => write!(f, "{other}"),
        }
    }
}

impl fmt::Display for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for entry in &self.entries {
            write!(f, "{} ", At(entry.at))?;
            self.write_event(f, &entry.event)?;
            writeln!(f)?;
        }
        Ok(())
    }
}

/// The hook that records a journal.
#[derive(Default)]
pub(crate) struct Recorder {
    journal: Mutex<Journal>,
}

impl Recorder {
    /// The journal recorded so far.
    pub(crate) fn take(&self) -> Journal {
        std::mem::take(&mut *sync::lock(&self.journal))
    }
}

impl Hook for Recorder {
    fn on_event(&self, at: Duration, event: &Event) {
        let mut journal = sync::lock(&self.journal);
        if let Event::TaskSpawned { task, .. } = event {
            journal.tasks.insert(task.id, task.clone());
        }
        journal.entries.push(Entry {
            at,
            event: event.clone(),
        });
    }
}
