//! git's pkt-line framing: a 4-hex-digit length (including itself) then the payload;
//! `0000` is a flush, `0001` a delimiter, `0002` a response end (protocol v2).
//!
//! The reader never trusts the length: a length below 4 (other than the special packets), one
//! that is not hex, or one that runs past the buffer is a typed error, not a panic.

/// One framed packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Pkt<'a> {
    /// A data packet's payload.
    Data(&'a [u8]),
    /// `0000`.
    Flush,
    /// `0001`.
    Delim,
    /// `0002`.
    ResponseEnd,
}

/// A framing error, with the byte offset where it was found.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PktError {
    /// The buffer ended inside a length header.
    #[error("truncated pkt-line header at byte {0}")]
    TruncatedHeader(usize),
    /// The length header is not four hex digits.
    #[error("malformed pkt-line length {1:?} at byte {0}")]
    BadLength(usize, String),
    /// The declared length runs past the end of the buffer.
    #[error("pkt-line at byte {at} declares {len} bytes but only {have} remain")]
    Truncated {
        /// Offset of the packet.
        at: usize,
        /// Declared length.
        len: usize,
        /// Bytes left.
        have: usize,
    },
}

/// Reads packets from a buffer, tracking the offset.
pub struct PktReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> PktReader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        PktReader { buf, pos: 0 }
    }

    /// The bytes not yet read (e.g. the PACK after the command list).
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// The next packet, `None` at the end of the buffer.
    pub fn next_pkt(&mut self) -> Result<Option<Pkt<'a>>, PktError> {
        let at = self.pos;
        let rest = &self.buf[at..];
        if rest.is_empty() {
            return Ok(None);
        }
        let header = rest.get(..4).ok_or(PktError::TruncatedHeader(at))?;
        let text = std::str::from_utf8(header)
            .map_err(|_| PktError::BadLength(at, String::from_utf8_lossy(header).into()))?;
        let len = usize::from_str_radix(text, 16)
            .map_err(|_| PktError::BadLength(at, text.to_string()))?;
        let pkt = match len {
            0 => Pkt::Flush,
            1 => Pkt::Delim,
            2 => Pkt::ResponseEnd,
            3 => return Err(PktError::BadLength(at, text.to_string())),
            _ => {
                if len > rest.len() {
                    return Err(PktError::Truncated {
                        at,
                        len,
                        have: rest.len(),
                    });
                }
                self.pos += len;
                return Ok(Some(Pkt::Data(&rest[4..len])));
            }
        };
        self.pos += 4;
        Ok(Some(pkt))
    }
}

/// Appends one data packet.
pub fn write(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(format!("{:04x}", payload.len() + 4).as_bytes());
    out.extend_from_slice(payload);
}

/// Appends a flush packet.
pub fn flush(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0000");
}

/// Largest payload of one side-band-64k packet (65520 minus length and band byte).
pub const SIDEBAND_MAX: usize = 65515;

/// Appends `data` on side-band channel `band` (1 = pack data/report, 2 = progress, 3 = error).
pub fn write_sideband(out: &mut Vec<u8>, band: u8, data: &[u8]) {
    for chunk in data.chunks(SIDEBAND_MAX) {
        let mut payload = Vec::with_capacity(chunk.len() + 1);
        payload.push(band);
        payload.extend_from_slice(chunk);
        write(out, &payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_specials() {
        let mut buf = Vec::new();
        write(&mut buf, b"hello\n");
        flush(&mut buf);
        buf.extend_from_slice(b"0001PACK");
        let mut r = PktReader::new(&buf);
        assert_eq!(r.next_pkt().unwrap(), Some(Pkt::Data(b"hello\n")));
        assert_eq!(r.next_pkt().unwrap(), Some(Pkt::Flush));
        assert_eq!(r.next_pkt().unwrap(), Some(Pkt::Delim));
        assert_eq!(r.rest(), b"PACK");
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for (input, want) in [
            (&b"00"[..], PktError::TruncatedHeader(0)),
            (b"zzzz", PktError::BadLength(0, "zzzz".into())),
            (b"0003", PktError::BadLength(0, "0003".into())),
            (
                b"0010abc",
                PktError::Truncated {
                    at: 0,
                    len: 16,
                    have: 7,
                },
            ),
        ] {
            assert_eq!(PktReader::new(input).next_pkt().unwrap_err(), want);
        }
    }
}
