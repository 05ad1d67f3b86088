//! Shared by the root tests: locating (and if stale, rebuilding) the `herd` example, and
//! running it with a clean herd environment.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The example binary cargo built next to this test (`cargo test` builds examples).
pub fn herd_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join("herd");
    // `cargo test` builds the example; `cargo test --test <name>` does not. Rebuild only when a
    // source is newer (an unconditional nested build flips features with the outer cargo).
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if built.is_none_or(|b| newest_source(root) > b) {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", "herd"])
            .status()
            .unwrap();
        assert!(status.success(), "building the herd example failed");
    }
    bin
}

pub fn newest_source(root: &Path) -> std::time::SystemTime {
    fn walk(dir: &Path, newest: &mut std::time::SystemTime) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("target") {
                walk(&path, newest);
            } else if path.extension().is_some_and(|e| e == "rs" || e == "toml")
                && let Ok(modified) = entry.metadata().and_then(|m| m.modified())
            {
                *newest = (*newest).max(modified);
            }
        }
    }
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for dir in ["src", "crates", "examples"] {
        walk(&root.join(dir), &mut newest);
    }
    newest
}

/// A command for the example without HERD_*, NATS_URL or OTEL_* from outside (except where
/// nats-server comes from).
fn herd_command() -> Command {
    let mut cmd = Command::new(herd_bin());
    for (key, _) in std::env::vars() {
        let keep =
            ["HERD_CACHE_DIR", "HERD_NATS_SERVER", "HERD_NATS_NO_INSTALL"].contains(&key.as_str());
        if (key.starts_with("HERD_") && !keep) || key == "NATS_URL" || key.starts_with("OTEL_") {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// Runs the example with a clean herd environment (no HERD_*, NATS_URL or OTEL_* from outside,
/// except where nats-server comes from).
pub fn herd(args: &[&str], env: &[(&str, &str)]) -> Output {
    herd_command()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The example with a clean herd environment, spawned (stdout and stderr piped).
pub fn spawn_herd(args: &[&str]) -> std::process::Child {
    herd_command()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every live descendant of `pid`: (pid, command line).
pub fn descendants(pid: u32) -> Vec<(u32, String)> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((ppid, state)) = stat(p)
            && state != 'Z'
        {
            parent_of.push((p, ppid));
        }
    }
    let mut out: Vec<u32> = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parent_of
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out.into_iter()
        .skip(1)
        .map(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            (p, cmd)
        })
        .collect()
}

/// Is `pid` still running (present and not a zombie)?
pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(_, state)| state != 'Z')
}

/// (parent pid, state) of `pid` from /proc.
fn stat(pid: u32) -> Option<(u32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

/// Waits for `child` to exit, up to `limit`; kills it and panics on timeout.
pub fn wait_exit(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("herd did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A headless browser to load reports in: `HERD_CHROMIUM`, else the first of chromium,
/// chromium-browser, google-chrome on PATH. `None` (the caller skips, saying why) only when no
/// browser exists and `HERD_REQUIRE_BROWSER` is unset — `.ci/run` installs one and sets it.
pub fn browser() -> Option<PathBuf> {
    let found = std::env::var_os("HERD_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            ["chromium", "chromium-browser", "google-chrome"]
                .iter()
                .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
                .find(|p| p.is_file())
        });
    if found.is_none() {
        assert!(
            std::env::var_os("HERD_REQUIRE_BROWSER").is_none(),
            "HERD_REQUIRE_BROWSER is set but no chromium was found (set HERD_CHROMIUM)"
        );
    }
    found
}

/// The DOM of `page` after its scripts ran, as headless chromium dumps it.
pub fn rendered_dom(browser: &Path, page: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        browser.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts a rendered report: the page's script finished (`data-rendered="ok"`), recorded no
/// error, and drew marks in every chart, and the charts named in `charts` are there. Returns
/// the DOM.
pub fn assert_report_renders(page: &Path, charts: &[&str]) -> Option<String> {
    let Some(browser) = browser() else {
        eprintln!(
            "skipped: no headless browser (chromium) on this machine; set HERD_CHROMIUM to one"
        );
        return None;
    };
    assert!(page.is_file(), "{} was not written", page.display());
    let dom = rendered_dom(&browser, page);
    let body = dom
        .split("<body")
        .nth(1)
        .and_then(|b| b.split('>').next())
        .unwrap_or_default();
    assert!(!body.contains("data-errors"), "script errors: <body{body}>");
    assert!(
        body.contains(r#"data-rendered="ok""#),
        "the page's script did not finish: <body{body}>"
    );
    let figures: Vec<&str> = dom
        .split("<figure")
        .skip(1)
        .map(|f| f.split('>').next().unwrap_or_default())
        .collect();
    for chart in charts {
        let tag = figures
            .iter()
            .find(|f| f.contains(&format!(r#"id="{chart}""#)))
            .unwrap_or_else(|| panic!("no chart {chart} in {figures:?}"));
        let points: u64 = tag
            .split(r#"data-points=""#)
            .nth(1)
            .and_then(|p| p.split('"').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        assert!(points > 0, "chart {chart} drew nothing: <figure{tag}>");
    }
    assert_eq!(figures.len(), charts.len(), "{figures:?}");
    Some(dom)
}

/// Runs a trial with `args` into a fresh directory (`--out` added), requires exit 0, and
/// returns the directory, its results.json and stdout.
pub fn trial_ok(args: &[&str]) -> (tempfile::TempDir, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut all = args.to_vec();
    all.extend(["--out", dir.path().to_str().unwrap()]);
    let out = herd(&all, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = std::fs::read_to_string(dir.path().join("results.json")).unwrap();
    (dir, serde_json::from_str(&results).unwrap(), stdout)
}
