//! The `vaultfs` binary: parse arguments, run one command (here, or in the mount daemon that
//! holds the vault), map the outcome to an exit code. Every failure is one line on stderr; a
//! panic (a bug) is reported the same way, never as a trace.

mod cmd;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cmd::take_env_secrets();
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
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let argv = match cmd::fstab::helper_args(&argv) {
        None => argv,
        Some(Ok(args)) if args.is_empty() => return ExitCode::SUCCESS,
        Some(Ok(args)) => args,
        Some(Err(e)) => {
            eprintln!("vaultfs: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = match vaultfs::cli::Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("vaultfs: {}", cmd::clap_line(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    tune_allocator(matches!(cli.command, vaultfs::cli::Command::Mount(_)));
    // Every file vaultfs makes in a vault (config, packs, the index database's files, the
    // socket, the log) is the owner's alone, whatever umask it was started with (DESIGN.md §5).
    // SAFETY: umask only sets this process's file creation mask.
    unsafe {
        libc::umask(0o077);
    }
    // The index engine logs its own view of a damaged database; vaultfs reports that as one
    // error line.
    let mut directives = cli.log.clone();
    // The mount daemon's log records mounts, unmounts, soft deletes and damaged reads.
    if matches!(cli.command, vaultfs::cli::Command::Mount(_)) && directives == "warn" {
        directives = "info".into();
    }
    let engine = vaultfs::store::index::ENGINE_LOG_TARGET;
    if !directives.contains(engine) {
        directives.push_str(&format!(",{engine}=off"));
    }
    vaultfs::fuse::quiet_log(&mut directives);
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| format!("warn,{engine}=off").into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Some(code) = cmd::forward(&cli, &argv) {
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    let env = cmd::Env::local(&cli);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cmd::run(cli.command, &env))) {
        Ok(result) => ExitCode::from(cmd::finish(result, &env) as u8),
        Err(_) => ExitCode::from(70),
    }
}

/// glibc malloc settings, measured with scripts/bench.sh (DESIGN.md, "Memory"). Called before
/// any other thread exists.
fn tune_allocator(daemon: bool) {
    // SAFETY: mallopt only tunes the allocator.
    unsafe {
        // One arena: with rayon, index database and FUSE threads, per-thread arenas held a
        // backup of 1M small chunks at 440 MiB instead of 290 MiB.
        libc::mallopt(libc::M_ARENA_MAX, 1);
        if daemon {
            // The mount daemon caches chunks of all sizes and drops them in LRU order: from the
            // heap they fragment it (a 64 MiB cache held ~200 MiB); mmap'd they return at once.
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
        } else {
            // Commands: chunk-sized buffers (1-4 MiB) from the heap, not a fresh mmap each,
            // page-faulted in again per blob (more system time than compression took).
            libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
        }
    }
}
