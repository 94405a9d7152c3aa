//! The man pages in man/ are generated from the clap definitions; this keeps them in sync.
//! `OPENCLAW_UPDATE_MAN=1 cargo test --test man_pages` rewrites them instead of failing.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{OPENCLAW, OPENCLAWD, output_within, stderr};

fn man_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("man")
        .join(name)
}

fn generated(bin: &str, arg: &str) -> String {
    let mut cmd = Command::new(bin);
    cmd.arg(arg).env("NO_COLOR", "1");
    let out = output_within(&mut cmd, 30, &format!("{bin} {arg}"));
    assert!(
        out.status.success(),
        "`{bin} {arg}` failed ({:?}): {}",
        out.status.code(),
        stderr(&out)
    );
    let text = String::from_utf8(out.stdout).expect("man page is UTF-8");
    assert!(
        text.contains(".TH"),
        "`{bin} {arg}` did not print a roff man page:\n{text}"
    );
    text
}

fn check(file: &str, bin: &str, arg: &str, regenerate: &str) -> String {
    let want = generated(bin, arg);
    let path = man_file(file);
    if std::env::var("OPENCLAW_UPDATE_MAN").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).expect("mkdir man");
        std::fs::write(&path, &want).expect("write man page");
        eprintln!("updated {}", path.display());
        return want;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        let first_diff = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(have.lines().count().min(want.lines().count()));
        panic!(
            "man/{file} is stale or missing (first difference at line {}). Regenerate it with:\n\n    \
             {regenerate}\n\n(or run `OPENCLAW_UPDATE_MAN=1 cargo test --test man_pages`)\n\
             committed line: {:?}\ngenerated line: {:?}",
            first_diff + 1,
            have.lines().nth(first_diff),
            want.lines().nth(first_diff),
        );
    }
    want
}

#[test]
fn openclaw_1_is_current() {
    check(
        "openclaw.1",
        OPENCLAW,
        "__man",
        "cargo run -q --bin openclaw -- __man > man/openclaw.1",
    );
}

#[test]
fn openclawd_8_is_current() {
    check(
        "openclawd.8",
        OPENCLAWD,
        "--print-man",
        "cargo run -q --bin openclawd -- --print-man > man/openclawd.8",
    );
}

#[test]
fn openclaw_1_covers_every_command_and_the_exit_codes() {
    // roff escapes hyphens as `\-`.
    let page = generated(OPENCLAW, "__man").replace("\\-", "-");
    for word in [
        "spawn",
        "send",
        "wait",
        "history",
        "list",
        "kill",
        "patch",
        "delete",
        "daemon",
        "status",
        "agents",
        "completions",
        "--json",
        "--no-wait",
        "--idempotency-key",
        "124",
    ] {
        assert!(page.contains(word), "openclaw.1 should mention {word:?}");
    }
    let dpage = generated(OPENCLAWD, "--print-man");
    assert!(
        dpage.contains("ready"),
        "openclawd.8 should document --ready-fd"
    );
}

/// `man openclaw` after the README's install: the page sits in `share/man/man1` beside the
/// `bin` directory on PATH, where man-db looks, and renders without a roff warning.
#[test]
fn man_finds_the_installed_page_and_renders_it_cleanly() {
    let Some(man) = ["/usr/bin/man", "/bin/man"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
    else {
        eprintln!("SKIP man_finds_the_installed_page_and_renders_it_cleanly: no man(1) here");
        return;
    };
    let prefix = tempfile::tempdir().expect("tempdir");
    let bin = prefix.path().join("bin");
    let pages = prefix.path().join("share/man/man1");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&pages).unwrap();
    std::fs::copy(man_file("openclaw.1"), pages.join("openclaw.1")).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let mut which = Command::new(&man);
    which
        .args(["-w", "openclaw"])
        .env_clear()
        .env("PATH", &path)
        .env("HOME", prefix.path());
    let out = output_within(&mut which, 30, "man -w openclaw");
    assert!(out.status.success(), "man -w openclaw: {}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        pages.join("openclaw.1").display().to_string()
    );
    let mut render = Command::new(&man);
    render
        .args(["--warnings", "-l"])
        .arg(pages.join("openclaw.1"))
        .env_clear()
        .env("PATH", &path)
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "")
        .env("HOME", prefix.path());
    let out = output_within(&mut render, 60, "man -l openclaw.1");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "roff warnings");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("openclaw sessions spawn"), "{text}");
    assert!(!text.contains("EXTRA"), "{text}");
}
