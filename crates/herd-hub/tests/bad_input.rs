//! Bad input gets a 4xx with a one-line reason and leaves the repository unchanged.

mod common;

use std::io::Write;

use herd_hub::HubConfig;

const RECEIVE: &str = "application/x-git-receive-pack-request";

#[tokio::test(flavor = "multi_thread")]
async fn each_bad_request_is_a_4xx_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::hub_in(
        dir,
        HubConfig {
            body_limit: 64 << 10,
            ..Default::default()
        },
    )
    .await;
    let addr = s.hub.addr();
    let tip = s.hub.tip().unwrap();
    let zero = "0".repeat(40);
    let other = "1".repeat(40);

    // A real pack cut short.
    let (url, work) = (s.hub.url(), s.dir.path().to_path_buf());
    let seed = tip.clone();
    let good = tokio::task::spawn_blocking(move || {
        let a = common::clone(&url, &work.join("a"));
        let oid = common::commit_file(&a, "slot-0/x.txt", &"x".repeat(5000));
        common::receive_pack_body(&a, &seed, &oid.to_string())
    })
    .await
    .unwrap();
    let truncated = good[..good.len() - 30].to_vec();

    let cmd = |old: &str, new: &str, r: &str| {
        let mut b = Vec::new();
        herd_hub::pkt_line::write(
            &mut b,
            format!("{old} {new} {r}\0report-status\n").as_bytes(),
        );
        herd_hub::pkt_line::flush(&mut b);
        b
    };
    let mut gzip_bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip_bomb.write_all(&vec![b'0'; 1 << 20]).unwrap();
    let gzip_bomb = gzip_bomb.finish().unwrap();

    let before = common::snapshot(s.hub.dir());
    // (name, path, headers, body, expected status, reason must contain)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<u8>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "malformed pkt-line",
            "/herd.git/git-receive-pack",
            vec![("Content-Type", RECEIVE)],
            b"zz01garbage".to_vec(),
            400,
            "malformed pkt-line",
        ),
        (
            "truncated pkt-line",
            "/herd.git/git-receive-pack",
            vec![("Content-Type", RECEIVE)],
            b"00ff0123".to_vec(),
            400,
            "declares 255 bytes",
        ),
        (
            "no pack",
            "/herd.git/git-receive-pack",
            vec![("Content-Type", RECEIVE)],
            cmd(&tip, &other, "refs/heads/main"),
            400,
            "missing or malformed PACK",
        ),
        (
            "truncated pack",
            "/herd.git/git-receive-pack",
            vec![("Content-Type", RECEIVE)],
            truncated,
            400,
            "pack",
        ),
        (
            "wrong content-type",
            "/herd.git/git-receive-pack",
            vec![("Content-Type", "text/plain")],
            cmd(&tip, &zero, "refs/heads/main"),
            415,
            "expected content-type",
        ),
        (
            "body over limit",
            "/herd.git/git-receive-pack",
            vec![("Content-Type", RECEIVE)],
            vec![b'0'; 100 << 10],
            413,
            "",
        ),
        (
            "gzip bomb",
            "/herd.git/git-receive-pack",
            vec![("Content-Type", RECEIVE), ("Content-Encoding", "gzip")],
            gzip_bomb,
            413,
            "limit",
        ),
        (
            "bad slot header",
            "/herd.git/git-receive-pack",
            vec![("Content-Type", RECEIVE), ("x-herd-slot", "../etc")],
            good.clone(),
            400,
            "invalid x-herd-slot",
        ),
        (
            "unknown repository",
            "/other.git/git-receive-pack",
            vec![("Content-Type", RECEIVE)],
            good.clone(),
            404,
            "no repository",
        ),
    ];
    for (name, path, headers, body, status, needle) in cases {
        let (got, reason) = common::http(addr, "POST", path, &headers, &body);
        assert_eq!(got, status, "{name}: {reason}");
        assert!(
            reason.contains(needle),
            "{name}: reason {reason:?} lacks {needle:?}"
        );
        assert!(
            reason.lines().count() <= 1,
            "{name}: reason is one line: {reason:?}"
        );
        assert_eq!(
            common::snapshot(s.hub.dir()),
            before,
            "{name} changed the repository"
        );
    }
    let (got, reason) = common::http(
        addr,
        "GET",
        "/herd.git/info/refs?service=git-frobnicate",
        &[],
        b"",
    );
    assert_eq!(
        (got, reason.trim()),
        (400, "unknown service \"git-frobnicate\"")
    );
    let (got, _) = common::http(addr, "GET", "/herd.git/info/refs", &[], b"");
    assert_eq!(got, 400);

    // Deleting main and pushing another ref: well-formed requests, refused per ref.
    // An empty pack (no objects) for the side ref: its objects already exist.
    let side = [
        cmd(&zero, &tip, "refs/heads/side"),
        b"PACK\0\0\0\x02\0\0\0\0".to_vec(),
        vec![0; 20],
    ]
    .concat();
    for (body, needle) in [
        (
            cmd(&tip, &zero, "refs/heads/main"),
            "deleting the trunk is refused",
        ),
        (side, "ref refs/heads/side refused"),
    ] {
        let (got, report) = common::http(
            addr,
            "POST",
            "/herd.git/git-receive-pack",
            &[("Content-Type", RECEIVE)],
            &body,
        );
        assert_eq!(got, 200);
        assert!(report.contains(needle), "{report:?}");
    }
    assert_eq!(common::snapshot(s.hub.dir()), before);
    assert_eq!(s.hub.tip().unwrap(), tip);
    assert!(s.hub.stats().bad_requests >= 9);
}
