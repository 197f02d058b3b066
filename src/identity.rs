//! Names and identifiers of scopes and tasks, as they appear in causes and reports.

use std::fmt;
use std::panic::Location;

use crate::sync::Frozen;

/// A process-wide unique identifier of a cancel scope (nurseries included).
///
/// Shown as `scope#N` wherever the scope has no name.
///
/// ```
/// let scope = wherefore::Scope::new();
/// let id = scope.handle().scope().id();
/// assert!(id.to_string().starts_with("scope#"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScopeId(pub(crate) u64);

impl ScopeId {
    /// The number behind the identifier; increasing in creation order within a process.
    ///
    /// ```
    /// let a = wherefore::Scope::new().handle().scope().id();
    /// let b = wherefore::Scope::new().handle().scope().id();
    /// assert!(a.get() < b.get());
    /// ```
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ScopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scope#{}", self.0)
    }
}

/// A process-wide unique identifier of a task spawned into a nursery (or a nursery's body).
///
/// Shown as `task#N` wherever the task has no name.
///
/// ```
/// # wherefore::testing::block_on(async {
/// let out = wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
///     let child = n.spawn(async { Ok(()) }).unwrap();
///     Ok(child.task().id())
/// })
/// .await
/// .unwrap();
/// assert!(out.to_string().starts_with("task#"));
/// # });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub(crate) u64);

impl TaskId {
    /// The number behind the identifier; increasing in spawn order within a process.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # let id = wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
    /// #     Ok(n.spawn(async { Ok(()) }).unwrap().task().id())
    /// # }).await.unwrap();
    /// assert!(id.get() > 0);
    /// # });
    /// ```
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task#{}", self.0)
    }
}

/// Who a scope is: its identifier and optional name. Cheap to clone.
///
/// Displays as `scope "name"`, or as `scope#N` when unnamed.
///
/// ```
/// let named = wherefore::Scope::named("request").handle().scope();
/// assert_eq!(named.to_string(), "scope \"request\"");
/// assert_eq!(named.name(), Some("request"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScopeInfo {
    pub(crate) id: ScopeId,
    pub(crate) name: Option<Frozen<str>>,
}

impl ScopeInfo {
    /// The scope's identifier.
    ///
    /// ```
    /// let info = wherefore::Scope::new().handle().scope();
    /// assert_eq!(info.to_string(), info.id().to_string());
    /// ```
    pub fn id(&self) -> ScopeId {
        self.id
    }

    /// The scope's name, if it was given one.
    ///
    /// ```
    /// assert_eq!(wherefore::Scope::new().handle().scope().name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl fmt::Display for ScopeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "scope {name:?}"),
            None => write!(f, "{}", self.id),
        }
    }
}

/// Who a task is: identifier, optional name, and where it was spawned. Cheap to clone.
///
/// Displays as `task "name"`, or `task#N` when unnamed.
///
/// ```
/// # wherefore::testing::block_on(async {
/// let task = wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
///     Ok(n.spawn_named("fetch", async { Ok(()) }).unwrap().task().clone())
/// })
/// .await
/// .unwrap();
/// assert_eq!(task.to_string(), "task \"fetch\"");
/// assert_eq!(task.spawned_at().file(), file!());
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaskInfo {
    pub(crate) id: TaskId,
    pub(crate) name: Option<Frozen<str>>,
    pub(crate) spawned_at: &'static Location<'static>,
}

impl TaskInfo {
    /// The task's identifier.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # let task = wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
    /// #     Ok(n.spawn(async { Ok(()) }).unwrap().task().clone())
    /// # }).await.unwrap();
    /// assert_eq!(task.to_string(), task.id().to_string());
    /// # });
    /// ```
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task's name, if it was spawned with one.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # let task = wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
    /// #     Ok(n.spawn_named("log", async { Ok(()) }).unwrap().task().clone())
    /// # }).await.unwrap();
    /// assert_eq!(task.name(), Some("log"));
    /// # });
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The source location of the `spawn` call that started the task.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # let task = wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
    /// #     Ok(n.spawn(async { Ok(()) }).unwrap().task().clone())
    /// # }).await.unwrap();
    /// assert!(task.spawned_at().line() > 0);
    /// # });
    /// ```
    pub fn spawned_at(&self) -> &'static Location<'static> {
        self.spawned_at
    }
}

impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "task {name:?}"),
            None => write!(f, "{}", self.id),
        }
    }
}
