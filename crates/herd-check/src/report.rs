//! The checker's verdict: pass, fail (each violation named), or inconclusive (an artifact is
//! missing, so nothing can be claimed either way).

use serde::{Deserialize, Serialize};

/// One broken invariant, naming what broke it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Invariant id (`I1`, `I1b`, `I2`, `I3`, `I4`, `I4b`, `I6`, `I9`, `I11`).
    pub invariant: String,
    /// What is wrong, with task, oid, leaf or path.
    pub message: String,
}

/// The checker's overall answer.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every invariant holds.
    Pass,
    /// At least one violation.
    Fail,
    /// An artifact is missing or unreadable.
    Inconclusive,
}

/// What `check` returns and `results.json` embeds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// The verdict.
    pub verdict: Verdict,
    /// Invariants evaluated.
    pub invariants: Vec<String>,
    /// Every violation found.
    pub violations: Vec<Violation>,
    /// Why the verdict is inconclusive (missing artifacts).
    pub missing: Vec<String>,
}

impl CheckReport {
    /// `history check: PASS (13 invariants)` / `FAIL (2 violations: I1, I4)` / `INCONCLUSIVE (...)`.
    pub fn summary_line(&self) -> String {
        match self.verdict {
            Verdict::Pass => format!("history check: PASS ({} invariants)", self.invariants.len()),
            Verdict::Fail => {
                let mut ids: Vec<&str> = self
                    .violations
                    .iter()
                    .map(|v| v.invariant.as_str())
                    .collect();
                ids.dedup();
                format!(
                    "history check: FAIL ({} violations: {})",
                    self.violations.len(),
                    ids.join(", ")
                )
            }
            Verdict::Inconclusive => format!(
                "history check: INCONCLUSIVE (missing: {})",
                self.missing.join(", ")
            ),
        }
    }

    /// Process exit code for `herd check`: 0 pass, 1 fail, 2 inconclusive.
    pub fn exit_code(&self) -> u8 {
        match self.verdict {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Inconclusive => 2,
        }
    }
}
