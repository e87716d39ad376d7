//! Where files go (`--root`) and how they get there (atomically).

mod atomic;
mod root;
mod stale;

pub use atomic::{write_atomic, FileMeta, WriteOutcome};
pub use root::Root;
