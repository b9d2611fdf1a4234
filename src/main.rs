//! The `procwarden` command: `procwarden serve` runs the HTTP agent.

use std::process::ExitCode;

use procwarden::serve::{self, SERVE_USAGE};

const USAGE: &str = "\
procwarden: a process runner for AI agents

Usage:
  procwarden serve [OPTIONS]   run the HTTP agent (procwarden serve --help for its options)
  procwarden --version         print the version
  procwarden --help            print this help";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve_command(&args[1..]),
        Some("--version" | "-V" | "version") => {
            println!("procwarden {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
        Some(other) => {
            eprintln!("procwarden: unknown command \"{other}\" (see procwarden --help)");
            ExitCode::from(2)
        }
    }
}

fn serve_command(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{SERVE_USAGE}");
        return ExitCode::SUCCESS;
    }
    let opts = match serve::parse_args(args) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("procwarden: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    match serve::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("procwarden: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
