//! The one place a panic from a dependency is caught and turned into an error.
//!
//! The `mustache` crate (Init `files.context`) panics (`bug!`) on a well-formed template when a
//! variable tag (`{{x}}`, `{{{x}}}`) names a boolean, a list or a mapping: data from the stack's
//! Metadata would crash the whole run (exit 101, no FAILURE signal). Its tokens are private, so
//! there is nothing to check up front; the render runs inside [`contain`] instead.
//!
//! The default panic hook would still print the panic message, with the offending value's
//! `Debug` (which may hold a secret from the context), to the journal: while a [`contain`] call
//! runs on a thread, the hook installed here records the message for it instead of printing;
//! every other panic goes to the previous hook unchanged.

use std::cell::RefCell;
use std::panic::{self, UnwindSafe};
use std::sync::Once;

thread_local! {
    /// `Some` while this thread is inside [`contain`]: the message of a panic caught there.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`; a panic in it becomes `Err(panic message)`, printed nowhere.
pub fn contain<T>(f: impl FnOnce() -> T + UnwindSafe) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let inside = CAUGHT.with(|c| {
                let mut c = c.borrow_mut();
                match c.as_mut() {
                    Some(slot) => {
                        *slot = message(info.payload());
                        true
                    }
                    None => false,
                }
            });
            if !inside {
                previous(info);
            }
        }));
    });
    let outer = CAUGHT.with(|c| c.borrow_mut().replace(String::new()));
    let r = panic::catch_unwind(f);
    let caught = CAUGHT.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    r.map_err(|payload| caught.unwrap_or_else(|| message(&*payload)))
}

fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_values_pass_through() {
        assert_eq!(contain(|| 7), Ok(7));
        let e = contain(|| -> u8 { panic!("bug: {}", 42) }).unwrap_err();
        assert_eq!(e, "bug: 42");
        // Nested: the inner panic is the inner call's; the outer call still works.
        let outer = contain(|| {
            let inner = contain(|| -> () { panic!("inner") });
            assert_eq!(inner.unwrap_err(), "inner");
            1
        });
        assert_eq!(outer, Ok(1));
    }
}
