//! Who may push, and into which slot.
//!
//! [`Access::Open`] (the default for a hub built by hand) trusts the optional `x-herd-slot`
//! header — fit for a test on loopback, nothing more. [`Access::Tokens`] binds each slot to a
//! secret token: a push (its advertisement and its RPC) must carry one, as
//! `Authorization: Bearer <token>` (herd's leaves, or the stock CLI with
//! `-c http.extraHeader=...`) or as the password of HTTP Basic auth (a URL
//! `http://leaf:<token>@host/...`, or a credential helper — the hub answers an unauthenticated
//! push with `401` and `WWW-Authenticate: Basic` so the CLI asks for one). The slot then comes
//! from the token; a header naming another slot is refused. Reads (clone, fetch) stay open to
//! anonymous clients: a hub serving a herd is read-mostly and its content is not a secret from
//! the machine it runs on. Tokens are compared in constant time.

use base64::Engine;
use subtle::ConstantTimeEq;

/// How the hub decides who may push.
#[derive(Clone, Debug, Default)]
pub enum Access {
    /// Anyone may push; the slot is the `x-herd-slot` header, when given.
    #[default]
    Open,
    /// Pushes need a token; each token is bound to one slot.
    Tokens(Tokens),
    /// Nobody may push: the hub serves clones and fetches only (a mirror, a finished trial).
    ReadOnly,
}

/// Slot tokens.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(Vec<u8>, String)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        f.debug_struct("Tokens")
            .field(
                "slots",
                &self.entries.iter().map(|(_, s)| s).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Why a push was not let in: the HTTP status and a one-line reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No credentials (401, with a Basic challenge).
    #[error("this hub needs a slot token to push: send `Authorization: Bearer <token>`")]
    Missing,
    /// Credentials that match no token (403).
    #[error("the token is not one this hub issued")]
    Unknown,
    /// A token for one slot with a header naming another (403).
    #[error("the token is for slot {token_slot:?}, the request names slot {header_slot:?}")]
    WrongSlot {
        /// The token's slot.
        token_slot: String,
        /// The slot the header names.
        header_slot: String,
    },
    /// A read-only hub (403).
    #[error("this hub is read-only: it serves clones and fetches, not pushes")]
    ReadOnly,
}

impl Denied {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Denied::Missing => 401,
            _ => 403,
        }
    }
}

impl Tokens {
    /// A fresh random 256-bit token (hex) for each slot.
    pub fn generate<S: AsRef<str>>(slots: &[S]) -> std::io::Result<Tokens> {
        let mut tokens = Tokens::default();
        for slot in slots {
            let mut raw = [0u8; 32];
            getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            tokens.insert(&hex, slot.as_ref());
        }
        Ok(tokens)
    }

    /// Adds (or re-binds) `token` for `slot`.
    pub fn insert(&mut self, token: &str, slot: &str) {
        self.entries
            .retain(|(t, _)| t.as_slice() != token.as_bytes());
        self.entries
            .push((token.as_bytes().to_vec(), slot.to_string()));
    }

    /// The token bound to `slot`, if any (for handing to the leaf that owns it).
    pub fn token_for(&self, slot: &str) -> Option<String> {
        self.entries
            .iter()
            .find(|(_, s)| s == slot)
            .map(|(t, _)| String::from_utf8_lossy(t).into_owned())
    }

    /// The slot `token` is bound to. Every stored token is compared, each in constant time.
    pub fn slot_of(&self, token: &[u8]) -> Option<&str> {
        let mut found = None;
        for (t, slot) in &self.entries {
            if bool::from(t.as_slice().ct_eq(token)) {
                found = Some(slot.as_str());
            }
        }
        found
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No tokens at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Access {
    /// Decides a push: the slot it writes in (`None`: anywhere, open hub without a header).
    /// `authorization` is the `Authorization` header, `header_slot` the `x-herd-slot` header.
    pub fn push_slot(
        &self,
        authorization: Option<&str>,
        header_slot: Option<&str>,
    ) -> Result<Option<String>, Denied> {
        let tokens = match self {
            Access::Open => return Ok(header_slot.map(str::to_string)),
            Access::ReadOnly => return Err(Denied::ReadOnly),
            Access::Tokens(t) => t,
        };
        let secret = authorization.and_then(credential).ok_or(Denied::Missing)?;
        let slot = tokens.slot_of(&secret).ok_or(Denied::Unknown)?;
        match header_slot {
            Some(h) if h != slot => Err(Denied::WrongSlot {
                token_slot: slot.to_string(),
                header_slot: h.to_string(),
            }),
            _ => Ok(Some(slot.to_string())),
        }
    }
}

/// The secret of a `Bearer` or `Basic` (the password) authorization value.
fn credential(value: &str) -> Option<Vec<u8>> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        return Some(decoded[colon + 1..].to_vec());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_slots_and_headers_must_agree() {
        let tokens = Tokens::generate(&["slot-a", "slot-b"]).unwrap();
        let a = tokens.token_for("slot-a").unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(Some(a.clone()), tokens.token_for("slot-b"));
        let access = Access::Tokens(tokens);
        let bearer = format!("Bearer {a}");
        assert_eq!(
            access.push_slot(Some(&bearer), None),
            Ok(Some("slot-a".into()))
        );
        assert_eq!(
            access.push_slot(Some(&bearer), Some("slot-a")),
            Ok(Some("slot-a".into()))
        );
        assert!(matches!(
            access.push_slot(Some(&bearer), Some("slot-b")),
            Err(Denied::WrongSlot { .. })
        ));
        assert_eq!(access.push_slot(None, Some("slot-a")), Err(Denied::Missing));
        assert_eq!(
            access.push_slot(Some("Bearer 00"), None),
            Err(Denied::Unknown)
        );
        assert_eq!(
            access.push_slot(Some("Digest x"), None),
            Err(Denied::Missing)
        );
        assert_eq!(
            Access::ReadOnly.push_slot(Some(&bearer), None),
            Err(Denied::ReadOnly)
        );
        // HTTP Basic: the token is the password, the user name is anything.
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("leaf:{a}"));
        assert_eq!(
            access.push_slot(Some(&format!("Basic {basic}")), None),
            Ok(Some("slot-a".into()))
        );
        assert!(!format!("{access:?}").contains(&a), "secrets never printed");
    }

    #[test]
    fn an_open_hub_takes_the_header() {
        assert_eq!(
            Access::Open.push_slot(None, Some("s")),
            Ok(Some("s".into()))
        );
        assert_eq!(Access::Open.push_slot(None, None), Ok(None));
    }
}
