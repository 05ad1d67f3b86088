//! `GET /info/refs?service=…`: the ref advertisement that opens every smart-HTTP exchange.
//! receive-pack's is built in process (one ref, our capabilities); upload-pack's comes from
//! `git upload-pack --advertise-refs`. Both are prefixed with the `# service=` packet.

use git2::Repository;

use crate::pkt_line;
use crate::repo::{self, MAIN};

/// Capabilities the in-process receive-pack supports. No `delete-refs`: main is never deleted.
pub const RECEIVE_CAPS: &str = "report-status side-band-64k ofs-delta quiet agent=herd-hub";

/// The `# service=<name>` header packet and its flush.
pub fn service_header(service: &str) -> Vec<u8> {
    let mut out = Vec::new();
    pkt_line::write(&mut out, format!("# service={service}\n").as_bytes());
    pkt_line::flush(&mut out);
    out
}

/// The full receive-pack advertisement.
pub fn receive_pack(repo: &Repository) -> Result<Vec<u8>, git2::Error> {
    let mut out = service_header("git-receive-pack");
    let tip = repo::tip(repo)?;
    pkt_line::write(
        &mut out,
        format!("{tip} {MAIN}\0{RECEIVE_CAPS}\n").as_bytes(),
    );
    pkt_line::flush(&mut out);
    Ok(out)
}
