//! Where files go (`--root`) and how they get there (atomically).

mod atomic;
mod root;

pub use atomic::{write_atomic, FileMeta, WriteOutcome};
pub use root::Root;
