//! Where files go (`--root`) and how they get there (atomically).

mod atomic;
mod dir;
pub mod resolve;
mod root;
mod stale;

pub use atomic::{write_atomic, FileMeta, WriteOutcome};
pub use dir::Dir;
pub use root::Root;
pub(crate) use stale::temp_prefix;
