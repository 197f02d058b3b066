//! The differential tool's own tests: none needs Python (the runs against Trio are `.ci/run`'s).

use differential::compare::{Choice, Verdict, compare};
use differential::generate::generate;
use differential::interpret::run_rust;
use differential::program::{Member, NurseryBlock, Op, Program, ScopeBlock};
use differential::shrink::{candidates, shrink};
use differential::trace::{Event, Outcome, Root, What, normalise};

fn event(t: u64, task: &str, what: What) -> Event {
    Event {
        t,
        task: task.into(),
        what,
    }
}

fn failed(ops: &[&str], cancelled: bool) -> Outcome {
    Outcome::Failed {
        ops: ops.iter().map(|s| (*s).to_owned()).collect(),
        cancelled,
    }
}

#[test]
fn the_generator_is_deterministic_per_seed_and_keeps_its_rules() {
    for seed in 0..200 {
        let program = generate(seed);
        assert_eq!(program, generate(seed), "seed {seed}");
        assert!(program.well_timed(), "seed {seed}: {}", program.to_json());
        assert!(program.panics_are_collected(), "seed {seed}");
        assert!(
            program.size() <= 100,
            "seed {seed}: size {}",
            program.size()
        );
        let back: Program = serde_json::from_str(&program.to_json()).unwrap();
        assert_eq!(back, program);
    }
    let distinct: std::collections::HashSet<String> =
        (0..200).map(|s| generate(s).to_json()).collect();
    assert!(distinct.len() > 190, "seeds make different programs");
}

#[test]
fn the_shrinker_shrinks_to_a_local_minimum_that_keeps_the_property() {
    let fails = |p: &Program| {
        let mut found = false;
        p.visit(|op| found |= matches!(op, Op::Fail(_)));
        found
    };
    let (seed, program) = (0..)
        .map(|s| (s, generate(s)))
        .find(|(_, p)| fails(p) && p.size() > 15)
        .unwrap();
    let small = shrink(&program, |candidates| candidates.iter().position(fails));
    assert!(fails(&small));
    assert!(
        small.size() < program.size(),
        "seed {seed}: {} -> {}",
        program.size(),
        small.size()
    );
    assert!(
        small.size() <= 4,
        "a fail alone, or in a member after its first sleep: {small:?}"
    );
    assert!(
        !candidates(&small).iter().any(fails),
        "nothing smaller keeps it"
    );
}

#[test]
fn the_rust_interpreter_traces_a_timeout_absorbing_its_own_cancellation() {
    let program = Program {
        body: vec![Op::Scope(ScopeBlock {
            name: "s1".into(),
            deadline: Some(30),
            shield: false,
            fail: false,
            body: vec![Op::Nursery(NurseryBlock {
                name: "n2".into(),
                members: vec![Member {
                    name: "m3".into(),
                    body: vec![Op::SleepUntil(10), Op::SleepForever],
                    cleanup: None,
                    value: 3,
                }],
                body: vec![Op::SleepUntil(50)],
            })],
        })],
    };
    let lines = normalise(&run_rust(&program, 7));
    assert_eq!(
        lines,
        [
            "t=0 main/m3 started",
            "t=30 main observed deadline of s1",
            "t=30 main nursery n2 exit cancelled",
            "t=30 main scope s1 exit caught=true ok",
            "t=30 main scope horizon exit caught=false ok",
            "t=30 main ended ok",
            "t=30 main/m3 observed deadline of s1",
            "t=30 main/m3 ended cancelled",
        ]
    );
}

/// S3: Trio's group carries the members' `Cancelled`s beside the failure, and the cancelled
/// scope splits them off (`cancelled_caught`) as the failure goes on; wherefore's nursery lists
/// the failure only and the scope absorbs nothing.
#[test]
fn a_known_divergence_is_mapped_s3() {
    let ours = [
        event(
            5,
            "main",
            What::NurseryExit {
                nursery: "n2".into(),
                out: failed(&["op4"], false),
                trio_parent_cancelled: false,
            },
        ),
        event(
            5,
            "main",
            What::ScopeExit {
                scope: "s1".into(),
                caught: false,
                out: failed(&["op4"], false),
            },
        ),
    ];
    let trio = [
        event(
            5,
            "main",
            What::NurseryExit {
                nursery: "n2".into(),
                out: failed(&["op4"], true),
                trio_parent_cancelled: true,
            },
        ),
        event(
            5,
            "main",
            What::ScopeExit {
                scope: "s1".into(),
                caught: true,
                out: failed(&["op4"], false),
            },
        ),
    ];
    assert_eq!(compare(&ours, &trio), Verdict::Agree([Choice::S3].into()));
}

/// S14: Trio reports the reason it copied from the parent; wherefore the scope's own, which
/// the Python side reads off Trio's records as `trio_own`.
#[test]
fn a_known_divergence_is_mapped_s14() {
    let own = Root {
        kind: "deadline".into(),
        scope: "s5".into(),
        ops: Vec::new(),
    };
    let ours = [event(
        185,
        "main/m7",
        What::Observed {
            cause: own.clone(),
            trio_own: None,
        },
    )];
    let trio = [event(
        185,
        "main/m7",
        What::Observed {
            cause: Root {
                kind: "explicit".into(),
                scope: "n1".into(),
                ops: Vec::new(),
            },
            trio_own: Some(own),
        },
    )];
    assert_eq!(compare(&ours, &trio), Verdict::Agree([Choice::S14].into()));
}

/// S13 reaches beyond one line: from Trio's evidence on, what differs is explained, and what
/// differs before it is not.
#[test]
fn a_divergence_after_evidence_is_explained_and_one_before_it_is_not() {
    let ended = |out| What::Ended { out };
    let evidence = event(
        10,
        "main",
        What::Evidence {
            choice: "S13".into(),
        },
    );
    let ours = [event(10, "main", ended(Outcome::Cancelled))];
    let trio = [evidence.clone(), event(10, "main", ended(Outcome::Ok))];
    assert!(matches!(
        compare(&ours, &trio),
        Verdict::Explained {
            choice: Choice::S13,
            ..
        }
    ));
    let ours = [
        event(5, "main", ended(Outcome::Cancelled)),
        event(10, "main", ended(Outcome::Ok)),
    ];
    let trio = [
        event(5, "main", ended(Outcome::Ok)),
        evidence,
        event(10, "main", ended(Outcome::Ok)),
    ];
    assert!(matches!(compare(&ours, &trio), Verdict::Diverge(_)));
}
