//! `kubectl-stateful`: thin entry point. Parse, run, map the outcome to an exit code.

use clap::Parser;
use kubectl_stateful::{cli::Cli, run};

fn main() {
    let cli = Cli::parse();
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
