//! `kubectl-stateful`: thin entry point. Parse, run, map the outcome to an exit code.

use clap::Parser as _;
use kubectl_stateful::{cli::Cli, run};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version succeed; every usage error exits 1 like any other error
            // (2 means "changes present" for plan --detailed-exitcode).
            let code = if e.use_stderr() { run::EXIT_ERROR } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = match runtime.block_on(run::run(cli)) {
        Ok(code) => code,
        Err(report) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{report:?}");
            run::EXIT_ERROR
        }
    };
    std::process::exit(code);
}
