//! Faults (issue 14): a seeded schedule of real injections run beside the work phase, and
//! each fault measured against an SLA.
//!
//! [`spec`] is the schedule's syntax (`--faults`, `HERD_FAULTS`, `[[faults]]`) and the SLA;
//! [`driver`] injects and heals (it may touch only the bus servers the trial started, by
//! signal and restart on the same store and port); [`measure`] turns what the run left (the
//! driver's records, the history, the commit times) into detect/recover times, costs and
//! misses; [`report`] writes them out with the repro line. The trial's gates fail on any miss (exit 1).

pub mod disk;
pub mod driver;
pub mod leaf;
pub mod link;
pub mod measure;
pub mod report;
pub mod spec;

pub use driver::FaultRecord;
pub use measure::{FaultResult, measure};
pub use spec::{FaultKind, FaultSla, FaultSpec, Target, When};
