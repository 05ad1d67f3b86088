//! Property tests of everything that parses bytes a client sends: the pkt-line reader, the
//! receive-pack command parser, the tree rules and the pack reader. Arbitrary and mutated
//! inputs never panic and never hang; well-formed inputs round-trip; every `.git`-like or
//! otherwise forbidden name is refused wherever it sits. (cargo-fuzz needs a nightly compiler
//! this project's CI does not install, so these run as proptest properties on stable: 256
//! cases each in `cargo test`, more with `PROPTEST_CASES=100000`; a failure is saved as a seed
//! under `proptest-regressions/` — commit it, and every later run replays it first.)

use git2::{ObjectType, Oid};
use herd_hub::pack::{Limits, PackError, read_limited};
use herd_hub::pkt_line::{self, Pkt, PktReader};
use herd_hub::{receive_pack, tree_rules};
use proptest::prelude::*;

/// Reads packets until the end or an error; the count is bounded by the input size.
fn drain(bytes: &[u8]) -> usize {
    let mut reader = PktReader::new(bytes);
    let mut n = 0;
    while let Ok(Some(_)) = reader.next_pkt() {
        n += 1;
        assert!(n <= bytes.len() / 4 + 1, "the reader does not advance");
    }
    n
}

fn oid() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<u8>(), 20)
        .prop_map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
}

fn push_body(commands: &[(String, String, String)], caps: &str, pack: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (old, new, refname)) in commands.iter().enumerate() {
        let line = if i == 0 {
            format!("{old} {new} {refname}\0{caps}\n")
        } else {
            format!("{old} {new} {refname}\n")
        };
        pkt_line::write(&mut body, line.as_bytes());
    }
    pkt_line::flush(&mut body);
    body.extend_from_slice(pack);
    body
}

/// A name the tree rules must accept.
fn good_name() -> impl Strategy<Value = Vec<u8>> {
    "[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,12}".prop_map(String::into_bytes)
}

/// A name the tree rules must refuse, in the spellings checkouts resolve to `.git`.
fn bad_name() -> impl Strategy<Value = Vec<u8>> {
    let dotgit = (
        proptest::sample::select(vec![".git", "git~1"]),
        proptest::collection::vec(any::<bool>(), 5),
        "[. ]{0,3}(:[a-zA-Z$]{0,6})?",
    )
        .prop_map(|(stem, upper, tail)| {
            let cased: String = stem
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, u)| if *u { c.to_ascii_uppercase() } else { c })
                .collect();
            format!("{cased}{tail}").into_bytes()
        });
    prop_oneof![
        dotgit,
        Just(b".git::$INDEX_ALLOCATION".to_vec()),
        Just(".g\u{200c}it".as_bytes().to_vec()),
        Just(b".".to_vec()),
        Just(b"..".to_vec()),
        Just(Vec::new()),
        "[a-z]{0,4}[/\\\\][a-z]{0,4}".prop_map(String::into_bytes),
    ]
}

const MODES: [&str; 3] = ["100644", "100755", "40000"];

/// The raw bytes of a tree holding `entries` (mode index, name), sorted as git sorts them.
fn tree(mut entries: Vec<(usize, Vec<u8>)>) -> Vec<u8> {
    let key = |(mode, name): &(usize, Vec<u8>)| {
        let mut k = name.clone();
        if MODES[*mode] == "40000" {
            k.push(b'/');
        }
        k
    };
    entries.sort_by_key(key);
    let mut out = Vec::new();
    for (mode, name) in entries {
        out.extend_from_slice(MODES[mode].as_bytes());
        out.push(b' ');
        out.extend_from_slice(&name);
        out.push(0);
        out.extend_from_slice(&[7u8; 20]);
    }
    out
}

fn unique_names(names: Vec<(usize, Vec<u8>)>) -> Vec<(usize, Vec<u8>)> {
    let mut seen = std::collections::HashSet::new();
    names
        .into_iter()
        .filter(|(_, n)| seen.insert(n.clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pkt_reader_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        drain(&bytes);
    }

    #[test]
    fn pkt_reader_survives_hex_shaped_garbage(text in "([0-9a-f]{4}[ -~]{0,40}){0,20}") {
        drain(text.as_bytes());
    }

    #[test]
    fn pkt_lines_round_trip(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..20)) {
        let mut wire = Vec::new();
        for p in &payloads {
            pkt_line::write(&mut wire, p);
        }
        pkt_line::flush(&mut wire);
        let mut reader = PktReader::new(&wire);
        for p in &payloads {
            match reader.next_pkt() {
                Ok(Some(Pkt::Data(d))) => prop_assert_eq!(d, &p[..]),
                other => prop_assert!(false, "expected data, got {:?}", other.map(|o| o.is_some())),
            }
        }
        prop_assert!(matches!(reader.next_pkt(), Ok(Some(Pkt::Flush))));
        prop_assert!(matches!(reader.next_pkt(), Ok(None)));
    }

    #[test]
    fn command_parser_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = receive_pack::parse(&bytes);
    }

    #[test]
    fn well_formed_commands_parse_and_mutations_do_not_panic(
        commands in proptest::collection::vec((oid(), oid(), "refs/(heads|for)/[a-z]{1,10}"), 1..4),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
    ) {
        let body = push_body(&commands, "report-status side-band-64k", b"PACK");
        let parsed = receive_pack::parse(&body).expect("a well-formed push parses");
        prop_assert_eq!(parsed.commands.len(), commands.len());
        for (c, (old, new, refname)) in parsed.commands.iter().zip(&commands) {
            prop_assert_eq!(c.old, Oid::from_str(old).unwrap());
            prop_assert_eq!(c.new, Oid::from_str(new).unwrap());
            prop_assert_eq!(&c.refname, refname);
        }
        prop_assert!(parsed.sideband());
        prop_assert_eq!(parsed.pack, b"PACK");
        let mut mutated = body.clone();
        for (at, byte) in flips {
            let i = at % mutated.len();
            mutated[i] = byte;
        }
        let _ = receive_pack::parse(&mutated);
    }

    #[test]
    fn tree_rules_survive_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = tree_rules::check(&bytes);
    }

    #[test]
    fn good_trees_pass(entries in proptest::collection::vec((0..3usize, good_name()), 0..30)) {
        let raw = tree(unique_names(entries));
        prop_assert_eq!(tree_rules::check(&raw), Ok(()));
    }

    #[test]
    fn a_forbidden_name_is_refused_wherever_it_sits(
        entries in proptest::collection::vec((0..3usize, good_name()), 0..30),
        bad in bad_name(),
        mode in 0..3usize,
    ) {
        let mut entries = unique_names(entries);
        entries.push((mode, bad.clone()));
        let fault = tree_rules::check(&tree(entries));
        let fault = fault.expect_err("a forbidden name landed");
        prop_assert_eq!(fault.name, String::from_utf8_lossy(&bad).into_owned());
    }

    #[test]
    fn a_forbidden_mode_is_refused(
        entries in proptest::collection::vec((0..3usize, good_name()), 1..10),
        mode in proptest::sample::select(vec!["120000", "160000", "040000", "100664", "644", "0"]),
    ) {
        let mut raw = tree(unique_names(entries));
        // Rewrite the first entry's mode.
        let space = raw.iter().position(|b| *b == b' ').unwrap();
        raw.splice(..space, mode.bytes());
        prop_assert!(tree_rules::check(&raw).is_err());
    }

    #[test]
    fn pack_reader_survives_any_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..2048), header in any::<bool>()) {
        if header && bytes.len() >= 12 {
            bytes[..8].copy_from_slice(b"PACK\0\0\0\x02");
        }
        let _ = read_limited(&bytes, |_| None, Limits::default());
    }

    #[test]
    fn mutated_packs_never_panic_and_limits_hold(
        blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..4096), 1..6),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
    ) {
        let pack = herd_hub::pack::write(blobs.iter().map(|b| (ObjectType::Blob, &b[..])));
        let entries = read_limited(&pack, |_| None, Limits::default()).expect("a written pack reads");
        prop_assert_eq!(entries.len(), {
            let mut unique = blobs.clone();
            unique.sort();
            unique.dedup();
            unique.len()
        });
        let biggest = blobs.iter().map(Vec::len).max().unwrap_or(0);
        if biggest > 0 {
            let tight = Limits { max_object_bytes: biggest - 1, ..Limits::default() };
            prop_assert!(matches!(read_limited(&pack, |_| None, tight), Err(PackError::Limit(_))));
        }
        let mut mutated = pack.clone();
        for (at, byte) in flips {
            let i = 12 + at % (mutated.len() - 12);
            mutated[i] = byte;
        }
        let _ = read_limited(&mutated, |_| None, Limits::default());
    }
}
