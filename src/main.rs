//! The `vaultfs` binary: parse arguments, run one command, map the outcome to an exit code.
//! Every failure is one line on stderr; a panic (a bug) is reported the same way, never as a trace.

mod cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let loc = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("vaultfs: internal error{loc}: {msg}");
    }));
    let cli = vaultfs::cli::Cli::parse();
    // sled logs its own view of a damaged database; vaultfs reports that as one error line.
    let mut directives = cli.log.clone();
    if !directives.contains("sled") {
        directives.push_str(",sled=off");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| "warn,sled=off".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
    match std::panic::catch_unwind(|| cmd::run(cli)) {
        Ok(Ok(cmd::Outcome::Ok)) => ExitCode::SUCCESS,
        Ok(Ok(cmd::Outcome::Partial(msg))) => {
            eprintln!("vaultfs: {msg}");
            ExitCode::from(3)
        }
        Ok(Err(e)) => {
            eprintln!("vaultfs: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::from(70),
    }
}

/// The error and its causes on one line, without repeating a cause already in the message.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out.replace('\n', " ")
}
