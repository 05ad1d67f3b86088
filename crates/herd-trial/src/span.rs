//! `Span`: an inclusive `min..=max` knob (files per task, bytes per file, think time).
//! Written `1-4` on the command line and in `HERD_*` variables, `{ min = 1, max = 4 }` or
//! `"1-4"` in TOML; a single number means `min = max`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// An inclusive range of whole numbers.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Smallest value.
    pub min: u64,
    /// Largest value.
    pub max: u64,
}

impl Span {
    /// `min..=max`.
    pub const fn new(min: u64, max: u64) -> Span {
        Span { min, max }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

impl FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Span, String> {
        let num = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("{s:?} is not N or MIN-MAX (whole numbers)"))
        };
        match s.split_once('-') {
            Some((a, b)) => Ok(Span {
                min: num(a)?,
                max: num(b)?,
            }),
            None => {
                let n = num(s)?;
                Ok(Span { min: n, max: n })
            }
        }
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Num(u64),
            Pair([u64; 2]),
            Table { min: u64, max: u64 },
        }
        match Repr::deserialize(d)? {
            Repr::Text(s) => s.parse().map_err(serde::de::Error::custom),
            Repr::Num(n) => Ok(Span::new(n, n)),
            Repr::Pair([min, max]) | Repr::Table { min, max } => Ok(Span { min, max }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_spellings() {
        assert_eq!("1-4".parse::<Span>().unwrap(), Span::new(1, 4));
        assert_eq!("7".parse::<Span>().unwrap(), Span::new(7, 7));
        assert!("a-4".parse::<Span>().is_err());
        assert!("-4".parse::<Span>().is_err());
        #[derive(Deserialize)]
        struct T {
            a: Span,
            b: Span,
            c: Span,
            d: Span,
        }
        let t: T =
            toml::from_str("a = \"2-3\"\nb = 5\nc = [1, 9]\nd = { min = 4, max = 6 }").unwrap();
        assert_eq!(
            (t.a, t.b, t.c, t.d),
            (
                Span::new(2, 3),
                Span::new(5, 5),
                Span::new(1, 9),
                Span::new(4, 6)
            )
        );
    }
}
