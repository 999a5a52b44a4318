//! `tierfs`: the mount daemon.
//!
//! `tierfs mount [-f] CONFIG MOUNTPOINT` mounts and, without `-f`, returns as
//! soon as the mount is live while the daemon keeps serving in the background.
//! `tierfs CONFIG MOUNTPOINT -o OPTS` is the same, in the form `mount.fuse3`
//! uses for `/etc/fstab` lines and systemd mount units of type `fuse.tierfs`.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use fuser::MountOption;
use tierfs::config::Config;
use tierfs::daemon::{self, MountOverrides};

/// Hybrid cloud storage tiering gateway: mounts a hot directory through FUSE.
#[derive(Debug, Parser)]
#[command(
    name = "tierfs",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  tierfs mount /etc/tierfs/files.toml /srv/files\n  \
                  tierfs mount -f /etc/tierfs/files.toml /srv/files   # stay in the foreground\n  \
                  mount -t fuse.tierfs /etc/tierfs/files.toml /srv/files -o allow_other"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Mount arguments in the form mount.fuse3 passes them (CONFIG MOUNTPOINT -o OPTS).
    #[command(flatten)]
    helper: HelperArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mount CONFIG's hot directory at MOUNTPOINT.
    ///
    /// Without -f, returns once the mount is live (or with the reason it
    /// failed) and the daemon keeps serving in the background. Unmount with
    /// `umount MOUNTPOINT`; SIGTERM to the daemon does the same.
    ///
    /// Examples:
    ///   tierfs mount /etc/tierfs/files.toml /srv/files
    ///   tierfs mount -f -o ro /etc/tierfs/files.toml /srv/files
    #[command(verbatim_doc_comment)]
    Mount(MountArgs),
    /// Write man pages and shell completions to DIR (for packaging).
    #[command(hide = true)]
    GenerateAssets {
        /// Output directory (created if missing).
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
struct MountArgs {
    /// Stay in the foreground and log to stderr (default: return once mounted).
    #[arg(short = 'f', long)]
    foreground: bool,
    /// Comma-separated mount options (ro, rw, allow_other, nodev, nosuid, noexec,
    /// noatime, …; fstab-only options such as _netdev and nofail are accepted).
    #[arg(short = 'o', value_name = "OPTS")]
    options: Vec<String>,
    /// The tierfs configuration file (TOML).
    config: PathBuf,
    /// Where to mount.
    mountpoint: PathBuf,
}

#[derive(Debug, Args)]
struct HelperArgs {
    /// Stay in the foreground.
    #[arg(short = 'f', long)]
    foreground: bool,
    /// Comma-separated mount options.
    #[arg(short = 'o', value_name = "OPTS")]
    options: Vec<String>,
    /// The tierfs configuration file.
    config: Option<PathBuf>,
    /// Where to mount.
    mountpoint: Option<PathBuf>,
}

/// Turns `-o` option strings into overrides, rejecting unknown options.
fn parse_mount_options(options: &[String]) -> Result<MountOverrides> {
    let mut overrides = MountOverrides::default();
    for opt in options
        .iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.is_empty())
    {
        match opt {
            "ro" => overrides.read_only = true,
            "rw" => overrides.read_only = false,
            "allow_other" => overrides.allow_other = true,
            "dev" => overrides.extra.push(MountOption::Dev),
            "nodev" => overrides.extra.push(MountOption::NoDev),
            "suid" => overrides.extra.push(MountOption::Suid),
            "nosuid" => overrides.extra.push(MountOption::NoSuid),
            "exec" => overrides.extra.push(MountOption::Exec),
            "noexec" => overrides.extra.push(MountOption::NoExec),
            "atime" => overrides.extra.push(MountOption::Atime),
            "noatime" => overrides.extra.push(MountOption::NoAtime),
            // Handled by mount(8)/mount.fuse3/systemd, or always on in tierfs.
            "default_permissions"
            | "defaults"
            | "relatime"
            | "_netdev"
            | "nofail"
            | "auto"
            | "noauto"
            | "user"
            | "nouser"
            | "users"
            | "async" => {}
            o if o.starts_with("x-") || o.starts_with("comment=") => {}
            other => bail!("unknown mount option `{other}`"),
        }
    }
    Ok(overrides)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Mount(m)) => m,
        Some(Command::GenerateAssets { dir }) => return generate_assets(&dir),
        None => match (cli.helper.config, cli.helper.mountpoint) {
            (Some(config), Some(mountpoint)) => MountArgs {
                foreground: cli.helper.foreground,
                options: cli.helper.options,
                config,
                mountpoint,
            },
            _ => {
                eprintln!("tierfs: expected `tierfs mount CONFIG MOUNTPOINT` (see tierfs --help)");
                return ExitCode::from(2);
            }
        },
    };
    let (config, overrides) = match prepare(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("tierfs: {}", tierfs::error_text(e.as_ref()));
            return ExitCode::from(2);
        }
    };
    init_logging(&config.log_level);
    let result = if args.foreground {
        run_foreground(&config, &args.mountpoint, &overrides)
    } else {
        run_background(&config, &args.mountpoint, &overrides)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tierfs: {}", tierfs::error_text(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// `tierfs generate-assets DIR`: man pages and completions for packaging.
fn generate_assets(dir: &std::path::Path) -> ExitCode {
    use clap::CommandFactory;
    match tierfs::assets::write_assets(Cli::command(), dir) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tierfs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn prepare(args: &MountArgs) -> Result<(Config, MountOverrides)> {
    let config = Config::load(&args.config)?;
    let overrides = parse_mount_options(&args.options)?;
    Ok((config, overrides))
}

fn init_logging(level: &str) {
    // fuser warns about the second unmount attempt after an external `umount`,
    // and notify logs every watch it drops: both are noise at the default level.
    // object_store logs each retry against an unreachable remote; tierfs logs
    // the outcome once, naming the file and the remote.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{level},fuser::session=error,notify=warn,object_store::client::retry=warn"
        ))
    });
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // Errors are also kept in memory for `tierctl status` (errors in 24 h).
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                // One event, one line: names in fields are escaped.
                .with_writer(|| tierfs::escape::LogWriter(std::io::stderr()))
                .with_ansi(false),
        )
        .with(tierfs::activity::ErrorCapture)
        .init();
}

fn run_foreground(
    config: &Config,
    mountpoint: &std::path::Path,
    overrides: &MountOverrides,
) -> Result<()> {
    daemon::block_termination_signals()?;
    daemon::run(config, mountpoint, overrides, |_| {})?;
    Ok(())
}

/// Forks; the child becomes the daemon and reports through a pipe whether the
/// mount came up, and the parent exits with that result.
fn run_background(
    config: &Config,
    mountpoint: &std::path::Path,
    overrides: &MountOverrides,
) -> Result<()> {
    let mountpoint = std::path::absolute(mountpoint).context("resolving the mount point")?;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("creating the start-up pipe");
    }
    // SAFETY: both descriptors were just created and are owned here only.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no other threads exist yet in this process, so fork is safe.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()).context("forking the daemon"),
        0 => {
            drop(read_end);
            let code = daemon_child(config, &mountpoint, overrides, write_end);
            std::process::exit(code);
        }
        _ => {
            drop(write_end);
            let mut answer = String::new();
            std::fs::File::from(read_end)
                .read_to_string(&mut answer)
                .context("waiting for the daemon to start")?;
            match answer.strip_prefix("ok") {
                Some(_) => Ok(()),
                None if answer.is_empty() => bail!("the daemon exited during start-up"),
                None => bail!("{}", answer.trim_end()),
            }
        }
    }
}

fn daemon_child(
    config: &Config,
    mountpoint: &std::path::Path,
    overrides: &MountOverrides,
    status_pipe: OwnedFd,
) -> i32 {
    // SAFETY: setsid/chdir/open/dup2 on our own process; paths are NUL-terminated.
    unsafe {
        libc::setsid();
        libc::chdir(c"/".as_ptr());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::close(null);
        }
    }
    if let Err(e) = daemon::block_termination_signals() {
        let _ = std::fs::File::from(status_pipe).write_all(e.to_string().as_bytes());
        return 1;
    }
    let mut pipe = Some(std::fs::File::from(status_pipe));
    let log_file = config.log_file.clone();
    let report = |status: Result<(), String>| {
        if let Some(mut p) = pipe.take() {
            let ok = status.is_ok();
            let msg = match status {
                Ok(()) => "ok\n".to_string(),
                Err(e) => e,
            };
            if ok {
                // Release the caller's stderr: `out=$(tierfs mount …)` must not
                // wait for the unmount. Logs go to log_file from here on.
                detach_stderr(log_file.as_deref());
            }
            let _ = p.write_all(msg.as_bytes());
        }
    };
    match daemon::run(config, mountpoint, overrides, report) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            1
        }
    }
}

/// Whether fd 2 is a socket: under systemd (a `.mount` unit or a service),
/// stderr is a stream socket into journald, which must stay connected so the
/// daemon's logs reach the journal. A caller's terminal or pipe is not one.
fn stderr_is_socket() -> bool {
    // SAFETY: fstat on fd 2 into a local struct.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(2, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK
    }
}

/// Points fd 2 at `log_file` (appending) or, without one, at /dev/null,
/// unless fd 2 is journald's socket (then the logs keep going there).
fn detach_stderr(log_file: Option<&std::path::Path>) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let target = match log_file {
        // Private whatever the umask; a log left wider by an older version
        // is narrowed (it names every file the daemon worked on).
        Some(path) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .and_then(|f| {
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                Ok(f)
            }),
        None if stderr_is_socket() => return,
        None => std::fs::OpenOptions::new().write(true).open("/dev/null"),
    };
    match target {
        // SAFETY: dup2 onto fd 2 of our own process.
        Ok(f) => unsafe {
            libc::dup2(f.as_raw_fd(), 2);
        },
        Err(e) => tracing::warn!(error = %e, "cannot open the log file; keeping stderr"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fstab_options_are_accepted() {
        let o = parse_mount_options(&[
            "rw,allow_other,_netdev,nofail,x-systemd.automount,dev,suid".into(),
        ])
        .unwrap();
        assert!(o.allow_other);
        assert!(!o.read_only);
        assert_eq!(o.extra, vec![MountOption::Dev, MountOption::Suid]);
    }

    #[test]
    fn unknown_option_is_named() {
        let e = parse_mount_options(&["ro,frobnicate".into()]).unwrap_err();
        assert!(e.to_string().contains("frobnicate"));
    }
}
