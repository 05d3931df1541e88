//! `kubectl-stateful`: thin entry point. Parse, run, map the outcome to an exit code.

use clap::Parser;
use kubectl_stateful::{cli::Cli, run};
use std::io::IsTerminal;

fn main() {
    let cli = Cli::parse();
    let terminal = std::io::stderr().is_terminal();
    let color = terminal
        && !cli.cluster.no_color
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // Diagnostics: graphical with carets always; colors and line wrapping only on a terminal, so
    // CI logs keep each message on one line.
    miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .wrap_lines(terminal)
                .build(),
        )
    }))
    .expect("the diagnostics hook is set once");
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
