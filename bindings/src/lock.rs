use std::sync::{Mutex, MutexGuard};

/// Locks a streaming object's state.
///
/// The lock is poisoned only if a core call panicked while holding it. The
/// state may then be half updated, so the object refuses further use: this
/// panics again, and uniffi raises that as an exception to the caller, as it
/// did the first time.
pub(crate) fn lock<'a, T>(state: &'a Mutex<T>, what: &str) -> MutexGuard<'a, T> {
    match state.lock() {
        Ok(guard) => guard,
        Err(_) => panic!("this {what} failed earlier with an internal error; create a new one"),
    }
}
