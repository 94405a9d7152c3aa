//! `openclaw` commands against a test's daemon, each bounded by a deadline, their exit status
//! checked with what they printed in the failure.

use std::process::Output;

use serde_json::Value;

use super::{Daemon, describe, output_within, stdout};

/// How long one command may take before the test fails naming it.
pub const CALL_SECS: u64 = 20;

/// Runs `openclaw ARGS...` to completion, within [`CALL_SECS`].
pub fn run(d: &Daemon, args: &[&str]) -> Output {
    output_within(d.cli().args(args), CALL_SECS, &args.join(" "))
}

/// Runs it and asserts its exit status.
pub fn exit(d: &Daemon, args: &[&str], code: i32) -> Output {
    let out = run(d, args);
    assert_eq!(out.status.code(), Some(code), "{}", describe(args, &out));
    out
}

/// Runs it, asserts exit 0, returns stdout without its trailing newline.
pub fn ok(d: &Daemon, args: &[&str]) -> String {
    stdout(&exit(d, args, 0)).trim_end().to_string()
}

/// Runs it with `--json` and parses stdout.
pub fn json(d: &Daemon, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&ok(d, &all)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}
