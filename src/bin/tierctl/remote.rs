//! `tierctl remote list` and `tierctl remote test NAME`: the configured
//! object stores, and a step-by-step check of one of them.
//!
//! Neither needs the daemon. Secrets are never printed: only where the
//! credentials come from.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tierfs::config::{Config, RemoteConfig};
use tierfs::remote::{Remote, RemoteTestReport, StepStatus};

use crate::table::{Align, Table};
use crate::{Outcome, UsageError, human};

/// One remote as `remote list --json` shows it.
#[derive(Debug, Serialize)]
struct RemoteJson {
    name: String,
    url: String,
    /// `s3`, `gcs`, `azure`, `file`; absent if the section is unusable.
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    storage_class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_concurrency: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_timeout_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    part_size: Option<String>,
    /// Where the credentials come from (never the secrets themselves).
    #[serde(skip_serializing_if = "Option::is_none")]
    credentials: Option<String>,
    /// Why the remote cannot be used, if it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl RemoteJson {
    fn new(cfg: &RemoteConfig) -> RemoteJson {
        let built = Remote::from_config(cfg);
        let remote = built.as_ref().ok();
        RemoteJson {
            name: cfg.name.clone(),
            url: cfg.url.clone(),
            kind: remote.map(|r| r.kind()),
            endpoint: remote.map(|r| r.endpoint()),
            region: cfg.region.clone(),
            storage_class: cfg.storage_class.clone(),
            max_concurrency: remote.map(|r| r.max_concurrency()),
            request_timeout_secs: remote.map(|r| r.request_timeout().as_secs_f64()),
            part_size: cfg.part_size.clone(),
            credentials: remote.map(|r| r.credential_source().to_string()),
            error: built.err().map(|e| e.to_string()),
        }
    }
}

#[derive(Debug, Serialize)]
struct ListJson {
    config: String,
    remotes: Vec<RemoteJson>,
}

/// `tierctl remote list`: every `[remote.NAME]` section. Exits 1 if any of
/// them is unusable (e.g. no credentials), after listing them all.
pub fn list(config: &Config, json: bool, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let remotes: Vec<RemoteJson> = config.remotes.values().map(RemoteJson::new).collect();
    let healthy = remotes.iter().all(|r| r.error.is_none());
    if json {
        let doc = ListJson {
            config: config.source.display().to_string(),
            remotes,
        };
        serde_json::to_writer_pretty(&mut *out, &doc).context("cannot encode JSON output")?;
        writeln!(out)?;
    } else if remotes.is_empty() {
        writeln!(
            out,
            "no remotes configured (add a [remote.NAME] section to {})",
            config.source.display()
        )?;
    } else {
        let mut table = Table::new(&[
            ("NAME", Align::Left),
            ("URL", Align::Left),
            ("ENDPOINT", Align::Left),
            ("CLASS", Align::Left),
            ("CREDENTIALS", Align::Left),
        ]);
        let dash = || "-".to_string();
        for r in &remotes {
            table.row(vec![
                r.name.clone(),
                r.url.clone(),
                r.endpoint.clone().unwrap_or_else(dash),
                r.storage_class.clone().unwrap_or_else(dash),
                match (&r.credentials, &r.error) {
                    (Some(c), _) => c.clone(),
                    (None, Some(_)) => "UNUSABLE (see below)".into(),
                    (None, None) => dash(),
                },
            ]);
        }
        table.write(out)?;
        for r in &remotes {
            if let Some(e) = &r.error {
                writeln!(out, "\nerror: {e}")?;
            }
        }
    }
    Ok(if healthy {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}

/// `tierctl remote test NAME`: connect, check credentials, write, read
/// back and delete a probe object. Exits 1 if a step fails.
pub fn test(
    config: &Config,
    name: &str,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let cfg = config.remotes.get(name).ok_or_else(|| {
        let known: Vec<&str> = config.remotes.keys().map(String::as_str).collect();
        UsageError(if known.is_empty() {
            format!(
                "no remote `{name}`: {} has no [remote.NAME] section",
                config.source.display()
            )
        } else {
            format!(
                "no remote `{name}` in {} (configured: {})",
                config.source.display(),
                known.join(", ")
            )
        })
    })?;
    let remote = Remote::from_config(cfg).map_err(|e| UsageError(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(remote.self_test());
    if json {
        serde_json::to_writer_pretty(&mut *out, &report).context("cannot encode JSON output")?;
        writeln!(out)?;
    } else {
        write_report(out, &report)?;
    }
    Ok(if report.ok {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}

fn write_report(out: &mut impl Write, report: &RemoteTestReport) -> std::io::Result<()> {
    writeln!(out, "remote `{}`: {}", report.remote, report.target)?;
    let name_width = report.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let times: Vec<String> = report
        .steps
        .iter()
        .map(|s| match s.status {
            StepStatus::Skipped => String::new(),
            _ => millis(s.millis),
        })
        .collect();
    let time_width = times.iter().map(String::len).max().unwrap_or(0);
    for (step, time) in report.steps.iter().zip(&times) {
        let mark = match step.status {
            StepStatus::Ok => "✓",
            StepStatus::Failed => "✗",
            StepStatus::Skipped => "-",
        };
        let detail = match step.status {
            StepStatus::Skipped => "skipped",
            _ => step.detail.as_str(),
        };
        writeln!(
            out,
            "  {mark} {:<name_width$}  {time:>time_width$}  {detail}",
            step.name
        )?;
    }
    let total: f64 = report.steps.iter().map(|s| s.millis).sum();
    if report.ok {
        writeln!(
            out,
            "ok: all {} steps passed in {}",
            report.steps.len(),
            millis(total)
        )?;
    } else {
        let failed = report
            .steps
            .iter()
            .find(|s| s.status == StepStatus::Failed)
            .map(|s| s.name.as_str())
            .unwrap_or("?");
        writeln!(out, "FAILED at step `{failed}`")?;
    }
    Ok(())
}

/// `0.4 ms`, `12 ms`, `3.2 s`.
fn millis(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0} ms")
    } else {
        human::duration(Duration::from_secs_f64(ms / 1000.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tierfs::remote::TestStep;

    #[test]
    fn report_text_marks_steps() {
        let step = |name: &str, status, detail: &str| TestStep {
            name: name.into(),
            status,
            millis: 1.25,
            detail: detail.into(),
            error_kind: None,
        };
        let report = RemoteTestReport {
            remote: "cloud".into(),
            target: "s3://b/p at http://x".into(),
            ok: false,
            steps: vec![
                step("connect", StepStatus::Ok, "connected"),
                step("credentials", StepStatus::Failed, "rejected"),
                step("write", StepStatus::Skipped, "not run"),
            ],
        };
        let mut out = Vec::new();
        write_report(&mut out, &report).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("✓ connect"), "{text}");
        assert!(text.contains("✗ credentials"), "{text}");
        assert!(
            text.contains("- write") && text.contains("skipped"),
            "{text}"
        );
        assert!(text.contains("FAILED at step `credentials`"), "{text}");
    }

    #[test]
    fn millis_are_readable() {
        assert_eq!(millis(0.42), "0.4 ms");
        assert_eq!(millis(123.4), "123 ms");
        assert_eq!(millis(12_500.0), "12s");
    }
}
