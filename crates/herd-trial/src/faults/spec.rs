//! What faults a trial injects, when, for how long and where: [`FaultSpec`], written
//! `KIND@WHEN[+HOLD][:TARGET]` on the command line and in `HERD_FAULTS` (several joined by
//! `;`), or as `[[faults]]` tables in TOML. And the SLA each fault is measured against
//! ([`FaultSla`]).
//!
//! - `KIND`: `bus-kill` (F1: the nats-server SIGKILLed, restarted on the same store and port
//!   after HOLD), `bus-stop` (F2: SIGSTOPped for HOLD, then SIGCONT) or `tip-replay` (F9: for
//!   HOLD, old tip broadcasts published again — duplicated and out of order; target `bus`),
//!   or on every leaf's link to the hub or bus (F10, through a proxy: [`super::link`]):
//!   `link-delay` (each chunk held 200 ms + 0–100 ms seeded jitter), `link-stall` (a blackhole:
//!   nothing crosses for HOLD) or `link-reset` (every open connection closed, new ones refused,
//!   for HOLD; on hub links the race hub only).
//! - On one leaf (in-process leaves; played out by its slot runner at its next won claim,
//!   [`super::leaf`]): `leaf-kill` (F6: crashes between claim and commit, down for HOLD, opened
//!   again on its directory, resumes), `leaf-halt` (F7: crashes after the hub accepted its
//!   push, before its ledger row; down for HOLD), `leaf-pause` (F8: its push paused for HOLD
//!   past its lease while a standby leaf takes the task over; HOLD must exceed the claim TTL)
//!   and `leaf-damage` (F13: as `leaf-kill`, its ledger truncated and its git index broken
//!   while down), `disk-full` (F11: its directory, a tmpfs of its own mounted for the trial,
//!   filled to the last byte for HOLD from its next won claim — or, without root, the leaf's
//!   ENOSPC fail point; its commits fail with ENOSPC and are tried again until they land).
//!   Target `leaf-K`, or `any-leaf`
//!   (default: a seeded pick).
//! - `hub-restart` (F4): the hub crashes and starts again on the same directory and port
//!   after HOLD — at once (`:hub`, default) or when the next push reaches a fail point,
//!   `:pack-written` or `:ref-updated` (race hub only).
//! - `WHEN`: `commits=N` (once the herd has N commits on the trunk) or a time since the work
//!   started, `5s`, with an optional seeded jitter: `5s~2s` is somewhere in 5–7 s.
//! - `HOLD`: how long the fault lasts (default 1 s), `500ms`, `8s`.
//! - `TARGET`: `bus` (default: the server holding JetStream; node 0 of a cluster), `node-K`
//!   (a cluster node), `local-K` (a leaf-node server), or `any` (a seeded pick among the
//!   servers holding JetStream); for link faults `bus` (default) or `hub`; for leaf faults
//!   `leaf-K` or `any-leaf`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The fault classes herd injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// F1: the bus server SIGKILLed, then restarted on the same store and port.
    BusKill,
    /// F2: the bus server SIGSTOPped, then SIGCONTed.
    BusStop,
    /// F9: tip broadcasts duplicated and reordered — for the hold, every 50 ms one of the
    /// last 32 broadcasts (a seeded pick) is published again.
    TipReplay,
    /// F10: every leaf's link to the hub (`:hub`) or the bus (`:bus`) delays each chunk
    /// 200 ms plus a seeded 0–100 ms jitter, for the hold.
    LinkDelay,
    /// F10: a blackhole on those links for the hold: nothing crosses, new connections wait;
    /// after it, held bytes flow on (TCP retransmits).
    LinkStall,
    /// F10: every open connection of those links closed at once, new ones refused, for the
    /// hold (on hub links, race hub only: a leaf settles a cut push from the trunk, which is
    /// safe only under compare-and-swap).
    LinkReset,
    /// F4: the hub crashes (every connection cut, nothing more written) and starts again on
    /// the same directory and port after the hold — at once (`:hub`, default), or when the
    /// next push reaches a fail point: `:pack-written` (objects on disk, ref not moved) or
    /// `:ref-updated` (ref moved, push unanswered and unbroadcast). Race hub only.
    HubRestart,
    /// F6: a leaf crashes between claim and commit and is opened again after the hold.
    LeafKill,
    /// F7: a leaf crashes after the hub accepted its push, before its ledger row.
    LeafHalt,
    /// F8: a leaf's push pauses past its lease; a standby takes the task over.
    LeafPause,
    /// F13: a leaf crashes and its ledger and git index are damaged while it is down.
    LeafDamage,
    /// F11: a leaf's disk (its own tmpfs) is full for the hold.
    DiskFull,
}

impl FaultKind {
    /// The name flags and files use.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::BusKill => "bus-kill",
            FaultKind::BusStop => "bus-stop",
            FaultKind::TipReplay => "tip-replay",
            FaultKind::LinkDelay => "link-delay",
            FaultKind::LinkStall => "link-stall",
            FaultKind::LinkReset => "link-reset",
            FaultKind::HubRestart => "hub-restart",
            FaultKind::LeafKill => "leaf-kill",
            FaultKind::LeafHalt => "leaf-halt",
            FaultKind::LeafPause => "leaf-pause",
            FaultKind::LeafDamage => "leaf-damage",
            FaultKind::DiskFull => "disk-full",
        }
    }

    /// The fault's class in RELIABILITY.md's matrix.
    pub fn class(self) -> &'static str {
        match self {
            FaultKind::BusKill => "F1",
            FaultKind::BusStop => "F2",
            FaultKind::TipReplay => "F9",
            FaultKind::LinkDelay | FaultKind::LinkStall | FaultKind::LinkReset => "F10",
            FaultKind::HubRestart => "F4",
            FaultKind::LeafKill => "F6",
            FaultKind::LeafHalt => "F7",
            FaultKind::LeafPause => "F8",
            FaultKind::LeafDamage => "F13",
            FaultKind::DiskFull => "F11",
        }
    }

    /// The target a spec without one gets.
    pub fn default_target(self) -> Target {
        match self {
            FaultKind::HubRestart => Target::Hub,
            k if k.on_leaf() => Target::AnyLeaf,
            _ => Target::Bus,
        }
    }

    /// Does it act on the leaves' links (a proxy) rather than a server?
    pub fn on_links(self) -> bool {
        matches!(
            self,
            FaultKind::LinkDelay | FaultKind::LinkStall | FaultKind::LinkReset
        )
    }

    /// Does it act on one leaf (played out by its slot runner)?
    pub fn on_leaf(self) -> bool {
        matches!(
            self,
            FaultKind::LeafKill
                | FaultKind::LeafHalt
                | FaultKind::LeafPause
                | FaultKind::LeafDamage
                | FaultKind::DiskFull
        )
    }

    const ALL: [FaultKind; 12] = [
        FaultKind::HubRestart,
        FaultKind::BusKill,
        FaultKind::BusStop,
        FaultKind::TipReplay,
        FaultKind::LinkDelay,
        FaultKind::LinkStall,
        FaultKind::LinkReset,
        FaultKind::LeafKill,
        FaultKind::LeafHalt,
        FaultKind::LeafPause,
        FaultKind::LeafDamage,
        FaultKind::DiskFull,
    ];
}

/// When a fault starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Once the herd's leaves have reported this many commits.
    Commits(u64),
    /// This long after the work started, plus a seeded draw from `0..=jitter`.
    After {
        /// The earliest start.
        at: Duration,
        /// The widest seeded delay on top.
        jitter: Duration,
    },
}

/// Which server a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The server holding JetStream (node 0 of a cluster).
    Bus,
    /// Cluster node K (`cluster3`).
    Node(usize),
    /// Leaf-node server K (`leafnodes`).
    Local(usize),
    /// A seeded pick among the servers holding JetStream.
    Any,
    /// The hub (link faults: the leaves' links to it; `hub-restart`: the hub at once).
    Hub,
    /// `hub-restart` when the next push has written its objects, before the ref moves.
    PackWritten,
    /// `hub-restart` when the next push has moved the ref, before it is answered.
    RefUpdated,
    /// Leaf faults: the leaf of slot K.
    Leaf(usize),
    /// Leaf faults: a seeded pick among the leaves.
    AnyLeaf,
}

/// One fault of the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultSpec {
    /// What happens.
    pub kind: FaultKind,
    /// When it starts.
    pub at: When,
    /// How long it lasts.
    pub hold: Duration,
    /// Where.
    pub target: Target,
}

impl FaultSpec {
    /// Does it cut pushes mid-flight (a hub restart, a reset of the hub links)? Their leaves
    /// settle those from the trunk, which is safe only with the race hub.
    pub fn cuts_pushes(&self) -> bool {
        self.kind == FaultKind::HubRestart
            || (self.kind == FaultKind::LinkReset && self.target == Target::Hub)
    }
}

/// The longest a fault may last: a trial is bounded.
pub const MAX_HOLD: Duration = Duration::from_secs(600);

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@", self.kind.as_str())?;
        match self.at {
            When::Commits(n) => write!(f, "commits={n}")?,
            When::After { at, jitter } => {
                write!(f, "{}", humantime::format_duration(at))?;
                if !jitter.is_zero() {
                    write!(f, "~{}", humantime::format_duration(jitter))?;
                }
            }
        }
        write!(f, "+{}", humantime::format_duration(self.hold))?;
        if self.target == self.kind.default_target() {
            return Ok(());
        }
        match self.target {
            Target::Bus => write!(f, ":bus"),
            Target::PackWritten => write!(f, ":pack-written"),
            Target::RefUpdated => write!(f, ":ref-updated"),
            Target::Node(k) => write!(f, ":node-{k}"),
            Target::Local(k) => write!(f, ":local-{k}"),
            Target::Any => write!(f, ":any"),
            Target::Hub => write!(f, ":hub"),
            Target::Leaf(k) => write!(f, ":leaf-{k}"),
            Target::AnyLeaf => write!(f, ":any-leaf"),
        }
    }
}

fn duration(text: &str, what: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{what} {text:?}: {e} (e.g. 500ms, 2s)"))
}

impl FromStr for FaultSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<FaultSpec, String> {
        let s = s.trim();
        let (kind, rest) = s
            .split_once('@')
            .ok_or_else(|| format!("{s:?}: expected KIND@WHEN[+HOLD][:TARGET]"))?;
        let kind = FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind.trim())
            .ok_or_else(|| {
                format!(
                    "unknown fault {kind:?} (bus-kill, bus-stop, hub-restart, tip-replay, link-delay, \
                     link-stall, link-reset, leaf-kill, leaf-halt, leaf-pause, leaf-damage or disk-full)"
                )
            })?;
        let (rest, target) = match rest.split_once(':') {
            Some((r, t)) => (r, t.trim().parse::<Target>()?),
            None => (rest, kind.default_target()),
        };
        let (when, hold) = match rest.split_once('+') {
            Some((w, h)) => (w, duration(h, "hold")?),
            None => (rest, Duration::from_secs(1)),
        };
        let at = match when.trim().strip_prefix("commits=") {
            Some(n) => When::Commits(
                n.trim()
                    .parse()
                    .map_err(|_| format!("commits={n}: not a whole number"))?,
            ),
            None => {
                let (at, jitter) = match when.split_once('~') {
                    Some((a, j)) => (duration(a, "start")?, duration(j, "jitter")?),
                    None => (duration(when, "start")?, Duration::ZERO),
                };
                When::After { at, jitter }
            }
        };
        let restart = kind == FaultKind::HubRestart;
        let leaf = kind.on_leaf();
        let fits = match target {
            Target::Hub => kind.on_links() || restart,
            Target::PackWritten | Target::RefUpdated => restart,
            Target::Bus => !restart && !leaf,
            Target::Node(_) | Target::Local(_) | Target::Any => {
                !restart && !kind.on_links() && !leaf
            }
            Target::Leaf(_) | Target::AnyLeaf => leaf,
        };
        if !fits {
            return Err(format!(
                "{s:?}: {}",
                if restart {
                    "hub-restart's target is hub, pack-written or ref-updated"
                } else if leaf {
                    "a leaf fault's target is leaf-K or any-leaf"
                } else if kind.on_links() {
                    "a link fault's target is bus or hub"
                } else {
                    "this fault's target is bus, node-K, local-K or any"
                }
            ));
        }
        if hold.is_zero() || hold > MAX_HOLD {
            return Err(format!(
                "hold {}: must be more than 0 and at most 10m",
                humantime::format_duration(hold)
            ));
        }
        Ok(FaultSpec {
            kind,
            at,
            hold,
            target,
        })
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Target, String> {
        let index = |n: &str| {
            n.parse::<usize>()
                .map_err(|_| format!("target {s:?}: not a number after the dash"))
        };
        match s {
            "bus" => Ok(Target::Bus),
            "any" => Ok(Target::Any),
            "hub" => Ok(Target::Hub),
            "pack-written" => Ok(Target::PackWritten),
            "ref-updated" => Ok(Target::RefUpdated),
            "any-leaf" => Ok(Target::AnyLeaf),
            _ => match (
                s.strip_prefix("node-"),
                s.strip_prefix("local-"),
                s.strip_prefix("leaf-"),
            ) {
                (Some(n), _, _) => Ok(Target::Node(index(n)?)),
                (_, Some(n), _) => Ok(Target::Local(index(n)?)),
                (_, _, Some(n)) => Ok(Target::Leaf(index(n)?)),
                _ => Err(format!(
                    "unknown target {s:?} (bus, hub, node-K, local-K, any, leaf-K or any-leaf)"
                )),
            },
        }
    }
}

/// Parses `SPEC;SPEC;…` (empty parts are skipped).
pub fn parse_list(text: &str) -> Result<Vec<FaultSpec>, String> {
    text.split(';')
        .filter(|p| !p.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// A whole `--faults` value (a newtype, so the flag parses as one value, not a list of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultList(pub Vec<FaultSpec>);

impl FromStr for FaultList {
    type Err = String;

    fn from_str(s: &str) -> Result<FaultList, String> {
        parse_list(s).map(FaultList)
    }
}

/// The schedule written back as one `--faults` value.
pub fn list_string(faults: &[FaultSpec]) -> String {
    faults
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(";")
}

impl Serialize for FaultSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FaultSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FaultSpec, D::Error> {
        /// `[[faults]]` in TOML: the same parts as the one-line form, as keys.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            kind: String,
            at: String,
            hold: Option<String>,
            target: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Line(String),
            Table(Table),
        }
        let line = match Form::deserialize(d)? {
            Form::Line(line) => line,
            Form::Table(t) => format!(
                "{}@{}+{}{}",
                t.kind,
                t.at,
                t.hold.as_deref().unwrap_or("1s"),
                t.target.map(|t| format!(":{t}")).unwrap_or_default()
            ),
        };
        line.parse().map_err(serde::de::Error::custom)
    }
}

/// What a fault must meet; a miss fails the trial (exit 1). Written
/// `detect=3s,recover=10s,rate=30s` on the command line, a `[fault_sla]` table in TOML.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSla {
    /// From injection to the first report of it (ms). Default 3000.
    pub detect_ms: u64,
    /// From heal to the first successful operation of the affected kind (ms). Default 10000.
    pub recover_ms: u64,
    /// From heal until the herd commits at ≥ 80 % of its pre-fault rate again (ms).
    /// Default 30000.
    pub rate_ms: u64,
}

impl Default for FaultSla {
    fn default() -> Self {
        FaultSla {
            detect_ms: 3000,
            recover_ms: 10_000,
            rate_ms: 30_000,
        }
    }
}

impl FromStr for FaultSla {
    type Err = String;

    fn from_str(s: &str) -> Result<FaultSla, String> {
        let mut sla = FaultSla::default();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected KEY=DURATION"))?;
            let ms = duration(value, key)?.as_millis() as u64;
            match key.trim() {
                "detect" => sla.detect_ms = ms,
                "recover" => sla.recover_ms = ms,
                "rate" => sla.rate_ms = ms,
                other => return Err(format!("unknown SLA key {other:?} (detect, recover, rate)")),
            }
        }
        Ok(sla)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_form_round_trips() {
        for line in [
            "bus-kill@commits=100+1s",
            "bus-stop@5s~2s+8s:node-2",
            "bus-kill@2s+500ms:any",
            "bus-stop@commits=0+1s:local-3",
            "tip-replay@commits=20+2s",
        ] {
            let spec: FaultSpec = line.parse().unwrap();
            assert_eq!(spec.to_string(), line);
        }
        let spec: FaultSpec = "bus-kill@commits=7".parse().unwrap();
        assert_eq!(spec.hold, Duration::from_secs(1));
        assert_eq!(spec.target, Target::Bus);
    }

    #[test]
    fn bad_specs_name_the_part() {
        for (line, says) in [
            ("bus-nuke@1s", "unknown fault"),
            ("bus-kill", "KIND@WHEN"),
            ("bus-kill@commits=x", "not a whole number"),
            ("bus-kill@1s+0s", "more than 0"),
            ("bus-kill@1s+11m", "at most 10m"),
            ("bus-kill@soon", "start"),
            ("bus-kill@1s:moon", "unknown target"),
        ] {
            let err = line.parse::<FaultSpec>().unwrap_err();
            assert!(err.contains(says), "{line}: {err}");
        }
    }

    #[test]
    fn toml_takes_tables_and_lines() {
        #[derive(Deserialize)]
        struct File {
            faults: Vec<FaultSpec>,
            fault_sla: FaultSla,
        }
        let file: File = toml::from_str(
            r#"
            faults = ["bus-stop@3s+4s"]
            [fault_sla]
            detect_ms = 500
            "#,
        )
        .unwrap();
        assert_eq!(file.faults[0].to_string(), "bus-stop@3s+4s");
        assert_eq!(file.fault_sla.detect_ms, 500);
        assert_eq!(file.fault_sla.rate_ms, FaultSla::default().rate_ms);
        let file: File = toml::from_str(
            r#"
            [[faults]]
            kind = "bus-kill"
            at = "commits=50"
            hold = "2s"
            target = "node-1"
            [fault_sla]
            "#,
        )
        .unwrap();
        assert_eq!(file.faults[0].to_string(), "bus-kill@commits=50+2s:node-1");
    }

    #[test]
    fn sla_flags_parse_and_refuse_unknown_keys() {
        let sla: FaultSla = "detect=500ms,rate=1m".parse().unwrap();
        assert_eq!(
            (sla.detect_ms, sla.recover_ms, sla.rate_ms),
            (500, 10_000, 60_000)
        );
        assert!(
            "speed=1s"
                .parse::<FaultSla>()
                .unwrap_err()
                .contains("unknown SLA key")
        );
    }
}
