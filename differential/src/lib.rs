//! Differential testing of wherefore against the real Trio (issue 27; TESTING.md tells the
//! whole story).
//!
//! A seed makes a random cancellation program ([`generate`]), written in a small language
//! ([`program`]); the Rust interpreter ([`interpret`]) runs it on wherefore's virtual time, the
//! Python one (`trio_interpreter.py`, driven by [`trio`]) on Trio's `MockClock`; both print a
//! trace ([`trace`]), and the comparator ([`compare`](mod@compare)) maps Trio's trace through wherefore's
//! documented choices and reports what still differs, minimised by [`shrink`].
//!
//! ```no_run
//! use differential::Checker;
//! let mut checker = Checker::start("target/differential-venv/bin/python".as_ref()).unwrap();
//! for (seed, _program, verdict) in checker.check_seeds(&[1, 2, 3]).unwrap() {
//!     println!("{seed}: {verdict:?}");
//! }
//! ```

pub mod compare;
pub mod generate;
pub mod interpret;
pub mod program;
pub mod shrink;
pub mod trace;
pub mod trio;

use std::path::Path;

use crate::compare::{Verdict, compare, map_trio};
use crate::interpret::run_rust;
use crate::program::Program;
use crate::trace::normalise;

/// Other schedules a diverging program is run under, on both sides, before its divergence is
/// believed: if either side's trace moves with the schedule, the program is set aside.
const OTHER_SCHEDULES: [u64; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

/// Runs programs on both sides and judges them; owns one Trio process.
#[derive(Debug)]
pub struct Checker {
    trio: trio::Trio,
    python: std::path::PathBuf,
}

impl Checker {
    /// Starts the Trio interpreter with `python`.
    pub fn start(python: &Path) -> std::io::Result<Checker> {
        Ok(Checker {
            trio: trio::Trio::start(python)?,
            python: python.to_owned(),
        })
    }

    /// The program of each seed, run on both sides (each side's schedule seeded with it), and
    /// the verdict.
    pub fn check_seeds(&mut self, seeds: &[u64]) -> std::io::Result<Vec<(u64, Program, Verdict)>> {
        let programs: Vec<Program> = seeds.iter().map(|&s| generate::generate(s)).collect();
        let verdicts = self.check_programs(&programs, seeds)?;
        Ok(seeds
            .iter()
            .copied()
            .zip(programs)
            .zip(verdicts)
            .map(|((s, p), v)| (s, p, v))
            .collect())
    }

    /// Each program with its schedule seed, run on both sides, and the verdicts.
    pub fn check_programs(
        &mut self,
        programs: &[Program],
        seeds: &[u64],
    ) -> std::io::Result<Vec<Verdict>> {
        let requests: Vec<(&Program, u64)> = programs.iter().zip(seeds.iter().copied()).collect();
        let theirs = self.trio.run_batch(&requests)?;
        Ok(programs
            .iter()
            .zip(seeds)
            .zip(theirs)
            .map(|((p, &s), trio)| compare(&run_rust(p, s), &trio))
            .collect())
    }

    /// Whether either side's trace of `program` moves with the schedule (then a divergence
    /// says nothing: the two sides may have taken different, equally valid orders).
    pub fn schedule_dependent(&mut self, program: &Program, seed: u64) -> std::io::Result<bool> {
        let ours = normalise(&run_rust(program, seed));
        for other in OTHER_SCHEDULES {
            if normalise(&run_rust(program, seed ^ other)) != ours {
                return Ok(true);
            }
        }
        let mut requests = vec![(program, seed)];
        requests.extend(OTHER_SCHEDULES.iter().map(|o| (program, seed ^ o)));
        let mut theirs = self.trio.run_batch(&requests)?;
        // Trio orders some things by address (a set of cancel statuses, ties in its deadline
        // heap), which its seed does not fix and which depends on what the process ran before:
        // one more run in a fresh process.
        theirs.push(trio::Trio::start(&self.python)?.run(program, seed)?);
        let first = normalise(&map_trio(&theirs[0]).0);
        Ok(theirs[1..]
            .iter()
            .any(|t| normalise(&map_trio(t).0) != first))
    }

    /// Whether `program` diverges (unexplained) under `seed`, whatever the schedule.
    pub fn diverges(&mut self, program: &Program, seed: u64) -> std::io::Result<bool> {
        let verdict = self.check_programs(std::slice::from_ref(program), &[seed])?;
        Ok(matches!(verdict[0], Verdict::Diverge(_)) && !self.schedule_dependent(program, seed)?)
    }

    /// The smallest program found that still diverges like `program` (unexplained, and not
    /// with the schedule).
    pub fn minimise(&mut self, program: &Program, seed: u64) -> Program {
        shrink::shrink(program, |candidates| {
            let seeds = vec![seed; candidates.len()];
            let verdicts = self.check_programs(candidates, &seeds).ok()?;
            for (i, verdict) in verdicts.iter().enumerate() {
                if matches!(verdict, Verdict::Diverge(_))
                    && !self
                        .schedule_dependent(&candidates[i], seed)
                        .unwrap_or(true)
                {
                    return Some(i);
                }
            }
            None
        })
    }

    /// Both raw traces of a program, for a report: wherefore's, and Trio's unmapped.
    pub fn traces(&mut self, program: &Program, seed: u64) -> std::io::Result<[Vec<String>; 2]> {
        let trio = self.trio.run(program, seed)?;
        Ok([normalise(&run_rust(program, seed)), normalise(&trio)])
    }
}
