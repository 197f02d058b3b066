//! `cargo run --release -p differential -- [--seeds A..B] [--jobs N] [--python PATH]
//! [--report N] [--show SEED] [--dump]`
//!
//! Runs the programs of seeds `A..B` (default `0..2000`) on wherefore and on Trio, `N` Trio
//! processes at a time (default 2), prints what agreed, what a documented choice explained,
//! what was set aside as schedule-dependent, and each unexplained divergence minimised (the
//! first `--report` ones, default 5); exits 1 if there was any. `--show SEED` prints one
//! seed's program and both traces instead; `--dump` prints each seed's program (`seed json`). The Python is the venv's that `.ci/run` makes
//! (`target/differential-venv/bin/python`) unless `--python` says otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use differential::Checker;
use differential::compare::Verdict;
use differential::generate::generate;
use differential::interpret::quiet_panics;
use differential::program::Program;

struct Args {
    seeds: std::ops::Range<u64>,
    jobs: u64,
    python: PathBuf,
    report: usize,
    show: Option<u64>,
    dump: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seeds: 0..2000,
        jobs: 2,
        python: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/differential-venv/bin/python"),
        report: 5,
        show: None,
        dump: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seeds" => {
                let v = value()?;
                let (a, b) = v.split_once("..").ok_or("--seeds takes A..B")?;
                let a = a.parse().map_err(|e| format!("--seeds: {e}"))?;
                let b = b.parse().map_err(|e| format!("--seeds: {e}"))?;
                args.seeds = a..b;
            }
            "--jobs" => args.jobs = value()?.parse().map_err(|e| format!("--jobs: {e}"))?,
            "--python" => args.python = PathBuf::from(value()?),
            "--report" => args.report = value()?.parse().map_err(|e| format!("--report: {e}"))?,
            "--show" => args.show = Some(value()?.parse().map_err(|e| format!("--show: {e}"))?),
            "--dump" => args.dump = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// What the run found, added up over every job.
#[derive(Default)]
struct Tally {
    identical: u64,
    mapped: BTreeMap<String, u64>,
    explained: BTreeMap<String, (u64, Vec<u64>)>,
    schedule_dependent: u64,
    diverging: Vec<(u64, Program)>,
}

fn main() -> ExitCode {
    quiet_panics();
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("differential: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(seed) = args.show {
        return show(&args, seed);
    }
    if args.dump {
        for seed in args.seeds {
            println!("{seed} {}", generate(seed).to_json());
        }
        return ExitCode::SUCCESS;
    }
    let started = Instant::now();
    let next = AtomicU64::new(args.seeds.start);
    let tally = Mutex::new(Tally::default());
    let failed_to_start = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..args.jobs.max(1) {
            s.spawn(|| {
                let mut checker = match Checker::start(&args.python) {
                    Ok(c) => c,
                    Err(e) => {
                        *failed_to_start.lock().unwrap() = Some(e.to_string());
                        return;
                    }
                };
                loop {
                    let from = next.fetch_add(64, Ordering::Relaxed);
                    if from >= args.seeds.end {
                        return;
                    }
                    let seeds: Vec<u64> = (from..(from + 64).min(args.seeds.end)).collect();
                    let results = match checker.check_seeds(&seeds) {
                        Ok(r) => r,
                        Err(e) => {
                            *failed_to_start.lock().unwrap() = Some(e.to_string());
                            return;
                        }
                    };
                    for (seed, program, verdict) in results {
                        let mut t = tally.lock().unwrap();
                        match verdict {
                            Verdict::Agree(choices) if choices.is_empty() => t.identical += 1,
                            Verdict::Agree(choices) => {
                                let key = join(&choices);
                                *t.mapped.entry(key).or_default() += 1;
                            }
                            Verdict::Explained { choice, .. } => {
                                let (n, seeds) = t.explained.entry(choice.to_string()).or_default();
                                *n += 1;
                                if seeds.len() < 5 {
                                    seeds.push(seed);
                                }
                            }
                            Verdict::Diverge(_) => {
                                drop(t);
                                let dependent =
                                    checker.schedule_dependent(&program, seed).unwrap_or(true);
                                let mut t = tally.lock().unwrap();
                                if dependent {
                                    t.schedule_dependent += 1;
                                } else {
                                    t.diverging.push((seed, program));
                                }
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failed_to_start.into_inner().unwrap() {
        eprintln!(
            "differential: the trio interpreter failed ({e}); python: {}",
            args.python.display()
        );
        return ExitCode::from(2);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut t = tally.into_inner().unwrap();
    let total = args.seeds.end - args.seeds.start;
    println!(
        "differential: {total} programs (seeds {}..{}) in {elapsed:.1} s: {:.0} programs/s",
        args.seeds.start,
        args.seeds.end,
        total as f64 / elapsed
    );
    println!("  identical traces: {}", t.identical);
    for (choices, n) in &t.mapped {
        println!("  agree once Trio's trace is mapped through {choices}: {n}");
    }
    for (choice, (n, seeds)) in &t.explained {
        let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
        println!(
            "  agree up to a divergence that {choice} explains: {n} (seeds {} ...)",
            seeds.join(" ")
        );
    }
    println!(
        "  set aside (a trace moves with the schedule): {}",
        t.schedule_dependent
    );
    println!("  unexplained divergences: {}", t.diverging.len());
    t.diverging.sort_by_key(|(seed, _)| *seed);
    if !t.diverging.is_empty() {
        let mut checker = Checker::start(&args.python).expect("it started before");
        for (seed, program) in t.diverging.iter().take(args.report) {
            let small = checker.minimise(program, *seed);
            println!(
                "\ndivergence: seed {seed}, minimised from {} to {} ops:\n{}",
                program.size(),
                small.size(),
                small.to_json()
            );
            if let Ok(v) = checker.check_programs(std::slice::from_ref(&small), &[*seed])
                && let Verdict::Diverge(d) = &v[0]
            {
                print!("{d}");
            }
        }
        let rest: Vec<String> = t.diverging.iter().map(|(s, _)| s.to_string()).collect();
        println!("\ndiverging seeds: {}", rest.join(" "));
    }
    let failed = t.diverging.len() as u64;
    println!("differential: {} passed, {failed} failed", total - failed);
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn join(choices: &std::collections::BTreeSet<differential::compare::Choice>) -> String {
    choices
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("+")
}

fn show(args: &Args, seed: u64) -> ExitCode {
    let program = generate(seed);
    println!("{}", program.to_json());
    let mut checker = match Checker::start(&args.python) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("differential: {e}");
            return ExitCode::from(2);
        }
    };
    let [ours, trio] = checker
        .traces(&program, seed)
        .expect("the trio interpreter runs");
    println!("\nwherefore:");
    for line in ours {
        println!("  {line}");
    }
    println!("\ntrio (before mapping):");
    for line in trio {
        println!("  {line}");
    }
    let verdict = checker
        .check_programs(std::slice::from_ref(&program), &[seed])
        .expect("the trio interpreter runs");
    match &verdict[0] {
        Verdict::Diverge(d) => print!("\ndiverges:\n{d}"),
        other => println!("\nverdict: {other:?}"),
    }
    ExitCode::SUCCESS
}
