//! receive-pack, in process: the wire format. [`parse`] reads the pushed commands and locates
//! the pack; [`PushOutcome::report`] writes the report-status answer. What happens in between —
//! staging in memory ([`crate::store`]), policy ([`crate::policy`]) and integration into the
//! trunk ([`crate::mode`]) — lives in the modules named for it.

use git2::Oid;

use crate::error::RequestError;
use crate::mode::Landed;
use crate::pkt_line::{self, Pkt, PktReader};
use crate::refusal::Refusal;

/// One `<old> <new> <ref>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The tip the pusher believes the ref has.
    pub old: Oid,
    /// The tip it wants.
    pub new: Oid,
    /// The ref.
    pub refname: String,
}

/// A parsed push request.
#[derive(Debug)]
pub struct PushRequest<'a> {
    /// The ref updates.
    pub commands: Vec<Command>,
    /// Capabilities named on the first command.
    pub caps: Vec<String>,
    /// The packfile (may be empty for deletes only).
    pub pack: &'a [u8],
}

impl PushRequest<'_> {
    /// Did the client ask for side-band-64k?
    pub fn sideband(&self) -> bool {
        self.caps.iter().any(|c| c == "side-band-64k")
    }
}

/// Parses the body of `POST /git-receive-pack`.
pub fn parse(body: &[u8]) -> Result<PushRequest<'_>, RequestError> {
    let mut reader = PktReader::new(body);
    let mut commands = Vec::new();
    let mut caps = Vec::new();
    loop {
        match reader
            .next_pkt()
            .map_err(|e| RequestError::bad(format!("receive-pack: {e}")))?
        {
            None => {
                return Err(RequestError::bad(
                    "receive-pack: command list not terminated by a flush",
                ));
            }
            Some(Pkt::Flush) => break,
            Some(Pkt::Data(line)) => {
                let (cmd, line_caps) = parse_command(line)?;
                if commands.is_empty() {
                    caps = line_caps;
                }
                commands.push(cmd);
            }
            Some(other) => {
                return Err(RequestError::bad(format!(
                    "receive-pack: unexpected {other:?} in command list"
                )));
            }
        }
    }
    if commands.is_empty() {
        return Err(RequestError::bad("receive-pack: no commands"));
    }
    let pack = reader.rest();
    let needs_pack = commands.iter().any(|c| !c.new.is_zero());
    if needs_pack && !pack.starts_with(b"PACK") {
        return Err(RequestError::bad(
            "receive-pack: missing or malformed PACK after the commands",
        ));
    }
    Ok(PushRequest {
        commands,
        caps,
        pack,
    })
}

fn parse_command(line: &[u8]) -> Result<(Command, Vec<String>), RequestError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (cmd, caps) = match line.iter().position(|b| *b == 0) {
        Some(nul) => (
            &line[..nul],
            String::from_utf8_lossy(&line[nul + 1..])
                .split(' ')
                .map(str::to_string)
                .collect(),
        ),
        None => (line, Vec::new()),
    };
    let text = std::str::from_utf8(cmd)
        .map_err(|_| RequestError::bad("receive-pack: command is not UTF-8"))?;
    let mut parts = text.splitn(3, ' ');
    let (old, new, refname) = match (parts.next(), parts.next(), parts.next()) {
        (Some(o), Some(n), Some(r)) if o.len() == 40 && n.len() == 40 && !r.is_empty() => (o, n, r),
        _ => {
            return Err(RequestError::bad(format!(
                "receive-pack: malformed command {text:?}"
            )));
        }
    };
    let oid = |s: &str| {
        Oid::from_str(s)
            .map_err(|_| RequestError::bad(format!("receive-pack: bad object id {s:?}")))
    };
    Ok((
        Command {
            old: oid(old)?,
            new: oid(new)?,
            refname: refname.to_string(),
        },
        caps,
    ))
}

/// How one push ended. Only the first command is integrated; any further ones are refused
/// with [`Refusal::OneUpdate`].
#[derive(Debug)]
pub struct PushOutcome {
    /// Each command's ref and its result: the commits it landed, or why it was refused.
    pub statuses: Vec<(String, Result<Vec<Landed>, Refusal>)>,
}

impl PushOutcome {
    /// The report-status response body (side-band wrapped if asked). When the hub landed a
    /// commit as a different one (the merge queue rebased it), a `herd: landed <pushed> as
    /// <landed>` line goes out on side-band channel 2, which stock git prints as `remote: …`.
    pub fn report(&self, sideband: bool) -> Vec<u8> {
        let mut status = Vec::new();
        pkt_line::write(&mut status, b"unpack ok\n");
        for (refname, result) in &self.statuses {
            let line = match result {
                Ok(_) => format!("ok {refname}\n"),
                Err(refusal) => format!("ng {refname} {refusal}\n"),
            };
            pkt_line::write(&mut status, line.as_bytes());
        }
        pkt_line::flush(&mut status);
        if !sideband {
            return status;
        }
        let mut out = Vec::new();
        for landed in self.landed().iter().filter(|l| l.pushed != l.landed) {
            let note = format!("herd: landed {} as {}\n", landed.pushed, landed.landed);
            pkt_line::write_sideband(&mut out, 2, note.as_bytes());
        }
        pkt_line::write_sideband(&mut out, 1, &status);
        pkt_line::flush(&mut out);
        out
    }

    /// Every commit this push landed, in trunk order.
    pub fn landed(&self) -> &[Landed] {
        self.statuses
            .iter()
            .find_map(|(_, r)| r.as_ref().ok())
            .map_or(&[], Vec::as_slice)
    }

    /// The first refusal, for stats and spans.
    pub fn refusal(&self) -> Option<&Refusal> {
        self.statuses.iter().find_map(|(_, r)| r.as_ref().err())
    }
}

/// A report-status answer as a client reads it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// `unpack ok`, or the unpack error.
    pub unpack: Option<Result<(), String>>,
    /// Per ref: `ok`, or the `ng` reason.
    pub refs: Vec<(String, Result<(), String>)>,
    /// Progress and notes (side-band channel 2), e.g. `herd: landed <a> as <b>`.
    pub notes: Vec<String>,
}

/// Reads a report-status response (side-band demultiplexed when it is wrapped).
pub fn parse_report(body: &[u8]) -> Result<Report, String> {
    let mut reader = PktReader::new(body);
    let mut status = Vec::new();
    let mut report = Report::default();
    let mut banded = None;
    while let Some(pkt) = reader.next_pkt().map_err(|e| e.to_string())? {
        let Pkt::Data(data) = pkt else { continue };
        let wrapped = *banded.get_or_insert(matches!(data.first(), Some(1..=3)));
        match (wrapped, data.split_first()) {
            (true, Some((1, rest))) => status.extend_from_slice(rest),
            (true, Some((2, rest))) => report
                .notes
                .push(String::from_utf8_lossy(rest).trim_end().to_string()),
            (true, Some((3, rest))) => {
                return Err(format!(
                    "hub error: {}",
                    String::from_utf8_lossy(rest).trim()
                ));
            }
            (true, _) => return Err("malformed side-band packet".into()),
            (false, _) => {
                pkt_line::write(&mut status, data);
            }
        }
    }
    let mut lines = PktReader::new(&status);
    while let Some(pkt) = lines.next_pkt().map_err(|e| e.to_string())? {
        let Pkt::Data(line) = pkt else { continue };
        let line = String::from_utf8_lossy(line)
            .trim_end_matches('\n')
            .to_string();
        if let Some(rest) = line.strip_prefix("unpack ") {
            report.unpack = Some(if rest == "ok" {
                Ok(())
            } else {
                Err(rest.to_string())
            });
        } else if let Some(refname) = line.strip_prefix("ok ") {
            report.refs.push((refname.to_string(), Ok(())));
        } else if let Some(rest) = line.strip_prefix("ng ") {
            let (refname, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            report
                .refs
                .push((refname.to_string(), Err(reason.to_string())));
        }
    }
    if report.unpack.is_none() {
        return Err("no report-status in the answer".into());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(old: &str, new: &str, r: &str, caps: &str) -> Vec<u8> {
        let mut body = Vec::new();
        let text = if caps.is_empty() {
            format!("{old} {new} {r}\n")
        } else {
            format!("{old} {new} {r}\0{caps}\n")
        };
        pkt_line::write(&mut body, text.as_bytes());
        body
    }

    #[test]
    fn parses_commands_caps_and_pack() {
        let (a, b) = ("1".repeat(40), "2".repeat(40));
        let mut body = line(&a, &b, crate::repo::MAIN, "report-status side-band-64k");
        pkt_line::flush(&mut body);
        body.extend_from_slice(b"PACK\0\0\0\x02\0\0\0\0");
        let req = parse(&body).unwrap();
        assert_eq!(
            req.commands,
            vec![Command {
                old: Oid::from_str(&a).unwrap(),
                new: Oid::from_str(&b).unwrap(),
                refname: crate::repo::MAIN.into()
            }]
        );
        assert!(req.sideband());
        assert_eq!(req.pack.len(), 12);
    }

    #[test]
    fn a_report_reads_back_wrapped_or_not() {
        let landed = Landed {
            pushed: Oid::from_str(&"1".repeat(40)).unwrap(),
            landed: Oid::from_str(&"2".repeat(40)).unwrap(),
            prev: Oid::ZERO_SHA1,
            seq: 2,
        };
        let outcome = PushOutcome {
            statuses: vec![
                ("refs/for/main".into(), Ok(vec![landed])),
                ("refs/heads/x".into(), Err(Refusal::OneUpdate)),
            ],
        };
        for sideband in [true, false] {
            let report = parse_report(&outcome.report(sideband)).unwrap();
            assert_eq!(report.unpack, Some(Ok(())));
            assert_eq!(
                report.refs,
                vec![
                    ("refs/for/main".to_string(), Ok(())),
                    (
                        "refs/heads/x".to_string(),
                        Err(Refusal::OneUpdate.to_string())
                    ),
                ]
            );
            assert_eq!(report.notes.len(), usize::from(sideband));
        }
        assert!(parse_report(b"0000").is_err());
    }

    #[test]
    fn malformed_requests_are_400_with_a_reason() {
        let (a, b) = ("1".repeat(40), "2".repeat(40));
        let main = crate::repo::MAIN;
        let unterminated = line(&a, &b, main, "");
        let mut no_pack = line(&a, &b, main, "");
        pkt_line::flush(&mut no_pack);
        let mut bad_oid = line("xyz", &b, main, "");
        pkt_line::flush(&mut bad_oid);
        for (body, needle) in [
            (&b"00zz"[..], "malformed pkt-line"),
            (&unterminated[..], "not terminated"),
            (&no_pack[..], "missing or malformed PACK"),
            (&bad_oid[..], "malformed command"),
            (b"0000", "no commands"),
        ] {
            let err = parse(body).unwrap_err();
            assert_eq!(err.status, 400);
            assert!(err.reason.contains(needle), "{needle}: {}", err.reason);
        }
    }
}
