//! `kubectl-stateful`: thin entry point. Parse, run, map the outcome to an exit code.

use clap::Parser as _;
use kubectl_stateful::{cli::Cli, run};

fn main() {
    // kubectl's plugin completion: `kubectl_complete-stateful ARGS…` runs
    // `kubectl-stateful __complete ARGS…` (or this binary under that name).
    let args: Vec<String> = std::env::args().collect();
    let called_as_completion = args.first().is_some_and(|a| {
        std::path::Path::new(a).file_name() == Some("kubectl_complete-stateful".as_ref())
    });
    if called_as_completion || args.get(1).map(String::as_str) == Some("__complete") {
        let skip = if called_as_completion { 1 } else { 2 };
        print!("{}", kubectl_stateful::complete::complete(&args[skip..]));
        return;
    }
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
