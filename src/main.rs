//! The `keyledger` binary: see `keyledger --help`.

fn main() -> std::process::ExitCode {
    keyledger::cli::main()
}
