//! The invariants, one file per family. Each takes the loaded artifacts and returns the
//! violations it found; none consults a counter of the runner.

pub mod commits;
pub mod fencing;
pub mod hygiene;
pub mod ledger;
pub mod reach;
pub mod spans;
pub mod tasks;
pub mod tips;
pub mod updates;

use crate::report::Violation;

pub(crate) fn violation(invariant: &str, message: String) -> Violation {
    Violation {
        invariant: invariant.to_string(),
        message,
    }
}
