//! Peregrine's load generator: an open loop at fixed rates against the
//! engine in-process or a server over HTTP, latency measured from each
//! execution's intended start (coordinated omission corrected), HDR
//! histograms per thread merged at the end, reports in the seed's form.

mod embedded;
mod error;
mod http;
mod kafka;
mod latency;
mod machine;
mod options;
mod orders;
mod plot;
mod report;
mod resume;
mod runner;
mod schedule;
mod search;

pub use error::{Error, Result};
pub use latency::{Outcome, Tally};
pub use options::{Durability, Mode, Options, OptionsError, ResumePath, Settings};
pub use orders::{Expected, expected_total_price, order};
pub use report::{FindMaxReport, Report, RunReport, SeedColumns, kestra_seed, markdown_table};
pub use resume::{ResumeReport, ServerUsage, resume_table};
pub use runner::run;
pub use schedule::Schedule;
pub use search::{MaxSearch, sustainable};
