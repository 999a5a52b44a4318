//! The tiering subcommands of `tierctl` (`rule`, `migrate`, `recall`, `pin`,
//! `unpin`, `gc`), flattened into its command list.

use std::io::Write;

use clap::Subcommand;
use tierfs::config::Config;

use crate::fsck::FsckArgs;
use crate::gc::GcArgs;
use crate::migrate::MigrateArgs;
use crate::pin::PinArgs;
use crate::recall::RecallArgs;
use crate::rule::RuleCommand;
use crate::verify::VerifyArgs;
use crate::{Outcome, fsck, gc, migrate, pin, recall, rule};

#[derive(Debug, Subcommand)]
pub enum TieringCommand {
    /// Add, list, remove, reorder and test the tiering rules
    ///
    /// Rules decide which files migrate to which remotes, and which never
    /// leave (`pin`). They are evaluated in order; the first match wins,
    /// except that a matching pin always wins. See docs/rules.md for the
    /// language.
    ///
    /// `list`, `test` and `add --dry-run` read the catalog and work while the
    /// daemon is down. `add`, `rm` and `move` go through the daemon, or change
    /// the catalog directly when the daemon is not running.
    ///
    /// Examples:
    ///   tierctl rule add 'accounting/* older 365d -> cloud'
    ///   tierctl rule add --dry-run --position 1 'pin legal/**'
    ///   tierctl rule list
    ///   tierctl rule move 4 1
    ///   tierctl rule rm 2
    ///   tierctl rule test accounting/2019/ledger.xlsx
    #[command(verbatim_doc_comment, subcommand)]
    Rule(RuleCommand),

    /// Migrate the files the rules select now, instead of waiting for the schedule
    ///
    /// Asks the daemon to run a migration and waits for it: every file a rule
    /// selects (not pinned, hot or already uploaded) is uploaded to its
    /// remotes, verified, and released (its local blocks freed, leaving a
    /// stub that is recalled on open). With PATHs, only files at or below
    /// them are considered. PATH is relative to the mount root, or absolute
    /// under the mountpoint or the hot dir.
    ///
    /// On a terminal a progress line is drawn on stderr. At the end: files
    /// and bytes released, bytes uploaded, files skipped (open or changed
    /// meanwhile; tried again next run), failures (each listed), time and
    /// upload throughput.
    ///
    /// Needs the daemon. Exits 1 if any file failed, 2 if a PATH is outside
    /// the mount or unknown to the catalog (then nothing is done).
    ///
    /// Examples:
    ///   tierctl migrate --dry-run
    ///   tierctl migrate
    ///   tierctl migrate projects/2019 /mnt/data/media/old
    ///   tierctl migrate --json | jq .released_bytes
    #[command(verbatim_doc_comment)]
    Migrate(MigrateArgs),

    /// Bring cold files back from the cloud
    ///
    /// Asks the daemon to recall every cold file at or below each PATH (files
    /// or whole directories) and waits for it. Recalled files stay linked to
    /// their cloud copy, so a later migration releases them again without
    /// uploading. PATH is relative to the mount root, or absolute under the
    /// mountpoint or the hot dir.
    ///
    /// On a terminal a progress line is drawn on stderr. Needs the daemon.
    /// Exits 1 if any file failed, 2 if a PATH is outside the mount or
    /// unknown to the catalog (then nothing is done).
    ///
    /// Examples:
    ///   tierctl recall projects/2019/report.pdf
    ///   tierctl recall /mnt/data/media/film
    ///   tierctl recall --json projects | jq .failures
    #[command(verbatim_doc_comment)]
    Recall(RecallArgs),

    /// Keep files local: never migrate them, whatever the rules say
    ///
    /// Pins every file at or below each PATH that the catalog knows now.
    /// Files created later are not pinned: to keep a whole tree local for
    /// good, add a rule instead (`tierctl rule add 'pin legal/**'`). Pinning
    /// a cold file does not recall it (see `tierctl recall`).
    ///
    /// Needs the daemon. Prints how many files changed.
    ///
    /// Examples:
    ///   tierctl pin legal/contracts
    ///   tierctl pin /mnt/data/projects/current/model.bin
    #[command(verbatim_doc_comment)]
    Pin(PinArgs),

    /// Undo `tierctl pin`: let the rules decide again
    ///
    /// Clears the pin on every file at or below each PATH. Needs the daemon.
    /// Prints how many files changed.
    ///
    /// Examples:
    ///   tierctl unpin legal/contracts
    #[command(verbatim_doc_comment)]
    Unpin(PinArgs),

    /// Delete cloud objects that no file uses any more
    ///
    /// An object becomes unreferenced when its file is deleted, changed or
    /// recalled and rewritten. It is deleted once it has been unreferenced
    /// for the grace period (--grace, default gc_grace from the config,
    /// normally 30d), which leaves time to notice mistakes. The daemon also
    /// does this after each scheduled migration.
    ///
    /// Needs the daemon. Exits 1 if a deletion failed.
    ///
    /// Examples:
    ///   tierctl gc
    ///   tierctl gc --grace 7d
    ///   tierctl gc --json | jq .deleted_bytes
    #[command(verbatim_doc_comment)]
    Gc(GcArgs),

    /// Check that the catalog, the hot dir and the remotes agree
    ///
    /// Checks every catalogued file against its inode in the hot dir (stubs
    /// where the catalog says cold, and nowhere else), and every recorded
    /// object against the remotes' listings (present, right size); reports
    /// objects the catalog does not know. With --repair it fixes what can be
    /// fixed without guessing and says what it did; problems that may mean
    /// lost data are listed for a human.
    ///
    /// Works with the daemon running (through it) or stopped (on its own).
    /// Exits 0 when clean (or everything was repaired), 1 otherwise.
    ///
    /// Examples:
    ///   tierctl fsck
    ///   tierctl fsck --repair
    ///   tierctl fsck --json | jq .problems
    #[command(verbatim_doc_comment)]
    Fsck(FsckArgs),

    /// Read cold objects back and check them against their recorded blake3
    ///
    /// For every premigrated or cold file at or below each PATH (default:
    /// all), reads each of its cloud copies with ranged GETs, one 4 MiB chunk
    /// at a time, checking every chunk and the whole object against the
    /// hashes recorded at upload. Reports every missing, corrupt or
    /// unreadable object with all the paths whose content it holds, and
    /// whether another copy (a mirror) is still good. --rate caps the read
    /// rate. On a terminal a progress line is drawn on stderr.
    ///
    /// Reads only the catalog and the remotes: works with or without the
    /// daemon and changes nothing. Exits 0 when every object is good, 1
    /// otherwise.
    ///
    /// Examples:
    ///   tierctl verify
    ///   tierctl verify projects/2019 --rate 20MiB
    ///   tierctl verify --json | jq '.problems[].paths'
    #[command(verbatim_doc_comment)]
    Verify(VerifyArgs),
}

impl TieringCommand {
    /// Runs the command, writing its report to `out`.
    pub fn run(&self, config: &Config, out: &mut impl Write) -> anyhow::Result<Outcome> {
        match self {
            TieringCommand::Rule(command) => rule::run(config, command, out),
            TieringCommand::Migrate(args) => migrate::run(config, args, out),
            TieringCommand::Recall(args) => recall::run(config, args, out),
            TieringCommand::Pin(args) => pin::run(config, args, true, out),
            TieringCommand::Unpin(args) => pin::run(config, args, false, out),
            TieringCommand::Gc(args) => gc::run(config, args, out),
            TieringCommand::Fsck(args) => fsck::run(config, args, out),
            TieringCommand::Verify(args) => crate::verify::run(config, args, out),
        }
    }
}
