//! openclaw(1), generated from the clap tree so it cannot drift from the real flags: the
//! top-level page, then one subsection per command with its synopsis, description and
//! options, then exit status, environment, files and examples. Deterministic: no date, only
//! the package version.

use std::io::{self, Write};

use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

/// Arguments every subcommand inherits; documented once, under the top-level OPTIONS.
const INHERITED_ARGS: [&str; 4] = ["json", "verbose", "help", "version"];

pub fn render(cmd: clap::Command) -> String {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut page = Page::new();
    let man = Man::new(cmd.clone());
    // Written by hand: clap_mangen renders the empty date as nothing at all, which shifts the
    // source and manual into the date's place.
    let title = format!(
        ".TH OPENCLAW 1 \"\" \"openclaw {}\" \"User Commands\"\n",
        env!("CARGO_PKG_VERSION")
    );
    page.push(|w| w.write_all(title.as_bytes()), true);
    page.push(|w| man.render_name_section(w), true);
    let mut head = Roff::new();
    head.control("SH", ["SYNOPSIS"]);
    page.push_roff(&head);
    page.push_roff(&synopsis(&cmd, &["help", "version"]));
    page.push(|w| man.render_description_section(w), true);
    page.push(|w| man.render_options_section(w), true);

    page.push_roff(Roff::new().control("SH", ["COMMANDS"]));
    for leaf in leaf_commands(&cmd) {
        render_command(&mut page, leaf);
    }
    page.push_roff(&extra_sections());
    page.push(|w| man.render_version_section(w), true);
    page.text
}

/// Every runnable command, depth first in declaration order, without hidden ones.
fn leaf_commands(cmd: &clap::Command) -> Vec<&clap::Command> {
    let mut leaves = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.has_subcommands() {
            leaves.extend(leaf_commands(sub));
        } else {
            leaves.push(sub);
        }
    }
    leaves
}

fn render_command(page: &mut Page, cmd: &clap::Command) {
    let cmd = cmd.clone().mut_args(|arg| {
        if INHERITED_ARGS.contains(&arg.get_id().as_str()) {
            arg.hide(true)
        } else {
            arg
        }
    });
    let title = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string();
    page.push_roff(Roff::new().control("SS", [title.as_str()]));
    // The section headings of a full page would end this subsection; the content stays.
    page.push_roff(&synopsis(&cmd, &INHERITED_ARGS));
    let man = Man::new(cmd);
    page.push_roff(Roff::new().control("PP", []));
    page.push(|w| man.render_description_section(w), false);
    page.push(|w| man.render_options_section(w), false);
}

/// A command's synopsis with the value each option takes (`[--agent ID]`), options in the
/// order they are declared, then the positional arguments; `skip` are documented elsewhere.
fn synopsis(cmd: &clap::Command, skip: &[&str]) -> Roff {
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string();
    let mut line = vec![bold(name)];
    let grouped: Vec<clap::Id> = cmd
        .get_groups()
        .filter(|g| g.is_required_set())
        .flat_map(|g| g.get_args().cloned().collect::<Vec<_>>())
        .collect();
    let shown = |arg: &&clap::Arg| {
        !arg.is_hide_set()
            && !skip.contains(&arg.get_id().as_str())
            && !grouped.contains(arg.get_id())
    };
    let options: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(shown)
        .filter(|a| !a.is_positional())
        .collect();
    for required in [false, true] {
        for arg in options.iter().filter(|a| a.is_required_set() == required) {
            line.push(roman(if required { " " } else { " [" }));
            line.extend(arg_form(arg));
            if !required {
                line.push(roman("]"));
            }
            if repeats(arg) {
                line.push(roman("..."));
            }
        }
    }
    for group in cmd.get_groups().filter(|g| g.is_required_set()) {
        line.push(roman(" ("));
        for (i, id) in group.get_args().enumerate() {
            if i > 0 {
                line.push(roman(" | "));
            }
            if let Some(arg) = cmd.get_arguments().find(|a| a.get_id() == id) {
                line.extend(arg_form(arg));
            }
        }
        line.push(roman(")"));
    }
    for arg in cmd.get_positionals().filter(shown) {
        let value = value_name(arg);
        let trailing = arg.is_last_set();
        line.push(roman(if arg.is_required_set() { " " } else { " [" }));
        if trailing {
            line.push(bold("--"));
            line.push(roman(" "));
        }
        line.push(italic(value));
        if repeats(arg) {
            line.push(roman("..."));
        }
        if !arg.is_required_set() {
            line.push(roman("]"));
        }
    }
    if cmd.has_subcommands() {
        line.push(roman(" "));
        line.push(italic("COMMAND"));
    }
    let mut roff = Roff::new();
    roff.text(line);
    roff
}

/// `-q|--quiet`, `--agent ID`, or a positional's `KEY`.
fn arg_form(arg: &clap::Arg) -> Vec<clap_mangen::roff::Inline> {
    if arg.is_positional() {
        return vec![italic(value_name(arg))];
    }
    let mut form = Vec::new();
    if let Some(short) = arg.get_short() {
        form.push(bold(format!("-{short}")));
    }
    if let Some(long) = arg.get_long() {
        if !form.is_empty() {
            form.push(roman("|"));
        }
        form.push(bold(format!("--{long}")));
    }
    if arg.get_action().takes_values() {
        form.push(roman(" "));
        form.push(italic(value_name(arg)));
    }
    form
}

fn value_name(arg: &clap::Arg) -> String {
    arg.get_value_names()
        .map(|names| {
            names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase())
}

fn repeats(arg: &clap::Arg) -> bool {
    matches!(
        arg.get_action(),
        clap::ArgAction::Append | clap::ArgAction::Count
    )
}

/// What a page of a command's own flags cannot say: exit status, environment, files.
fn extra_sections() -> Roff {
    let mut roff = Roff::new();
    let item = |roff: &mut Roff, term: &str, text: &str| {
        roff.control("TP", [])
            .text([bold(term)])
            .text([roman(text)]);
    };

    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
        ("0", "Success."),
        (
            "1",
            "The run failed (its error is on stderr), the daemon is busy (the message says when to retry), or another error.",
        ),
        (
            "2",
            "Usage: a bad command line, or parameters the daemon refused.",
        ),
        (
            "3",
            "The daemon is not running and could not be started, or went away.",
        ),
        ("4", "Not found: no such session or run."),
        (
            "5",
            "Not permitted: the socket or the process listening there is not one this user should talk to (another user's directory or process; nothing was sent), the socket is not open to this user, this device is not paired with the daemon (the message names the request the owner approves with `openclaw pairing approve`), the device key cannot be used, or the device lacks the scope the command needs.",
        ),
        (
            "124",
            "The wait ended before the run did; the run goes on (`openclaw sessions wait RUN_ID` waits again).",
        ),
        (
            "130",
            "Interrupted by Ctrl-C. A command that waited for a run (send, wait, spawn --wait or --follow, send --stream) says on stderr that the run goes on and how to wait for it again; follow and subscribe stop quietly.",
        ),
    ] {
        item(&mut roff, code, meaning);
    }

    roff.control("SH", ["ENVIRONMENT"]);
    for (name, meaning) in [
        (
            "OPENCLAW_HOME",
            "Keep everything under one directory: DIR/config.toml, DIR/data/ and DIR/openclaw.sock.",
        ),
        (
            "OPENCLAW_SOCKET",
            "The daemon's socket, overriding every other rule.",
        ),
        (
            "OPENCLAW_NO_AUTOSTART",
            "When 1 (or true, yes), commands do not start the daemon when it is not running; they exit with status 3. `openclaw daemon start` still starts it.",
        ),
        (
            "OPENCLAWD",
            "The daemon binary to start; by default the openclawd next to openclaw, else the one on PATH.",
        ),
        (
            "XDG_CONFIG_HOME, XDG_DATA_HOME, XDG_RUNTIME_DIR",
            "Where config, data and socket live when OPENCLAW_HOME is not set.",
        ),
        (
            "NO_COLOR",
            "When set and not empty, no colour, even on a terminal.",
        ),
        (
            "COLUMNS",
            "The width `sessions list` fits its table to on a terminal (by default the terminal's own).",
        ),
    ] {
        item(&mut roff, name, meaning);
    }

    roff.control("SH", ["FILES"]);
    for (path, meaning) in [
        (
            "$XDG_CONFIG_HOME/openclaw/config.toml",
            "Agents, lanes and socket settings; every key is optional, and no file is needed.",
        ),
        (
            "$XDG_DATA_HOME/openclaw/",
            "The session store (openclaw.db), session workspaces, and openclawd.log, where a daemon started on demand writes its output (`openclaw daemon logs`).",
        ),
        (
            "$XDG_RUNTIME_DIR/openclaw/openclaw.sock",
            "The daemon's socket (without XDG_RUNTIME_DIR: /run/user/UID/openclaw/ when it exists, else /tmp/openclaw-UID/). The directory also holds openclaw.start.lock, which lets only one command at a time start the daemon.",
        ),
        (
            "$XDG_CONFIG_HOME/openclaw/device.key",
            "This user's device key (Ed25519, mode 0600; with OPENCLAW_HOME, DIR/device.key). Made the first time a daemon owned by another user asks this openclaw to prove its device, which it then does by itself on every connection; the daemon's owner never needs one. A key other users can read is refused (`chmod 600` it). Deleting it makes a new device, which needs approving again.",
        ),
        (
            "$XDG_CONFIG_HOME/openclaw/paired-daemons.json",
            "For a device paired with another user's daemon: that daemon's uid for each socket, so that nothing else listening there later is trusted.",
        ),
        (
            "$XDG_CONFIG_HOME/systemd/user/openclawd.service, openclawd.socket",
            "Written by `openclaw daemon install-service`.",
        ),
    ] {
        item(&mut roff, path, meaning);
    }

    roff.control("SH", ["EXAMPLES"]);
    for (command, meaning) in [
        (
            "key=$(openclaw sessions spawn --task \"run the daily report\")",
            "Start a session; prints its key at once.",
        ),
        (
            "openclaw sessions history \"$key\"",
            "The task and, once the agent is done, its reply.",
        ),
        (
            "openclaw sessions send \"$key\" \"and the weekly one\"",
            "Wait (up to 30 s) for the reply and print it.",
        ),
        (
            "openclaw sessions send \"$key\" later --no-wait",
            "Print the run id at once; `openclaw sessions wait RUN_ID --timeout 5` waits for it later.",
        ),
        (
            "openclaw sessions follow \"$key\" --from-start --until-done",
            "The whole transcript, then new messages as they land; exits when the run ends, with its outcome as exit status.",
        ),
        (
            "openclaw sessions send \"$key\" \"build it\" --stream",
            "The reply as it is written, tool calls on stderr.",
        ),
        (
            "openclaw sessions subscribe --json --events lifecycle",
            "One JSON line per session created, started, ended or deleted, and per run queued, started or ended.",
        ),
        (
            "openclaw pairing approve 7f3a1b2c --scopes sessions.read",
            "As the daemon's owner: admit the device of request 7f3a1b2c (named in the error the other user saw) to list, read and follow its own sessions, nothing more.",
        ),
        (
            "openclaw pairing revoke 3fa9c1d2",
            "Unpair a device; its open connections are dropped at once.",
        ),
        (
            "openclaw sessions list --all --json",
            "Every session, however many, as one JSON object (a plain list stops at 50 and says so on stderr).",
        ),
        (
            "openclaw daemon logs -f",
            "The daemon's log as it is written.",
        ),
        (
            "0 6 * * * $HOME/.cargo/bin/openclaw sessions spawn --task \"run the daily report\"",
            "A crontab line (cron's PATH is minimal: give the full path): works with cron's environment and no terminal.",
        ),
    ] {
        roff.control("TP", [])
            .text([bold(command)])
            .text([roman(meaning)]);
    }

    roff.control("SH", ["SEE ALSO"]);
    roff.text([bold("openclawd"), roman("(8)")]);
    roff.control("SH", ["NOTES"]);
    roff.text([
        roman("Session keys look like "),
        italic("agent:AGENT:main"),
        roman(" or "),
        italic("agent:AGENT:subagent:UUID"),
        roman("; a key without a prefix is under the default agent (`main` is agent:main:main). Wherever a session is named, its key, its id, a unique prefix of either (6 characters or more) or its label will do; a name that fits several sessions is refused, listing them (exit 2)."),
    ]);
    roff
}

/// The page as it is assembled. Each rendered piece starts with the same roff preamble
/// (apostrophe handling); the page has it once, at the top.
struct Page {
    text: String,
    preamble: String,
}

impl Page {
    fn new() -> Page {
        let preamble = Roff::new().render();
        Page {
            text: preamble.clone(),
            preamble,
        }
    }

    fn push(&mut self, render: impl FnOnce(&mut Vec<u8>) -> io::Result<()>, keep_headings: bool) {
        let mut bytes = Vec::new();
        // Rendering into a Vec cannot fail.
        let _ = render(&mut bytes);
        let piece = String::from_utf8_lossy(&bytes);
        let body = piece.strip_prefix(&self.preamble).unwrap_or(&piece);
        for line in body.lines() {
            if keep_headings || !line.starts_with(".SH ") {
                self.text.push_str(line);
                self.text.push('\n');
            }
        }
    }

    fn push_roff(&mut self, roff: &Roff) {
        self.push(|w| roff.to_writer(w), true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn page() -> String {
        render(crate::Cli::command())
    }

    #[test]
    fn page_is_deterministic() {
        assert_eq!(page(), page());
    }

    #[test]
    fn every_command_has_a_subsection() {
        let page = page();
        for cmd in [
            "openclaw sessions spawn",
            "openclaw sessions send",
            "openclaw sessions wait",
            "openclaw sessions follow",
            "openclaw sessions subscribe",
            "openclaw sessions history",
            "openclaw sessions list",
            "openclaw sessions kill",
            "openclaw sessions patch",
            "openclaw sessions delete",
            "openclaw daemon start",
            "openclaw daemon stop",
            "openclaw daemon status",
            "openclaw daemon run",
            "openclaw agents list",
            "openclaw pairing list",
            "openclaw pairing approve",
            "openclaw pairing reject",
            "openclaw pairing revoke",
            "openclaw completions",
        ] {
            assert!(
                page.contains(&format!(".SS \"{cmd}\"")),
                "no subsection for {cmd}"
            );
        }
        assert!(!page.contains("__man"));
    }

    #[test]
    fn page_documents_exit_codes_and_environment() {
        let page = page();
        for needle in [
            ".SH \"EXIT STATUS\"",
            "124",
            "130",
            "OPENCLAW_NO_AUTOSTART",
            "NO_COLOR",
        ] {
            assert!(page.contains(needle), "missing {needle}");
        }
        assert_eq!(page.matches(".TH ").count(), 1);
        // The preamble appears once.
        let preamble = Roff::new().render();
        assert_eq!(page.matches(preamble.trim_end()).count(), 1);
    }

    #[test]
    fn synopses_show_the_values_options_take() {
        let page = page()
            .replace("\\-", "-")
            .replace("\\fB", "")
            .replace("\\fI", "")
            .replace("\\fR", "");
        for needle in [
            "openclaw sessions spawn [--agent ID] [--key cron:NAME|hook:NAME] [--label LABEL]",
            "[--attach FILE]...",
            " --task TEXT",
            "openclaw sessions send [--timeout SECS]",
            " KEY MESSAGE",
            "openclaw sessions wait [--timeout SECS] (RUN_ID | --session KEY)",
            "openclaw daemon run [-- ARGS...]",
            "openclaw [--json] [-v|--verbose]... COMMAND",
        ] {
            assert!(page.contains(needle), "{needle:?} not in the page");
        }
        assert!(!page.contains(".SH EXTRA") && !page.contains("EXTRA"));
    }

    #[test]
    fn subcommand_options_are_listed_without_inherited_ones() {
        let page = page();
        let spawn = page
            .split(".SS \"openclaw sessions spawn\"")
            .nth(1)
            .and_then(|rest| rest.split(".SS ").next())
            .unwrap();
        assert!(spawn.contains(".TP\n\\fB\\-\\-task\\fR"), "{spawn}");
        assert!(!spawn.contains(".TP\n\\fB\\-\\-json\\fR"), "{spawn}");
    }
}
