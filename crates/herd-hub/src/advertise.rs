//! `GET /info/refs?service=…`: the ref advertisement that opens every smart-HTTP exchange,
//! prefixed with the `# service=` packet. receive-pack's is here (one ref, its capabilities);
//! upload-pack's is in [`crate::upload_pack`].

use git2::Oid;

use crate::pkt_line;
use crate::repo::MAIN;

/// Capabilities the in-process receive-pack supports. No `delete-refs`: main is never deleted.
pub const RECEIVE_CAPS: &str = "report-status side-band-64k ofs-delta quiet agent=herd-hub";

/// The `# service=<name>` header packet and its flush.
pub fn service_header(service: &str) -> Vec<u8> {
    let mut out = Vec::new();
    pkt_line::write(&mut out, format!("# service={service}\n").as_bytes());
    pkt_line::flush(&mut out);
    out
}

/// The receive-pack advertisement of `tip` (without the `# service=` header).
pub fn receive_pack(tip: Oid) -> Vec<u8> {
    let mut out = Vec::new();
    pkt_line::write(
        &mut out,
        format!("{tip} {MAIN}\0{RECEIVE_CAPS}\n").as_bytes(),
    );
    pkt_line::flush(&mut out);
    out
}
