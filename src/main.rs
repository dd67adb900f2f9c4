//! The `sigcat` binary: turns the library's typed results into messages and exit codes.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
