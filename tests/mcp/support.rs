//! What the MCP tests share: the official SDK's scripts and the reference server in this
//! directory (installed by `npm ci`, as `.ci/run` does), and Node to run them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `tests/mcp`, with its packages installed; fails the test, saying how to fix it, when they
/// are not (the tests cannot mean anything without the SDK).
pub fn sdk_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp");
    assert!(
        dir.join("node_modules/@modelcontextprotocol/sdk").is_dir()
            && dir
                .join("node_modules/@modelcontextprotocol/server-everything")
                .is_dir(),
        "the MCP SDK test packages are not installed: run `npm ci` in {}",
        dir.display()
    );
    dir
}

/// Node, from the system paths.
pub fn node() -> PathBuf {
    super::common::system_tool("node").expect("node (Node 20) is needed by the MCP tests")
}

/// The reference MCP server of the protocol's authors, on stdio.
pub fn everything_server() -> Vec<String> {
    vec![
        node().display().to_string(),
        sdk_dir()
            .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
            .display()
            .to_string(),
        "stdio".to_string(),
    ]
}

/// The command line of a process, its arguments joined by spaces.
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The parent of a process.
pub fn ppid(pid: i32) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Live children of `parent` whose command line contains `needle`.
pub fn children_matching(parent: i32, needle: &str) -> Vec<i32> {
    super::common::all_pids()
        .into_iter()
        .filter(|&pid| ppid(pid) == Some(parent))
        .filter(|&pid| {
            super::common::proc_stat(pid).is_some_and(|(_, state, ..)| state != 'Z' && state != 'X')
        })
        .filter(|&pid| cmdline(pid).contains(needle))
        .collect()
}
