//! The Python side: one `trio_interpreter.py` process serving many programs over pipes.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::program::Program;
use crate::trace::Event;

/// A running Trio interpreter.
#[derive(Debug)]
pub struct Trio {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

#[derive(Serialize)]
struct Request<'a> {
    id: u64,
    seed: u64,
    program: &'a Program,
}

#[derive(Deserialize)]
struct Response {
    id: u64,
    events: Vec<Event>,
}

/// The interpreter script, next to this crate's manifest.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("trio_interpreter.py")
}

impl Trio {
    /// Starts `python` (a venv's interpreter with `trio` installed) on the script.
    pub fn start(python: &Path) -> std::io::Result<Trio> {
        let mut child = Command::new(python)
            .arg("-u")
            .arg(script())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Ok(Trio {
            child,
            stdin,
            stdout,
            next_id: 0,
        })
    }

    /// Runs each `(program, seed)` and returns their traces, in order. The requests are
    /// written from another thread while the answers are read, so that neither pipe fills.
    pub fn run_batch(&mut self, programs: &[(&Program, u64)]) -> std::io::Result<Vec<Vec<Event>>> {
        let first = self.next_id;
        self.next_id += programs.len() as u64;
        let mut lines = String::new();
        for (i, (program, seed)) in programs.iter().enumerate() {
            let request = Request {
                id: first + i as u64,
                seed: *seed,
                program,
            };
            lines.push_str(&serde_json::to_string(&request).expect("serialisable"));
            lines.push('\n');
        }
        let stdin = &mut self.stdin;
        let stdout = &mut self.stdout;
        std::thread::scope(|s| {
            let writer = s.spawn(move || -> std::io::Result<()> {
                stdin.write_all(lines.as_bytes())?;
                stdin.flush()
            });
            let mut out = Vec::with_capacity(programs.len());
            let mut line = String::new();
            for i in 0..programs.len() {
                line.clear();
                if stdout.read_line(&mut line)? == 0 {
                    return Err(std::io::Error::other(
                        "the trio interpreter ended early (is trio installed in that venv?)",
                    ));
                }
                let response: Response = serde_json::from_str(&line)
                    .map_err(|e| std::io::Error::other(format!("bad answer {line:?}: {e}")))?;
                assert_eq!(response.id, first + i as u64, "answers come in order");
                out.push(response.events);
            }
            writer.join().expect("the writer does not panic")?;
            Ok(out)
        })
    }

    /// Runs one program.
    pub fn run(&mut self, program: &Program, seed: u64) -> std::io::Result<Vec<Event>> {
        Ok(self.run_batch(&[(program, seed)])?.remove(0))
    }
}

impl Drop for Trio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
