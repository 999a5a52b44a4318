//! Property-based fuzzing (proptest), bounded for CI by `PROPTEST_CASES`;
//! a longer run: `PROPTEST_CASES=100000 cargo test --test fuzz`.
//!
//! One test binary of modules (one module per former `tests/*.rs` file).

// The parsers of admin input: rules and the config file.
mod fuzz_parsers;
// The readers of untrusted bytes: the control protocol and catalog backups.
mod fuzz_untrusted;
