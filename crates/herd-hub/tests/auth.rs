//! Slot tokens: with tokens configured, a push needs one; the slot comes from the token, not
//! from a header; anonymous clients can still clone and fetch. Tried with libgit2 and with the
//! stock `git` CLI (a Bearer header, and the token as a URL password after a 401 challenge).

mod common;

use herd_hub::{Access, HubConfig, Tokens};

async fn token_hub() -> (common::Setup, Tokens) {
    let tokens = Tokens::generate(&["slot-a", "slot-b"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = common::hub_in(
        dir,
        HubConfig {
            access: Access::Tokens(tokens.clone()),
            ..Default::default()
        },
    )
    .await;
    (s, tokens)
}

#[tokio::test(flavor = "multi_thread")]
async fn libgit2_pushes_need_a_token_and_the_token_decides_the_slot() {
    let (s, tokens) = token_hub().await;
    let (url, work) = (s.hub.url(), s.dir.path().to_path_buf());
    let a = format!("Bearer {}", tokens.token_for("slot-a").unwrap());
    let tip = s.hub.tip().unwrap();
    let results = tokio::task::spawn_blocking(move || {
        // Anonymous clone works; anonymous push does not.
        let r = common::clone(&url, &work.join("r"));
        common::commit_file(&r, "slot-a/a.txt", "a\n");
        let anonymous = common::push_with(&r, &[("x-herd-slot", "slot-a")]);
        let unknown = common::push_with(&r, &[("authorization", "Bearer 1234")]);
        // slot-a's token naming slot-b in the header.
        let mismatch = common::push_with(&r, &[("authorization", &a), ("x-herd-slot", "slot-b")]);
        // slot-a's token writing in slot-b: the token's slot is the one checked.
        let r2 = common::clone(&url, &work.join("r2"));
        common::commit_file(&r2, "slot-b/b.txt", "b\n");
        let outside = common::push_with(&r2, &[("authorization", &a)]);
        // And the right token lands.
        let ok = common::push_with(&r, &[("authorization", &a)]);
        (anonymous, unknown, mismatch, outside, ok)
    })
    .await
    .unwrap();
    let (anonymous, unknown, mismatch, outside, ok) = results;
    assert!(anonymous.is_err(), "anonymous push: {anonymous:?}");
    assert!(unknown.is_err(), "unknown token: {unknown:?}");
    assert!(mismatch.is_err(), "mismatched slot: {mismatch:?}");
    let outside = outside.unwrap_err();
    assert!(outside.contains("outside slot slot-a"), "{outside}");
    ok.unwrap();
    assert_ne!(s.hub.tip().unwrap(), tip);
    assert_eq!(s.hub.trunk_len(), 2, "only the authorised push landed");
    let stats = s.hub.stats();
    assert!(stats.pushes_denied >= 3, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_git_cli_pushes_with_a_bearer_header_or_url_credentials_only() {
    let (s, tokens) = token_hub().await;
    let (url, work) = (s.hub.url(), s.dir.path().to_path_buf());
    let token = tokens.token_for("slot-a").unwrap();
    let landed = tokio::task::spawn_blocking(move || {
        let (ok, out) = common::git(&work, &["clone", &url, "c"]);
        assert!(ok, "anonymous clone: {out}");
        let c = work.join("c");
        std::fs::create_dir_all(c.join("slot-a")).unwrap();
        std::fs::write(c.join("slot-a/cli.txt"), "cli\n").unwrap();
        assert!(common::git(&c, &["add", "."]).0 && common::git(&c, &["commit", "-m", "cli"]).0);

        let (ok, out) = common::git(&c, &["push", "origin", "main"]);
        assert!(!ok, "an anonymous push must fail: {out}");
        // The 401 makes git ask for credentials, which it cannot (prompts are off here).
        assert!(
            out.contains("401") || out.contains("could not read Username"),
            "{out}"
        );

        let header = format!("http.extraHeader=Authorization: Bearer {token}");
        let (ok, out) = common::git(&c, &["-c", &header, "push", "origin", "main"]);
        assert!(ok, "push with a bearer header: {out}");

        std::fs::write(c.join("slot-a/cli2.txt"), "cli 2\n").unwrap();
        assert!(common::git(&c, &["add", "."]).0 && common::git(&c, &["commit", "-m", "cli 2"]).0);
        let with_password = url.replacen("http://", &format!("http://leaf:{token}@"), 1);
        let (ok, out) = common::git(&c, &["push", &with_password, "main"]);
        assert!(ok, "push with the token as a URL password: {out}");
        let (_, head) = common::git(&c, &["rev-parse", "HEAD"]);
        head.trim().to_string()
    })
    .await
    .unwrap();
    assert_eq!(s.hub.tip().unwrap(), landed);
    assert_eq!(s.hub.trunk_len(), 3);
}
