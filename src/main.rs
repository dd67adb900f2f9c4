//! The `sigcat` binary: turns the library's typed outcomes into messages and exit codes.
#![deny(unreachable_pub)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
