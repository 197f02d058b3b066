//! The shrinker: smaller programs that keep a divergence.
//!
//! [`candidates`] lists every program one step smaller than a given one (an op removed, a scope
//! or nursery replaced by its body, a member removed, a deadline, shield, cleanup or grace
//! dropped, a member's value zeroed); [`shrink`] keeps taking the first candidate that still
//! satisfies the predicate until none does: a local minimum, usually a handful of ops. Every
//! candidate keeps the generator's rules (panics inside nurseries, `Program::well_timed`).

use crate::program::{Op, Program};

/// Every program one step smaller than `program`, largest steps first.
pub fn candidates(program: &Program) -> Vec<Program> {
    body_variants(&program.body)
        .into_iter()
        .map(|body| Program { body })
        .filter(|p| p.panics_are_collected() && p.well_timed())
        .collect()
}

fn body_variants(ops: &[Op]) -> Vec<Vec<Op>> {
    let mut out = Vec::new();
    let with = |i: usize, op: Op| {
        let mut v = ops.to_vec();
        v[i] = op;
        v
    };
    // Whole ops first: the biggest cuts.
    for i in 0..ops.len() {
        let mut v = ops.to_vec();
        v.remove(i);
        out.push(v);
    }
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Scope(block) => {
                let mut spliced = ops[..i].to_vec();
                spliced.extend(block.body.iter().cloned());
                spliced.extend(ops[i + 1..].iter().cloned());
                out.push(spliced);
                if block.deadline.is_some() && !block.fail {
                    let mut b = block.clone();
                    b.deadline = None;
                    out.push(with(i, Op::Scope(b)));
                }
                if block.shield {
                    let mut b = block.clone();
                    b.shield = false;
                    out.push(with(i, Op::Scope(b)));
                }
                if block.fail {
                    let mut b = block.clone();
                    b.fail = false;
                    out.push(with(i, Op::Scope(b)));
                }
                for body in body_variants(&block.body) {
                    let mut b = block.clone();
                    b.body = body;
                    out.push(with(i, Op::Scope(b)));
                }
            }
            Op::Nursery(block) => {
                let mut spliced = ops[..i].to_vec();
                spliced.extend(block.body.iter().cloned());
                spliced.extend(ops[i + 1..].iter().cloned());
                out.push(spliced);
                for j in 0..block.members.len() {
                    let mut b = block.clone();
                    b.members.remove(j);
                    out.push(with(i, Op::Nursery(b)));
                }
                for (j, member) in block.members.iter().enumerate() {
                    if let Some(cleanup) = &member.cleanup {
                        let mut b = block.clone();
                        b.members[j].cleanup = None;
                        out.push(with(i, Op::Nursery(b)));
                        if cleanup.grace.is_some() {
                            let mut b = block.clone();
                            b.members[j].cleanup.as_mut().expect("some").grace = None;
                            out.push(with(i, Op::Nursery(b)));
                        }
                    }
                    for body in body_variants(&member.body) {
                        let mut b = block.clone();
                        b.members[j].body = body;
                        out.push(with(i, Op::Nursery(b)));
                    }
                }
                for body in body_variants(&block.body) {
                    let mut b = block.clone();
                    b.body = body;
                    out.push(with(i, Op::Nursery(b)));
                }
            }
            _ => {}
        }
    }
    out
}

/// Shrinks `program` while `keeps` holds. `keeps` is given every candidate of one round at once
/// (so that an interpreter in another process can take them as one batch) and answers with the
/// index of the first one that keeps the property, if any. Returns the smallest program found.
pub fn shrink(program: &Program, mut keeps: impl FnMut(&[Program]) -> Option<usize>) -> Program {
    let mut current = program.clone();
    loop {
        let candidates = candidates(&current);
        match keeps(&candidates) {
            Some(i) => current = candidates[i].clone(),
            None => return current,
        }
    }
}
