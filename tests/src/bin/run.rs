//! `cargo run` from the workspace root: `./run.sh` with the arguments given after `--`, so
//! `cargo run` boots the default scenario and prints its summary, and
//! `cargo run -- --firmware vof` boots under VOF. The exit status is `run.sh`'s.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let script = tests::build::workspace_root().join("run.sh");
    match Command::new(&script).args(std::env::args_os().skip(1)).status() {
        Ok(status) => ExitCode::from(status.code().map_or(1, |code| u8::try_from(code).unwrap_or(1))),
        Err(e) => {
            eprintln!("run: cannot start {}: {e}", script.display());
            ExitCode::FAILURE
        }
    }
}
