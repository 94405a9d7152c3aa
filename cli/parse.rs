//! Parsing the command line without building the whole command tree.
//!
//! clap's derive builds every command, argument and help text before it parses, and drops
//! them all after: half of the instructions an `openclaw sessions spawn` executes (issue 16).
//! A command line that names a command (`sessions spawn ...`) is parsed first against a tree
//! holding that one command; anything that does not parse there cleanly (help, a typo, an
//! unknown command) is parsed again against the whole tree, so what the user sees for it is
//! exactly clap's. A test checks that every command of the whole tree is built here with the
//! same arguments, so the two cannot drift apart.

use std::ffi::OsString;

use clap::{Args, Command, FromArgMatches, Parser};

use crate::Cli;
use crate::commands::daemon::{LogsArgs, RunArgs, ServiceArgs, StopArgs};
use crate::commands::http::TokenArgs;
use crate::commands::pairing::{ApproveArgs, RejectArgs, RevokeArgs};
use crate::commands::sessions::{
    DeleteArgs, FollowArgs, HistoryArgs, KillArgs, ListArgs, PatchArgs, SendArgs, ShowArgs,
    SpawnArgs, SubscribeArgs, WaitArgs,
};

pub fn parse(args: &[OsString]) -> Result<Cli, clap::Error> {
    if let Some(cli) = parse_one(args) {
        return Ok(cli);
    }
    Cli::try_parse_from(args)
}

/// The command line parsed against a tree of the one command it names, if it parses.
fn parse_one(args: &[OsString]) -> Option<Cli> {
    // The global options, which take no value, may come first.
    let mut words = args
        .iter()
        .skip(1)
        .map(|a| a.to_str())
        .skip_while(|w| w.is_some_and(|w| w == "--json" || w == "--verbose" || is_vs(w)));
    let group = words.next()??;
    let name = words.next()??;
    let (group, leaf) = command(group, name)?;
    let tree = crate::Globals::augment_args(root()).subcommand(
        Command::new(group)
            .subcommand_required(true)
            .arg_required_else_help(true)
            .subcommand(leaf),
    );
    let matches = tree.try_get_matches_from(args).ok()?;
    Cli::from_arg_matches(&matches).ok()
}

/// `-v`, `-vv`, ...
fn is_vs(word: &str) -> bool {
    word.len() > 1 && word.starts_with('-') && word[1..].bytes().all(|b| b == b'v')
}

/// What the derive sets on the top of the tree, as far as parsing goes.
fn root() -> Command {
    Command::new("openclaw")
        .version(openclaw::VERSION)
        .subcommand_required(true)
        .arg_required_else_help(true)
}

/// The command `group name` alone, with its arguments as its `Args` type defines them, and
/// its group's name.
fn command(group: &str, name: &str) -> Option<(&'static str, Command)> {
    let with = |n: &'static str, augment: fn(Command) -> Command| augment(Command::new(n));
    let bare = |n: &'static str| Command::new(n);
    let leaf = match (group, name) {
        ("sessions", "spawn") => ("sessions", with("spawn", SpawnArgs::augment_args)),
        ("sessions", "send") => ("sessions", with("send", SendArgs::augment_args)),
        ("sessions", "wait") => ("sessions", with("wait", WaitArgs::augment_args)),
        ("sessions", "follow") => ("sessions", with("follow", FollowArgs::augment_args)),
        ("sessions", "subscribe") => ("sessions", with("subscribe", SubscribeArgs::augment_args)),
        ("sessions", "history") => ("sessions", with("history", HistoryArgs::augment_args)),
        ("sessions", "list") => ("sessions", with("list", ListArgs::augment_args)),
        ("sessions", "show") => ("sessions", with("show", ShowArgs::augment_args)),
        ("sessions", "kill") => ("sessions", with("kill", KillArgs::augment_args)),
        ("sessions", "patch") => ("sessions", with("patch", PatchArgs::augment_args)),
        ("sessions", "delete") => ("sessions", with("delete", DeleteArgs::augment_args)),
        ("daemon", "start") => ("daemon", bare("start")),
        ("daemon", "reload") => ("daemon", bare("reload")),
        ("daemon", "status") => ("daemon", bare("status")),
        ("daemon", "stop") => ("daemon", with("stop", StopArgs::augment_args)),
        ("daemon", "restart") => ("daemon", with("restart", StopArgs::augment_args)),
        ("daemon", "logs") => ("daemon", with("logs", LogsArgs::augment_args)),
        ("daemon", "run") => ("daemon", with("run", RunArgs::augment_args)),
        ("daemon", "install-service") => {
            ("daemon", with("install-service", ServiceArgs::augment_args))
        }
        ("agents", "list") => ("agents", bare("list")),
        ("pairing", "list") => ("pairing", bare("list")),
        ("pairing", "approve") => ("pairing", with("approve", ApproveArgs::augment_args)),
        ("pairing", "reject") => ("pairing", with("reject", RejectArgs::augment_args)),
        ("pairing", "revoke") => ("pairing", with("revoke", RevokeArgs::augment_args)),
        ("http", "token") => ("http", with("token", TokenArgs::augment_args)),
        _ => return None,
    };
    Some(leaf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn os(words: &[&str]) -> Vec<OsString> {
        std::iter::once("openclaw")
            .chain(words.iter().copied())
            .map(Into::into)
            .collect()
    }

    fn arg_ids(cmd: &Command) -> Vec<String> {
        let mut ids: Vec<String> = cmd
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .filter(|id| !["help", "version", "json", "verbose"].contains(&id.as_str()))
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn every_command_of_the_tree_is_built_alone_with_the_same_arguments() {
        let full = Cli::command();
        let mut seen = 0;
        for group in full.get_subcommands().filter(|g| g.has_subcommands()) {
            for leaf in group.get_subcommands().filter(|l| l.get_name() != "help") {
                let (group_name, alone) = command(group.get_name(), leaf.get_name())
                    .unwrap_or_else(|| {
                        panic!(
                            "`{} {}` is not built alone",
                            group.get_name(),
                            leaf.get_name()
                        )
                    });
                assert_eq!(group_name, group.get_name());
                assert_eq!(alone.get_name(), leaf.get_name());
                assert_eq!(arg_ids(&alone), arg_ids(leaf), "{}", leaf.get_name());
                seen += 1;
            }
        }
        assert!(seen >= 20, "{seen} commands");
    }

    #[test]
    fn a_command_parses_the_same_alone_as_in_the_whole_tree() {
        for line in [
            &[
                "sessions", "spawn", "--task", "x", "--json", "-vv", "--attach", "a", "--attach",
                "b",
            ][..],
            &["--json", "sessions", "send", "k", "m", "--timeout", "5"],
            &["sessions", "wait", "--session", "k"],
            &[
                "sessions",
                "follow",
                "k",
                "--events",
                "assistant,tool",
                "--until-done",
            ],
            &["sessions", "list", "--all", "--wide"],
            &["daemon", "stop", "--drain", "--timeout", "3"],
            &["daemon", "run", "--", "-v"],
            &["daemon", "install-service", "--force"],
            &["pairing", "approve", "7f3a", "--scopes", "admin"],
            &["http", "token", "--rotate"],
        ] {
            let alone = parse_one(&os(line)).unwrap_or_else(|| panic!("{line:?} alone"));
            let whole = Cli::try_parse_from(os(line)).unwrap();
            assert_eq!(format!("{alone:?}"), format!("{whole:?}"), "{line:?}");
        }
    }

    #[test]
    fn what_does_not_parse_alone_goes_to_the_whole_tree() {
        for line in [
            &["sessions", "spawn", "--help"][..],
            &["sessions", "spawn"],
            &["sessions", "spawn", "--task", "x", "--wait", "--follow"],
            &["sessions", "frobnicate"],
            &["help", "sessions"],
            &["completions", "bash"],
            &["sessions", "wait", "r", "--session", "k"],
        ] {
            assert!(parse_one(&os(line)).is_none(), "{line:?}");
        }
        assert_eq!(
            parse(&os(&["sessions", "spawn"])).unwrap_err().exit_code(),
            2
        );
        assert!(parse(&os(&["completions", "bash"])).is_ok());
    }
}
