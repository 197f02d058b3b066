//! Programs from a seed: size-bounded, deterministic per seed, and timed so that what two tasks
//! do rarely falls on the same instant.
//!
//! **Timing.** Trio runs the tasks woken at one instant in a random order, wherefore in a seeded
//! one; a program whose trace depends on that order says nothing about either. So every *actor*
//! (a task, a scope's deadline) gets its own residue `r` modulo [`SLOT`] ms, and its instants are
//! `k * SLOT + r`: a task sleeps until its own instants, a deadline is set at its own. Two tasks
//! then meet at one instant only when a cancellation wakes them both (which they observe, each
//! for itself) or when one of them runs late (after a cleanup). Members start together, so each
//! member's first step is a sleep to its own slot; an op that wakes other tasks (a cancel, a
//! shield change, a deadline moved) is followed by a sleep to the task's next slot, so that what
//! it does next never meets what the woken tasks do ([`Program::well_timed`](crate::program::Program::well_timed)).
//! On purpose, one sleep in ten ends exactly at the deadline of a scope around it, when there is
//! one within a slot (each deadline at most once): S9 (deadlines first) decides that order on
//! both sides.
//! What still depends on the order is caught at run time (`compare::run_one` reruns a diverging
//! program under other schedules and sets it aside if either side's trace moves).

use crate::program::{Cleanup, Member, NurseryBlock, Op, Program, ScopeBlock};

/// The width of a time slot, ms: every actor's instants share one residue modulo it.
pub const SLOT: u64 = 40;

/// How large a program may grow.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Nesting of scopes, nurseries and members.
    pub max_depth: u32,
    /// Ops in one body.
    pub max_ops: u64,
    /// Members of one nursery.
    pub max_members: u64,
    /// Ops and members in the whole program.
    pub budget: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 3,
            max_ops: 4,
            max_members: 3,
            budget: 28,
        }
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a small, fast, well-mixed stream, the same one
/// `wherefore::testing` uses for its schedules.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A stream from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The program of a seed, within the default limits.
pub fn generate(seed: u64) -> Program {
    generate_within(seed, Limits::default())
}

/// The program of a seed, within `limits`.
pub fn generate_within(seed: u64, limits: Limits) -> Program {
    let mut residues: Vec<u64> = (1..SLOT).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..residues.len()).rev() {
        residues.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut g = Gen {
        rng,
        limits,
        used: 0,
        next_id: 0,
        residues,
        next_residue: 0,
        scopes: Vec::new(),
        nurseries: Vec::new(),
        members: Vec::new(),
        enclosing: Vec::new(),
        aimed: Vec::new(),
    };
    let main = g.residue();
    let mut cursor = 0;
    let body = g.body(0, main, &mut cursor, false);
    let mut program = Program { body };
    g.aim(&mut program);
    program
}

/// The generator's state for one program.
struct Gen {
    rng: SplitMix64,
    limits: Limits,
    /// Ops and members made so far (the budget's count).
    used: usize,
    next_id: u32,
    residues: Vec<u64>,
    next_residue: usize,
    /// Every scope made: its name, its deadline's residue.
    scopes: Vec<(String, u64)>,
    nurseries: Vec<String>,
    members: Vec<String>,
    /// The deadlines of the scopes around what is being generated, innermost last.
    enclosing: Vec<u64>,
    /// Deadlines a sleep was aimed at already (each at most once).
    aimed: Vec<u64>,
}

impl Gen {
    fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// The next actor's residue (shared again only past `SLOT - 1` actors).
    fn residue(&mut self) -> u64 {
        let r = self.residues[self.next_residue % self.residues.len()];
        self.next_residue += 1;
        r
    }

    fn left(&self) -> bool {
        self.used < self.limits.budget
    }

    /// A body run by the task whose residue is `r`; `cursor` is the task's last slot.
    fn body(&mut self, depth: u32, r: u64, cursor: &mut u64, in_nursery: bool) -> Vec<Op> {
        let n = 1 + self.rng.below(self.limits.max_ops);
        let mut ops = Vec::new();
        for _ in 0..n {
            if !self.left() {
                break;
            }
            self.used += 1;
            let nested = depth < self.limits.max_depth;
            let roll = self.rng.below(100);
            let op = match roll {
                0..=29 => self.sleep(r, cursor),
                30..=33 => Op::SleepForever,
                34..=39 => Op::Fail(format!("op{}", self.id())),
                40..=42 if in_nursery => Op::Panic(format!("op{}", self.id())),
                40..=49 => Op::Cancel(String::new()),
                50..=52 => Op::CancelTask(String::new()),
                53..=58 => Op::SetDeadline {
                    scope: String::new(),
                    at: *cursor,
                },
                59..=63 => Op::SetShield {
                    scope: String::new(),
                    on: self.rng.chance(60),
                },
                64..=81 if nested => self.scope(depth, r, cursor, in_nursery),
                82..=99 if nested => self.nursery(depth, r, cursor),
                _ => self.sleep(r, cursor),
            };
            // An op that wakes other tasks (a cancel, a shield lowered, a deadline moved into
            // the past) is followed by a sleep to the task's next slot: what the task does next
            // must not meet, at the same instant, what the woken tasks do.
            let wakes = matches!(
                op,
                Op::Cancel(_) | Op::CancelTask(_) | Op::SetDeadline { .. } | Op::SetShield { .. }
            );
            ops.push(op);
            if wakes {
                *cursor += 1 + self.rng.below(2);
                ops.push(Op::SleepUntil(*cursor * SLOT + r));
            }
        }
        ops
    }

    /// A sleep to the task's next slot; one in ten, when a scope around it (in this task or
    /// the one that started it) has its deadline within a slot of that instant, to the
    /// deadline itself (S9: the deadline fires first, and the sleep fails). Only a deadline
    /// around the sleeper: the tasks it wakes are then all inside it, cancelled, so none of
    /// them acts at that instant beside the sleeper.
    fn sleep(&mut self, r: u64, cursor: &mut u64) -> Op {
        *cursor += 1 + self.rng.below(3);
        let at = *cursor * SLOT + r;
        if self.rng.chance(10)
            && let Some(&d) = self
                .enclosing
                .iter()
                .find(|&&d| d + SLOT > at && d < at + SLOT && !self.aimed.contains(&d))
        {
            self.aimed.push(d);
            return Op::SleepUntil(d);
        }
        Op::SleepUntil(at)
    }

    fn scope(&mut self, depth: u32, r: u64, cursor: &mut u64, in_nursery: bool) -> Op {
        let name = format!("s{}", self.id());
        let own = self.residue();
        self.scopes.push((name.clone(), own));
        // Mostly ahead of the task, sometimes already past when entered (S12).
        let deadline = self
            .rng
            .chance(55)
            .then(|| (*cursor + self.rng.below(6)).saturating_sub(1) * SLOT + own);
        let shield = self.rng.chance(20);
        let fail = deadline.is_some() && self.rng.chance(30);
        self.enclosing.extend(deadline);
        let body = self.body(depth + 1, r, cursor, in_nursery);
        if deadline.is_some() {
            self.enclosing.pop();
        }
        Op::Scope(ScopeBlock {
            name,
            deadline,
            shield,
            fail,
            body,
        })
    }

    fn nursery(&mut self, depth: u32, r: u64, cursor: &mut u64) -> Op {
        let name = format!("n{}", self.id());
        self.nurseries.push(name.clone());
        let count = 1 + self.rng.below(self.limits.max_members);
        let mut members = Vec::new();
        let mut latest = *cursor;
        for _ in 0..count {
            if !self.left() {
                break;
            }
            self.used += 1;
            let id = self.id();
            let own = self.residue();
            // A member's first step is a sleep to its own slot: members start together, and
            // what they do first would otherwise meet at that instant.
            let mut own_cursor = *cursor + 1;
            let mut body = vec![Op::SleepUntil(own_cursor * SLOT + own)];
            body.extend(self.body(depth + 1, own, &mut own_cursor, true));
            latest = latest.max(own_cursor);
            // The cleanup ends on the member's own residue (it does nothing else meanwhile),
            // its grace on one of its own.
            let cleanup = self.rng.chance(40).then(|| Cleanup {
                sleep: (1 + self.rng.below(4)) * SLOT / 2,
                residue: own,
                grace: self
                    .rng
                    .chance(50)
                    .then(|| ((1 + self.rng.below(4)) * SLOT / 2, self.residue())),
            });
            self.members.push(format!("m{id}"));
            members.push(Member {
                name: format!("m{id}"),
                body,
                cleanup,
                value: i64::from(id),
            });
        }
        let body = self.body(depth + 1, r, cursor, true);
        // The task goes on after the nursery, which waits for its members.
        *cursor = (*cursor).max(latest);
        Op::Nursery(NurseryBlock {
            name,
            members,
            body,
        })
    }

    /// The second pass: the targets of cancels, moves and shields, chosen among every scope,
    /// nursery and member of the program.
    fn aim(&mut self, program: &mut Program) {
        let scopes = self.scopes.clone();
        let mut everything: Vec<String> = scopes.iter().map(|(n, _)| n.clone()).collect();
        everything.extend(self.nurseries.iter().cloned());
        let members = self.members.clone();
        let rng = &mut self.rng;
        program.visit_mut(|op| match op {
            Op::CancelTask(target) => {
                if members.is_empty() {
                    *op = Op::SleepForever;
                } else {
                    *target = members[rng.below(members.len() as u64) as usize].clone();
                }
            }
            Op::Cancel(target) => {
                if everything.is_empty() {
                    *op = Op::SleepForever;
                } else {
                    *target = everything[rng.below(everything.len() as u64) as usize].clone();
                }
            }
            Op::SetDeadline { scope, at } => {
                if scopes.is_empty() {
                    *op = Op::SleepForever;
                } else {
                    let (name, own) = &scopes[rng.below(scopes.len() as u64) as usize];
                    let slot = (*at + rng.below(5)).saturating_sub(1);
                    *scope = name.clone();
                    *at = slot * SLOT + own;
                }
            }
            Op::SetShield { scope, .. } => {
                if scopes.is_empty() {
                    *op = Op::SleepForever;
                } else {
                    *scope = scopes[rng.below(scopes.len() as u64) as usize].0.clone();
                }
            }
            // Each deadline's instant at most once: two sleeps aimed at one instant would wake
            // two tasks there, in an order only the scheduler decides.
            _ => {}
        });
    }
}
