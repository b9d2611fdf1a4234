//! The `procwarden` command: `serve` runs the HTTP agent; `exec`, `ps`, `output`, `kill` and
//! `tools` talk to one. Everything lives in [`procwarden::cli`]; this only hands it the
//! arguments.

use std::process::ExitCode;

fn main() -> ExitCode {
    procwarden::cli::run(std::env::args_os().skip(1))
}
