//! `tierctl`: inspect and control a tierfs daemon.
//!
//! Exit status: 0 on success, 1 on a runtime error, 2 on a usage or
//! configuration error.

//! The commands live in the modules below, all binary-side (the library
//! needs nothing from them). They depend on each other one way only:
//!
//! * leaves: `outcome`, `human`, `table`, `config_path`, `mount_path`;
//! * `daemon` (talking to the daemon) uses the leaves;
//! * `paths` (PATH arguments, read-only catalog) uses `daemon`;
//! * the commands (`status`, `rule`, `migrate`, …) use all of the above,
//!   and `cost_report` also uses `rule`;
//! * `main` parses the command line and dispatches.

mod config_path;
mod cost_report;
mod daemon;
mod dr;
mod fsck;
mod gc;
mod human;
mod migrate;
mod mount_path;
mod outcome;
mod paths;
mod pin;
mod recall;
mod remote;
mod remote_health;
mod rule;
mod status;
mod table;
mod tiering;
mod verify;

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tierfs::config::{Config, ConfigError};

use config_path::{CONFIG_ENV, ConfigNotFound, locate_config};
use outcome::{Outcome, UsageError};

/// Exit status for runtime errors.
const EXIT_RUNTIME: u8 = 1;
/// Exit status for usage and config errors (as clap uses for bad arguments).
const EXIT_USAGE: u8 = 2;

/// Inspect and control a tierfs tiering gateway
///
/// tierctl reports on a tierfs mount: whether its daemon is running, and what
/// the catalog knows about files and their storage states. Read-only commands
/// read the catalog file directly, so they work while the daemon is stopped.
/// It also manages tiering: the rules that pick files to migrate, migrations
/// and recalls on demand, pins, and garbage collection of cloud objects.
///
/// tierctl reads the daemon's config file: --config PATH, else
/// $TIERFS_CONFIG, else /etc/tierfs/tierfs.toml.
///
/// Examples:
///   tierctl status
///   tierctl status --json
///   tierctl -c /etc/tierfs/archive.toml status projects/2023/report.pdf
///   tierctl rule add --dry-run 'accounting/* older 365d -> cloud'
///   tierctl migrate
///   tierctl recall projects/2019
///
/// Exit status: 0 success, 1 runtime error, 2 usage or config error.
#[derive(Debug, Parser)]
#[command(name = "tierctl", version, verbatim_doc_comment)]
struct Cli {
    /// The tierfs config file [default: $TIERFS_CONFIG, else /etc/tierfs/tierfs.toml]
    #[arg(short = 'c', long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the daemon's state and catalog totals, or one file's entry
    ///
    /// Without PATH: whether the daemon is running (pid, mountpoint, uptime,
    /// passthrough, pending catalog updates), then the catalog's location,
    /// schema version, size on disk, and its files and bytes per state.
    ///
    /// With PATH: that file's catalog entry (state, size, modification time,
    /// last access). PATH is relative to the mount root (not to the current
    /// directory), or an absolute path under the mountpoint or the hot dir.
    ///
    /// The catalog is read directly, so this works while the daemon is down.
    /// Exits 1 if the daemon does not answer properly or the catalog cannot be
    /// read; "not running" and "not in catalog" are answers, not errors.
    ///
    /// Examples:
    ///   tierctl status
    ///   tierctl status --json | jq .catalog.total_bytes
    ///   tierctl status projects/2023/report.pdf
    ///   tierctl status /mnt/data/projects/2023/report.pdf
    #[command(verbatim_doc_comment)]
    Status(StatusArgs),

    /// List the configured object stores, or check one end to end
    ///
    /// `remote list` shows every [remote.NAME] section: URL, endpoint,
    /// storage class and where the credentials come from (never the secrets).
    /// Exits 1 if a remote is unusable (e.g. it has no credentials).
    ///
    /// `remote test NAME` connects to the store, checks the credentials with a
    /// listing, then writes, reads back and deletes a probe object under
    /// <prefix>/probe/, timing each step. It stops at the first failure and
    /// says what to fix. Exits 0 if every step passed, 1 otherwise.
    ///
    /// Examples:
    ///   tierctl remote list
    ///   tierctl remote list --json
    ///   tierctl remote test cloud
    ///   tierctl remote test cloud --json | jq .ok
    #[command(verbatim_doc_comment, subcommand)]
    Remote(RemoteCommand),

    /// rule, migrate, recall, pin, unpin, gc (see tiering.rs)
    #[command(flatten)]
    Tiering(tiering::TieringCommand),

    /// What the data costs, local vs cloud, and what each rule saves
    ///
    /// Prices local storage (bytes not in the cloud × [cost]
    /// local_per_tb_month, default $12/TB-month) and every remote and
    /// storage class: storage of the objects the catalog records, and the
    /// requests, egress, retrieval and early-deletion charges of the traffic
    /// the daemon recorded in the --period. Then the same data kept all
    /// local and all in the cloud, the monthly and yearly savings, a
    /// breakdown by rule and by top-level directory, and the files whose
    /// recalls cost the most (candidates for `tierctl pin`).
    ///
    /// Prices come from the catalog shipped with tierfs (list prices with
    /// their date and source), overridden by [cost] prices and --prices.
    /// Reads the catalog only; works while the daemon is down.
    /// Formulas and units: docs/cost.md.
    ///
    /// Examples:
    ///   tierctl cost-report
    ///   tierctl cost-report --format html > cost.html
    ///   tierctl cost-report --format json | jq .savings_yearly
    ///   tierctl cost-report --what-if 'media/** unaccessed 90d -> cloud'
    ///   tierctl cost-report --scale 1PB --prices my-prices.toml
    #[command(verbatim_doc_comment)]
    CostReport(cost_report::CostReportArgs),
    /// Write man pages and shell completions to DIR (for packaging)
    #[command(hide = true)]
    GenerateAssets {
        /// Output directory (created if missing)
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// backup, rebuild (see dr.rs)
    #[command(flatten)]
    Dr(dr::DrCommand),
}

#[derive(Debug, Subcommand)]
enum RemoteCommand {
    /// List the configured remotes (no secrets)
    ///
    /// One row per [remote.NAME] section: URL, endpoint, storage class and
    /// where the credentials come from. Exits 1 if a remote is unusable.
    ///
    /// Examples:
    ///   tierctl remote list
    ///   tierctl remote list --json | jq '.remotes[].name'
    #[command(verbatim_doc_comment)]
    List {
        /// Print one JSON object instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Check a remote: connect, credentials, write, read back, delete
    ///
    /// Connects to the store, checks the credentials with a listing, then
    /// writes, reads back and deletes a probe object under <prefix>/probe/,
    /// timing each step. Stops at the first failure and says what to fix.
    /// Exits 0 if every step passed, 1 otherwise.
    ///
    /// Examples:
    ///   tierctl remote test cloud
    ///   tierctl remote test cloud --json | jq .ok
    #[command(verbatim_doc_comment)]
    Test {
        /// The remote's name (its [remote.NAME] section)
        #[arg(value_name = "NAME")]
        name: String,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,

    /// A file to show, relative to the mount root or absolute under the mountpoint or hot dir
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = BufWriter::new(io::stdout().lock());
    let result = run(&cli, &mut out).and_then(|outcome| {
        out.flush()?;
        Ok(outcome)
    });
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failure) => ExitCode::from(EXIT_RUNTIME),
        // The reader went away (e.g. `| head`): nothing left to say.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = out.flush();
            // Each cause once (error_text); names inside are escaped where
            // they are formatted, and this catches anything that still
            // carries a control character.
            let message = tierfs::error_text(err.as_ref());
            eprintln!("tierctl: {}", tierfs::escape::escape_controls(&message));
            ExitCode::from(exit_code(&err))
        }
    }
}

/// Runs the chosen subcommand, writing its report to `out`.
fn run(cli: &Cli, out: &mut impl Write) -> anyhow::Result<Outcome> {
    if let Command::GenerateAssets { dir } = &cli.command {
        use clap::CommandFactory;
        for path in tierfs::assets::write_assets(Cli::command(), dir)? {
            writeln!(out, "{}", path.display())?;
        }
        return Ok(Outcome::Success);
    }
    if let Command::Dr(dr::DrCommand::Keygen(args)) = &cli.command {
        return dr::keygen(args, out);
    }
    let config = load_config(cli.config.as_deref())?;
    match &cli.command {
        Command::Status(args) => match &args.path {
            None => status::overview(&config, args.json, out),
            Some(path) => status::file(&config, path, args.json, out),
        },
        Command::Remote(RemoteCommand::List { json }) => remote::list(&config, *json, out),
        Command::Remote(RemoteCommand::Test { name, json }) => {
            remote::test(&config, name, *json, out)
        }
        Command::Tiering(command) => command.run(&config, out),
        Command::CostReport(args) => cost_report::run(&config, args, out),
        Command::GenerateAssets { .. } => Ok(Outcome::Success),
        Command::Dr(command) => command.run(&config, out),
    }
}

/// Finds and loads the config file (see [`locate_config`]).
fn load_config(flag: Option<&Path>) -> anyhow::Result<Config> {
    let (path, _origin) = locate_config(flag, std::env::var_os(CONFIG_ENV))?;
    Ok(Config::load(&path)?)
}

/// Usage and config errors exit with 2, everything else with 1.
fn exit_code(err: &anyhow::Error) -> u8 {
    let usage = err
        .chain()
        .any(|e| e.is::<ConfigError>() || e.is::<ConfigNotFound>() || e.is::<UsageError>());
    if usage { EXIT_USAGE } else { EXIT_RUNTIME }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_flag_is_global() {
        let cli = Cli::try_parse_from(["tierctl", "status", "-c", "/x.toml", "--json"]).unwrap();
        assert_eq!(cli.config.as_deref(), Some(Path::new("/x.toml")));
        let Command::Status(args) = cli.command else {
            panic!("expected status");
        };
        assert!(args.json && args.path.is_none());
    }

    #[test]
    fn remote_subcommands_parse() {
        let cli = Cli::try_parse_from(["tierctl", "remote", "test", "cloud", "--json"]).unwrap();
        match cli.command {
            Command::Remote(RemoteCommand::Test { name, json }) => {
                assert_eq!(name, "cloud");
                assert!(json);
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["tierctl", "remote", "list"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Remote(RemoteCommand::List { json: false })
        ));
    }

    #[test]
    fn usage_errors_exit_2() {
        let err = anyhow::Error::new(UsageError("bad path".into()));
        assert_eq!(exit_code(&err), EXIT_USAGE);
        let err = anyhow::anyhow!("disk on fire");
        assert_eq!(exit_code(&err), EXIT_RUNTIME);
    }
}
