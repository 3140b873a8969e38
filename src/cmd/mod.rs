//! One module per subcommand; this file holds what they share: the environment a command runs
//! in (local process or the mount daemon), the passphrase, output, progress bars and sizes.
//! Errors get their context here, at the CLI edge.

mod advisor;
mod alerts;
mod audit;
mod backup;
mod busy;
mod check;
mod completions;
mod credential;
mod delete;
mod diff;
mod entry;
mod find;
pub mod fstab;
mod gc;
mod guard;
mod init;
mod items;
mod jobs;
mod key;
mod ls;
mod mount;
mod points;
mod policy;
mod repair;
mod replicate;
mod report;
mod restore;
mod role;
mod serve_webdav;
mod settings;
mod snapshot;
mod stats;
mod status;
mod umount;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use zeroize::Zeroizing;

pub use credential::take_env_secrets;
use vaultfs::cli::{Cli, Command};
use vaultfs::control::{self, Request, Responder, Response};
use vaultfs::keys::Credential;
use vaultfs::vault::location::same_dir;
use vaultfs::vault::{Location, Places, Vault};

/// What a command achieved, mapped to the process exit code.
pub enum Outcome {
    Ok,
    /// Done, but some entries were skipped or failed (exit 3).
    Partial(String),
}

/// Where a command's output goes: this process's stdout/stderr, or a control-socket client.
enum Sink<'a> {
    Local,
    Remote(Mutex<&'a mut Responder>),
}

/// The world a command runs in.
pub struct Env<'a> {
    passphrase_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    rsa_key: Option<PathBuf>,
    unwrap_command: Option<String>,
    /// Inside the daemon: the vault it holds open.
    daemon_vault: Option<Arc<Vault>>,
    cwd: PathBuf,
    places: Places,
    /// `--replica`: vaults are secondary copies, opened read-only.
    replica: bool,
    /// `--lock-wait`: how long to wait for another process holding the vault.
    lock_wait: Duration,
    sink: Sink<'a>,
    /// Who runs the command: this process's user, or the socket client's (DESIGN §13).
    caller: vaultfs::identity::Actor,
    /// The command's arguments as given, for its audit record.
    argv: Vec<String>,
    /// The vault the command opened, for its audit record.
    opened: Mutex<Option<Arc<Vault>>>,
    /// Who asks, for the role check, and what the command needs (DESIGN §13).
    subject: vaultfs::vault::roles::Subject,
    need: Mutex<Option<vaultfs::vault::roles::Need>>,
}

impl<'a> Env<'a> {
    pub fn local(cli: &Cli) -> Env<'static> {
        Env {
            passphrase_file: cli.passphrase_file.clone(),
            key_file: cli.key_file.clone(),
            rsa_key: cli.rsa_key.clone(),
            unwrap_command: cli.unwrap_command.clone(),
            daemon_vault: None,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            places: cli.places(),
            replica: cli.replica,
            lock_wait: cli.lock_wait.unwrap_or_default(),
            sink: Sink::Local,
            caller: vaultfs::identity::Actor::process(),
            argv: std::env::args().skip(1).collect(),
            opened: Mutex::new(None),
            // SAFETY: getuid/getgid have no preconditions.
            subject: subject(unsafe { libc::getuid() }, unsafe { libc::getgid() }),
            need: Mutex::new(None),
        }
    }

    /// Open vaults as secondary copies (`--replica`).
    pub fn with_replica(mut self, replica: bool) -> Self {
        self.replica = replica;
        self
    }

    pub fn is_replica(&self) -> bool {
        self.replica
    }

    /// Root of the cache directories of S3 vaults and secondaries.
    pub fn cache_root(&self) -> PathBuf {
        self.places.cache_root()
    }

    /// A command received by the daemon holding `vault`.
    pub fn remote(
        vault: Arc<Vault>,
        cwd: PathBuf,
        places: Places,
        argv: Vec<String>,
        out: &'a mut Responder,
    ) -> Env<'a> {
        // The socket let the client in by its peer credentials; no credentials: the daemon's.
        // SAFETY: geteuid/getegid have no preconditions.
        let (uid, gid) = out
            .peer()
            .unwrap_or_else(|| unsafe { (libc::geteuid(), libc::getegid()) });
        Env {
            passphrase_file: None,
            key_file: None,
            rsa_key: None,
            unwrap_command: None,
            daemon_vault: Some(vault),
            cwd,
            places,
            replica: false,
            lock_wait: Duration::ZERO,
            sink: Sink::Remote(Mutex::new(out)),
            caller: vaultfs::identity::Actor::of_uid(uid),
            argv,
            opened: Mutex::new(None),
            subject: subject(uid, gid),
            need: Mutex::new(None),
        }
    }

    /// Who runs the command.
    pub fn caller(&self) -> &vaultfs::identity::Actor {
        &self.caller
    }

    /// Refuse the command unless the caller's role allows what it needs.
    fn check_access(&self, vault: &Vault) -> Result<()> {
        if let Some(need) = &*self.need.lock().expect("need lock") {
            vault.check_access(&self.subject, need)?;
        }
        Ok(())
    }

    /// Whether the caller may see `item` (items without a role on them are not listed).
    pub fn may_read(&self, vault: &Vault, item: &str) -> bool {
        let need = vaultfs::vault::roles::Need::Read(Some(item.to_string()));
        vault.check_access(&self.subject, &need).is_ok()
    }

    /// Whether the caller owns `vault` (root does).
    pub fn is_owner(&self, vault: &Vault) -> bool {
        vault.is_owner(self.subject.uid)
    }

    /// The vault the command opened, if it opened one.
    pub fn opened(&self) -> Option<Arc<Vault>> {
        self.opened.lock().expect("opened lock").clone()
    }

    pub fn is_remote(&self) -> bool {
        matches!(self.sink, Sink::Remote(_))
    }

    /// A line on standard output.
    pub fn out(&self, line: impl Into<String>) {
        match &self.sink {
            Sink::Local => println!("{}", line.into()),
            Sink::Remote(r) => r.lock().expect("sink lock").out(line),
        }
    }

    /// A line on standard error.
    pub fn err(&self, line: impl Into<String>) {
        match &self.sink {
            Sink::Local => eprintln!("{}", line.into()),
            Sink::Remote(r) => r.lock().expect("sink lock").err(line),
        }
    }

    /// The caller's working directory.
    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// A user-given path, relative to the caller's working directory.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.cwd.join(p)
        }
    }

    /// Where a user-given vault is: `s3://BUCKET/PREFIX`, an S3 vault's cache directory, or a
    /// local directory.
    pub fn location(&self, given: &Path) -> Result<Location> {
        Ok(Location::parse(given, &self.cwd, &self.places)?)
    }

    /// The passphrase: `--passphrase-file`, `VAULTFS_PASSPHRASE`, or a prompt.
    pub fn passphrase(&self, vault: &Path, confirm: bool) -> Result<Zeroizing<Vec<u8>>> {
        let pass = if let Some(f) = &self.passphrase_file {
            credential::first_line(f).context("cannot read the passphrase file")?
        } else if let Some(p) = credential::env_passphrase() {
            p
        } else if std::io::stdin().is_terminal() {
            let p = rpassword::prompt_password(format!("passphrase for {}: ", vault.display()))?;
            if confirm {
                let again = rpassword::prompt_password("repeat passphrase: ")?;
                if again != p {
                    bail!("the passphrases do not match");
                }
            }
            Zeroizing::new(p.into_bytes())
        } else {
            bail!(
                "no passphrase: set VAULTFS_PASSPHRASE, use --passphrase-file, or run on a terminal"
            );
        };
        if pass.is_empty() {
            bail!("the passphrase is empty");
        }
        Ok(pass)
    }

    /// Open `vault` (in the daemon: share the open vault; the control socket let the caller
    /// in by its peer credentials, so no key is asked for or derived).
    pub fn open(&self, vault: &Path) -> Result<Arc<Vault>> {
        if let Some(v) = &self.daemon_vault {
            // A mount point stands for the vault mounted on it (see `forward`).
            let path = self.path(vault);
            let same = match vaultfs::daemon::vault_of_mount(&path) {
                Some(dir) => same_dir(v.dir(), &dir),
                None => same_dir(v.dir(), &path) || v.location().same_as(&self.location(vault)?),
            };
            if !same {
                bail!(
                    "this daemon serves {}, not {}",
                    v.location().display(),
                    vault.display()
                );
            }
            *self.opened.lock().expect("opened lock") = Some(v.clone());
            self.check_access(v)?;
            return Ok(v.clone());
        }
        let location = self.location(vault)?;
        let credential = self.credential(&location)?;
        let v = if self.replica {
            let key = Vault::unwrap_key_at(&location, &credential)?;
            vaultfs::vault::replica::open(&location, &self.cache_root(), key)?
        } else {
            self.waiting_for_lock(|| Vault::open_credential_at(&location, &credential))?
        };
        for note in v.notes() {
            self.err(format!("vaultfs: note: {note}"));
        }
        let v = Arc::new(v);
        if !self.replica {
            *self.opened.lock().expect("opened lock") = Some(v.clone());
        }
        self.check_access(&v)?;
        Ok(v)
    }

    /// `open()` again while another process holds the vault, for up to `--lock-wait`.
    fn waiting_for_lock<T>(
        &self,
        mut open: impl FnMut() -> vaultfs::vault::Result<T>,
    ) -> vaultfs::vault::Result<T> {
        use vaultfs::store::StoreError;
        use vaultfs::vault::VaultError;
        let deadline = std::time::Instant::now() + self.lock_wait;
        let mut told = false;
        loop {
            match open() {
                Err(VaultError::Store(StoreError::InUse(h)))
                    if std::time::Instant::now() < deadline =>
                {
                    if !told {
                        self.err(format!("vaultfs: vault is in use by {h}; waiting for it"));
                        told = true;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }

    /// The credential, for commands that unlock a vault themselves (mount, repair).
    pub fn unlock_credential(&self, location: &Location) -> Result<Credential> {
        self.credential(location)
    }

    /// Who starts a job run by this command (`uid N`). A daemon runs only its owner's (or
    /// root's) commands, so its own uid stands for the caller there.
    pub fn started_by(&self) -> String {
        // SAFETY: getuid has no preconditions.
        format!("uid {}", unsafe { libc::getuid() })
    }

    /// A progress bar to `total` (bytes, or a count of `unit`) with rate and ETA, on stderr
    /// when it is a local terminal; hidden otherwise, so nothing extra is printed.
    pub fn bar(&self, total: u64, unit: Option<&str>) -> ProgressBar {
        if self.is_remote() || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let template = match unit {
            None => "{msg} [{wide_bar}] {bytes}/{total_bytes}, {bytes_per_sec}, ETA {eta}".into(),
            Some(u) => format!(
                "{{msg}} [{{wide_bar}}] {{pos}}/{{len}}{}{u}, {{per_sec}}, ETA {{eta}}",
                if u.is_empty() { "" } else { " " }
            ),
        };
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template(&template)
                .expect("static template")
                .progress_chars("=> "),
        );
        pb.enable_steady_tick(Duration::from_millis(200));
        pb
    }
}

/// Run `work` while a thread calls `poll` on a shown `pb` five times a second (counters the
/// work updates become the bar's position); the bar is cleared at the end.
pub fn track<T: Send>(
    pb: &ProgressBar,
    poll: impl Fn(&ProgressBar) + Sync,
    work: impl FnOnce() -> T + Send,
) -> T {
    let done = std::sync::atomic::AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        if !pb.is_hidden() {
            s.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    poll(pb);
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        }
        let r = work();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    });
    pb.finish_and_clear();
    result
}

pub fn run(command: Command, env: &Env) -> Result<Outcome> {
    let what = audit::describe(&command, &env.argv);
    *env.need.lock().expect("need lock") = role::need(&command);
    let result = dispatch(command, env);
    if let Some(what) = what {
        audit::record(env, &what, &result);
    }
    result
}

fn dispatch(command: Command, env: &Env) -> Result<Outcome> {
    match command {
        Command::Init(a) => init::run(a, env),
        Command::Backup(a) => backup::run(a, env),
        Command::Items(a) => items::run(a, env),
        Command::Points(a) => points::run(a, env),
        Command::Restore(a) => restore::run(a, env),
        Command::Ls(a) => ls::run(a, env),
        Command::Find(a) => find::run(a, env),
        Command::Diff(a) => diff::run(a, env),
        Command::Stats(a) => stats::run(a, env),
        Command::Check(a) => check::run(a, env),
        Command::Repair(a) => repair::run(a, env),
        Command::Mount(a) => mount::run(a, env),
        Command::ServeWebdav(a) => serve_webdav::run(a, env),
        Command::Umount(a) => umount::run(a, env),
        Command::Snapshot(a) => snapshot::run(a, env),
        Command::Delete(a) => delete::run(a, env, true),
        Command::Undelete(a) => delete::run(a, env, false),
        Command::Gc(a) => gc::run(a, env),
        Command::Settings(a) => settings::run(a, env),
        Command::Policy(a) => policy::run(a, env),
        Command::Replicate(a) => replicate::run(a, env),
        Command::Jobs(a) => jobs::run(a, env),
        Command::Status(a) => status::run(a, env),
        Command::Alerts(a) => alerts::run(a, env),
        Command::Advisor(a) => advisor::run(a, env),
        Command::Report(a) => report::run(a, env),
        Command::Metrics(a) => {
            let vault = env.open(&a.vault)?;
            vault.evaluate_alerts()?;
            let text = vaultfs::metrics::render(&vault, &env.cache_root())?;
            env.out(text.trim_end());
            Ok(Outcome::Ok)
        }
        Command::Key(k) => key::run(k, env),
        Command::Audit(a) => audit::run(a, env),
        Command::Guard(g) => guard::run(g, env),
        Command::Role(r) => role::run(r, env),
        Command::Completions(a) => completions::run(a),
    }
}

/// Report a command's result like `main` does and return the exit code.
pub fn finish(result: Result<Outcome>, env: &Env) -> i32 {
    match result {
        Ok(Outcome::Ok) => 0,
        Ok(Outcome::Partial(msg)) => {
            env.err(format!("vaultfs: {msg}"));
            3
        }
        Err(e) => {
            env.err(format!("vaultfs: error: {}", one_line(&e)));
            1
        }
    }
}

/// The error and its causes on one line, without repeating a cause already in the message.
pub fn one_line(e: &anyhow::Error) -> String {
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

/// If a daemon holds the command's vault, run the command there. `None`: run it here.
pub fn forward(cli: &Cli, argv: &[std::ffi::OsString]) -> Option<i32> {
    let given = cli.command.vault_path()?;
    // A mount point stands for the vault mounted on it.
    let resolved = vaultfs::daemon::vault_of_mount(given);
    let env = Env::local(cli);
    let vault = match resolved {
        Some(dir) => dir,
        None => local_dir_of(&env, &env.location(given).ok()?)?,
    };
    let vault = vault.as_path();
    let stream = control::connect(vault)?;
    // No secret crosses the socket: the daemon holds the key and lets the caller in by its
    // peer credentials.
    let req = Request::Command {
        argv_hex: argv
            .iter()
            .skip(1)
            .map(|a| hex::encode(a.as_encoded_bytes()))
            .collect(),
        cwd: env.cwd.clone(),
    };
    // A backup holding the vault refuses writers (`busy`): with --lock-wait, ask again until
    // it ends (its socket is gone then, and the command runs here).
    let deadline = std::time::Instant::now() + cli.lock_wait.unwrap_or_default();
    let mut stream = stream;
    let mut told = false;
    let (answered, result) = loop {
        let waiting = std::time::Instant::now() < deadline;
        let mut answered = false;
        let mut busy = false;
        let result = control::call(stream, &req, |r| {
            answered = true;
            match r {
                Response::Err(s) if waiting && s.starts_with(busy::BUSY_PREFIX) => busy = true,
                Response::Out(s) => println!("{s}"),
                Response::Err(s) => eprintln!("{s}"),
                Response::Exit(_) => {}
            }
        });
        if !(busy && matches!(result, Ok(Some(busy::EXIT_BUSY)))) {
            break (answered, result);
        }
        if !told {
            eprintln!("vaultfs: vault is in use by a running backup; waiting for it");
            told = true;
        }
        std::thread::sleep(Duration::from_millis(200));
        stream = control::connect(vault)?;
    };
    let dropped = match &result {
        Ok(None) => true,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        Ok(Some(_)) => false,
    };
    // A daemon killed a moment ago still accepts on its socket while it dies: once the socket
    // is gone, the command runs here (the vault's lock says whether it may).
    if dropped && !answered && daemon_gone(vault) {
        return None;
    }
    match result {
        Ok(Some(code)) => Some(code),
        Ok(None) => {
            eprintln!(
                "vaultfs: error: the mount daemon of {} hung up",
                vault.display()
            );
            Some(1)
        }
        Err(e) => {
            eprintln!(
                "vaultfs: error: talking to the mount daemon of {}: {e}",
                vault.display()
            );
            Some(1)
        }
    }
}

/// The local directory of the vault at `location`, where its daemon's socket would be (for
/// an S3 vault or a secondary this reads its config: the directory is named by the vault's id).
pub fn local_dir_of(env: &Env, location: &Location) -> Option<PathBuf> {
    match location {
        Location::Local(dir) if !env.replica => Some(dir.clone()),
        _ => {
            let config = Vault::read_config_at(location).ok()?;
            Some(if env.replica {
                location.replica_dir(&config.vault_id, &env.cache_root())
            } else {
                location.local_dir(&config.vault_id)
            })
        }
    }
}

/// Whether the control socket of `vault` stops accepting within five seconds.
fn daemon_gone(vault: &std::path::Path) -> bool {
    for _ in 0..50 {
        if control::connect(vault).is_none() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// Run a command sent over the control socket, inside the daemon.
pub fn serve_remote(vault: Arc<Vault>, req: Request, out: &mut Responder) {
    let Request::Command { argv_hex, cwd } = req else {
        out.send(&Response::Exit(1));
        return;
    };
    let argv: Vec<std::ffi::OsString> = argv_hex
        .iter()
        .map(|a| std::os::unix::ffi::OsStringExt::from_vec(hex::decode(a).unwrap_or_default()))
        .collect();
    let shown = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let parsed = <Cli as clap::Parser>::try_parse_from(
        std::iter::once(std::ffi::OsString::from("vaultfs")).chain(argv),
    );
    let code = match parsed {
        // SAFETY: geteuid has no preconditions.
        Ok(cli)
            if out
                .peer()
                .is_some_and(|(uid, _)| uid != 0 && uid != unsafe { libc::geteuid() })
                && local_paths(&cli.command) =>
        {
            out.err(
                "vaultfs: error: denied: this command reads or writes local files; through the \
                 mount daemon only its own user may run it (unmount, or copy from the mount)",
            );
            1
        }
        Ok(cli) => {
            let env = Env::remote(vault, cwd, cli.places(), shown, out).with_replica(cli.replica);
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(cli.command, &env)));
            match result {
                Ok(r) => finish(r, &env),
                Err(_) => {
                    env.err("vaultfs: internal error in the daemon (see its log)");
                    70
                }
            }
        }
        Err(e) => {
            out.err(format!("vaultfs: {}", clap_line(&e.to_string())));
            2
        }
    };
    out.send(&Response::Exit(code));
}

/// A caller: uid and every group it is in.
fn subject(uid: u32, gid: u32) -> vaultfs::vault::roles::Subject {
    vaultfs::vault::roles::Subject {
        uid,
        groups: vaultfs::identity::groups_of(uid, gid),
    }
}

/// Commands a socket client other than root or the daemon's own user may not run through the
/// daemon: they read or write local paths, which the daemon would do with its own rights.
fn local_paths(command: &Command) -> bool {
    matches!(
        command,
        Command::Backup(_)
            | Command::Restore(_)
            | Command::Init(_)
            | Command::Mount(_)
            | Command::Umount(_)
            | Command::Repair(_)
            | Command::Replicate(_)
            | Command::Completions(_)
            | Command::Guard(_)
            | Command::Key(_)
            | Command::Report(_)
    )
}

/// clap's error text on one line: the message with the arguments it names (clap puts them on
/// indented lines), its tips ("a similar argument exists") and possible values; no usage.
pub fn clap_line(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        if let Some(tip) = line.strip_prefix("tip: ") {
            out.push_str("; ");
            out.push_str(tip);
        } else {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(line);
        }
    }
    if out.is_empty() {
        out.push_str("invalid arguments");
    }
    out.push_str(" (see vaultfs --help)");
    out
}

pub use vaultfs::report::human_bytes;

/// `1 point`, `2 points`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Rows as an aligned table with a header, one string per line.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        s.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(header.iter().map(|s| s.to_string()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out
}
