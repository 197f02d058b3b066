//! A picture of a live scope tree: every scope below a root, its state, and (when the runtime
//! keeps them) the tasks in it and where each is blocked. What a person debugging a stuck
//! shutdown needs to see.

use std::collections::BTreeMap;
use std::fmt;

use crate::env::LiveTask;
use crate::identity::ScopeId;
use crate::scope_tree::{Phase, ScopeNode};

/// A snapshot of a scope and everything below it, taken at one moment.
///
/// `Display` draws it as an indented tree; under [`testing`](crate::testing) each scope also
/// lists its live tasks and the cancellation point (or guarded foreign future) each is blocked
/// on. Taking one walks the tree in a loop, so a deep tree does not grow the stack.
///
/// ```
/// # wherefore::testing::block_on(async {
/// let scope = wherefore::Scope::named("request");
/// let handle = scope.handle();
/// let picture = scope
///     .run(async { Ok::<_, wherefore::Cancelled>(handle.tree().to_string()) })
///     .await
///     .unwrap()
///     .unwrap();
/// assert_eq!(picture, "scope \"request\" (running)\n");
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct TreeSnapshot {
    /// Lines of the drawing, each with its depth.
    lines: Vec<(usize, String)>,
}

impl TreeSnapshot {
    /// Takes the snapshot of `root`'s subtree; `tasks` are the live tasks to place in it.
    pub(crate) fn take(root: &ScopeNode, tasks: &[LiveTask]) -> TreeSnapshot {
        let mut by_scope: BTreeMap<ScopeId, Vec<&LiveTask>> = BTreeMap::new();
        for task in tasks {
            by_scope.entry(task.home.id).or_default().push(task);
        }
        let mut lines = Vec::new();
        let mut stack = vec![(0usize, root.clone())];
        while let Some((depth, node)) = stack.pop() {
            lines.push((depth, describe(&node)));
            for task in by_scope.get(&node.info().id).into_iter().flatten() {
                let mut line = format!("{}", task.info);
                if let Some((point, scope, _)) = &task.blocked_at {
                    line.push_str(&format!(" blocked at {point}"));
                    if scope.id != node.info().id {
                        line.push_str(&format!(" in {scope}"));
                    }
                }
                lines.push((depth + 1, line));
            }
            let mut children = node.children();
            children.sort_by_key(|child| std::cmp::Reverse(child.info().id));
            stack.extend(children.into_iter().map(|child| (depth + 1, child)));
        }
        TreeSnapshot { lines }
    }
}

fn describe(node: &ScopeNode) -> String {
    let mut line = node.info().to_string();
    let mut notes = Vec::new();
    if node.is_shielded() {
        notes.push("shielded".to_owned());
    }
    match (node.is_cancelled(), node.cause(), node.phase()) {
        (true, Some(cause), _) => notes.push(format!("cancelled: {cause}")),
        (_, _, Phase::Exited) => notes.push("exited".to_owned()),
        (_, _, Phase::Created) => notes.push("not entered".to_owned()),
        (_, _, Phase::Entered) => notes.push("running".to_owned()),
    }
    line.push_str(&format!(" ({})", notes.join(", ")));
    line
}

impl fmt::Display for TreeSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (depth, line) in &self.lines {
            writeln!(f, "{:width$}{line}", "", width = depth * 2)?;
        }
        Ok(())
    }
}
