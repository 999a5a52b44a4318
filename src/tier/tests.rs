//! Engine tests on an in-memory object store: planning, migration with the
//! recheck, recall and garbage collection, without a mount.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use super::planner;
use super::*;
use crate::catalog::tiering::RuleRow;
use crate::catalog::{CatalogOptions, FileEvent};
use crate::events::{Event, Events, Recorder};

#[derive(Default)]
struct Keep(Mutex<Vec<Event>>);

impl Recorder for Keep {
    fn record(&self, event: &Event) {
        self.0.lock().push(event.clone());
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    catalog: Catalog,
    events: Arc<Keep>,
    tier: Tier,
}

impl Fixture {
    fn new(rule: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let hot = dir.path().join("hot");
        std::fs::create_dir_all(hot.join("docs")).unwrap();
        let opts = CatalogOptions {
            hot_dir: Some(hot.clone()),
            ..CatalogOptions::default()
        };
        let catalog = Catalog::open(&dir.path().join("c.db"), opts).unwrap();
        let text = rule.to_string();
        catalog
            .exec("add rule", move |c| tiering::add_rule(c, &text, None, 1))
            .unwrap();
        let remote = Remote::in_memory("cloud", dir.path());
        let remotes = BTreeMap::from([("cloud".to_string(), remote)]);
        let events = Arc::new(Keep::default());
        let sink = Events::new(vec![events.clone()]);
        let tier =
            Tier::with_parts(&hot, catalog.clone(), remotes, Default::default(), sink).unwrap();
        Fixture {
            dir,
            catalog,
            events,
            tier,
        }
    }

    fn hot(&self, rel: &str) -> PathBuf {
        self.dir.path().join("hot").join(rel)
    }

    /// Writes `rel` beside the mount and catalogues the hot dir.
    fn write(&self, rel: &str, data: &[u8]) {
        std::fs::write(self.hot(rel), data).unwrap();
        self.catalog
            .reconcile(&self.dir.path().join("hot"))
            .unwrap();
    }

    fn billed(&self, op: &str) -> u64 {
        let events = self.events.0.lock();
        events
            .iter()
            .filter(|e| matches!(e, Event::Billed(b) if b.op == op))
            .count() as u64
    }
}

fn row(id: i64, path: &str, state: FileState, ino: u64, pinned: bool) -> TierFile {
    TierFile {
        id,
        path: PathBuf::from(path),
        size: 10,
        mtime_ns: 0,
        last_access_ns: None,
        state,
        pinned,
        generation: 0,
        blake3: None,
        ino,
    }
}

#[test]
fn the_planner_selects_each_movable_file_once() {
    let rules = planner::rule_set(vec![RuleRow {
        id: 7,
        position: 1,
        text: "docs/* -> cloud".into(),
    }]);
    let files = vec![
        row(1, "docs/a", FileState::Hot, 1, false),
        row(2, "docs/b", FileState::Premigrated, 2, false),
        row(3, "docs/c", FileState::Hot, 3, true),
        row(4, "docs/d", FileState::Hot, 1, false),
        row(5, "other/e", FileState::Hot, 5, false),
    ];
    let paths = |plan: planner::Plan| -> Vec<String> {
        assert_eq!(plan.rule_ids, [7]);
        plan.files
            .iter()
            .map(|p| p.file.path.display().to_string())
            .collect()
    };
    let now = SystemTime::now();
    let all = planner::plan(
        rules.clone(),
        files.clone(),
        &MigrateRequest::default(),
        now,
    );
    assert!(all.files.iter().all(|p| p.rule_id == 7));
    assert_eq!(paths(all), ["docs/a", "docs/b"]);
    let req = MigrateRequest {
        paths: vec!["docs/b".into()],
        dry_run: false,
    };
    assert_eq!(paths(planner::plan(rules, files, &req, now)), ["docs/b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_file_is_recalled_and_its_object_collected() {
    let fx = Fixture::new("docs/* -> cloud");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    fx.write("docs/a", &data);
    let s = fx.tier.migrate(MigrateRequest::default()).await.unwrap();
    assert_eq!(
        (s.released, s.uploaded_bytes),
        (1, data.len() as u64),
        "{s:?}"
    );
    assert!(s.failures.is_empty() && s.skips.is_empty(), "{s:?}");
    assert_eq!(fx.tier.state_of(Path::new("docs/a")), Some(FileState::Cold));
    assert!(fx.tier.is_stub_path(Path::new("docs/a")));
    assert_eq!(fx.billed("put"), 1);
    assert!(matches!(
        fx.events.0.lock().last(),
        Some(Event::RuleRuns(runs)) if runs[0].released == 1
    ));

    let n = fx.tier.recall(Path::new("docs/a")).await.unwrap();
    assert_eq!(n, data.len() as u64);
    assert_eq!(std::fs::read(fx.hot("docs/a")).unwrap(), data);
    assert_eq!(
        fx.tier.state_of(Path::new("docs/a")),
        Some(FileState::Premigrated)
    );
    assert!(
        fx.events
            .0
            .lock()
            .iter()
            .any(|e| matches!(e, Event::Recalled { ok: true, .. }))
    );

    std::fs::remove_file(fx.hot("docs/a")).unwrap();
    fx.catalog.send(FileEvent::Gone {
        path: "docs/a".into(),
    });
    let g = fx.tier.gc(Duration::ZERO).await.unwrap();
    assert_eq!((g.unreferenced, g.deleted), (1, 1), "{g:?}");
    assert_eq!(fx.billed("delete"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_rechecks_planned_files_when_it_opens_them() {
    let fx = Fixture::new("docs/* -> cloud");
    fx.write("docs/gone", b"gone");
    fx.write("docs/grown", b"short");
    fx.write("docs/same", b"same");
    let req = MigrateRequest::default();
    let (rows, files) = fx
        .catalog
        .exec_grouped("list migration candidates", candidates)
        .unwrap();
    let plan = planner::plan(planner::rule_set(rows), files, &req, SystemTime::now());
    assert_eq!(plan.files.len(), 3);
    // The tree changes after the plan, before the migration reaches the files.
    std::fs::remove_file(fx.hot("docs/gone")).unwrap();
    std::fs::write(fx.hot("docs/grown"), b"much longer now").unwrap();

    let mut s = MigrateSummary::default();
    let run = fx.tier.migrator.run(&fx.tier.core, plan, &mut s).await;
    assert!(s.failures.is_empty(), "{s:?}");
    assert_eq!(run.transient, 0);
    assert_eq!(
        s.skips,
        [Skipped {
            path: "docs/gone".into(),
            reason: SkipReason::Vanished
        }]
    );
    assert_eq!((s.released, s.skipped), (2, 1), "{s:?}");
    // The changed file was migrated as it is now.
    assert_eq!(
        s.released_bytes,
        (b"much longer now".len() + b"same".len()) as u64
    );
    let file = std::fs::File::open(fx.hot("docs/grown")).unwrap();
    let marker = stub::read_marker(std::os::fd::AsFd::as_fd(&file))
        .unwrap()
        .unwrap();
    assert_eq!(marker.size, b"much longer now".len() as u64);
    assert_eq!(
        fx.tier.state_of(Path::new("docs/grown")),
        Some(FileState::Cold)
    );
}
