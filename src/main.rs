//! `kubectl-stateful`: thin entry point. Parse, run, map the outcome to an exit code.

use clap::Parser;
use kubectl_stateful::{cli::Cli, run};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; every usage error is an error
            // like any other (exit 1: the README's exit codes keep 2 for "changes present").
            let _ = e.print();
            std::process::exit(if e.use_stderr() { run::EXIT_ERROR } else { 0 });
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
            eprintln!("{report:?}");
            run::EXIT_ERROR
        }
    };
    std::process::exit(code);
}
