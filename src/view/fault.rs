//! A test-only fault, built with the `test-clock` feature (the test suite is; release builds
//! are not): a lookup of the name `VAULTFS_TEST_PANIC_NAME` gives panics where this is called,
//! standing in for a bug met by one request while it holds a lock.

use std::sync::OnceLock;

pub fn panic_if_named(name: &[u8]) {
    static NAME: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    let wanted = NAME.get_or_init(|| {
        std::env::var_os("VAULTFS_TEST_PANIC_NAME").map(|v| v.into_encoded_bytes())
    });
    if wanted.as_deref() == Some(name) {
        panic!(
            "test fault: a request for {:?}",
            String::from_utf8_lossy(name)
        );
    }
}
