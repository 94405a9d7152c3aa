//! Shell completion scripts: clap's, for commands and flags, plus for bash, zsh and fish the
//! completion of session keys and agent ids, asked of the running daemon through
//! `openclaw __complete sessions|agents` (which never starts one and prints nothing when it
//! cannot answer).
//!
//! clap's generators cannot call out to a program, so their output is completed here: a
//! wrapper function for bash, completion functions substituted for the values of the session
//! and agent arguments for zsh, extra `complete` lines for fish.

use clap_complete::Shell;

/// Subcommands of `sessions` whose first positional argument names a session.
const NAMES_A_SESSION: [&str; 7] = [
    "send", "follow", "history", "show", "kill", "patch", "delete",
];
/// Options whose value names a session.
const SESSION_OPTIONS: [&str; 2] = ["parent", "session"];

pub fn script(shell: Shell, mut cmd: clap::Command) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "openclaw", &mut out);
    let generated = String::from_utf8_lossy(&out).into_owned();
    match shell {
        Shell::Bash => bash(&generated),
        Shell::Zsh => zsh(&generated),
        Shell::Fish => fish(&generated),
        _ => generated,
    }
}

fn bash(generated: &str) -> String {
    let subcommands = NAMES_A_SESSION.join("|");
    let options = SESSION_OPTIONS
        .iter()
        .map(|o| format!("--{o}"))
        .collect::<Vec<_>>()
        .join("|");
    let hook = format!(
        r#"
# Session keys and agent ids come from the running daemon.
_openclaw_dynamic() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" words=""
    case "$prev" in
        --agent) words="$(openclaw __complete agents 2>/dev/null)" ;;
        {options}) words="$(openclaw __complete sessions 2>/dev/null)" ;;
    esac
    if [[ -z "$words" && $COMP_CWORD -eq 3 && "${{COMP_WORDS[1]}}" == sessions && "$cur" != -* ]]; then
        case "${{COMP_WORDS[2]}}" in
            {subcommands}) words="$(openclaw __complete sessions 2>/dev/null)" ;;
        esac
    fi
    if [[ -n "$words" ]]; then
        COMPREPLY=( $(compgen -W "$words" -- "$cur") )
        return 0
    fi
    _openclaw "$@"
}}
"#
    );
    let mut script = generated.replace("complete -F _openclaw ", "complete -F _openclaw_dynamic ");
    // The hook must be defined before `complete` names it; the generated function first.
    let at = script
        .find("\nif [[ \"${BASH_VERSINFO[0]}\"")
        .unwrap_or(script.len());
    script.insert_str(at, &hook);
    script
}

fn zsh(generated: &str) -> String {
    let helpers = "\n# Session keys and agent ids come from the running daemon.\n\
_openclaw_sessions() {\n    local -a words\n    words=(${(f)\"$(openclaw __complete sessions 2>/dev/null)\"})\n    compadd -a words\n}\n\
_openclaw_agents() {\n    local -a words\n    words=(${(f)\"$(openclaw __complete agents 2>/dev/null)\"})\n    compadd -a words\n}\n";
    let mut lines: Vec<String> = Vec::new();
    let mut subcommand: Option<String> = None;
    for line in generated.lines() {
        // Each subcommand's arguments follow a `(NAME)` case label.
        if let Some(name) = line
            .trim()
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
        {
            subcommand = Some(name.to_string());
        }
        let trimmed = line.trim_start();
        let session_positional = trimmed.starts_with("':key -- ")
            && subcommand
                .as_deref()
                .is_some_and(|s| NAMES_A_SESSION.contains(&s));
        let session_option = SESSION_OPTIONS
            .iter()
            .any(|o| trimmed.starts_with(&format!("'--{o}=[")));
        let agent_option = trimmed.starts_with("'--agent=[");
        let function = if session_positional || session_option {
            Some("_openclaw_sessions")
        } else if agent_option {
            Some("_openclaw_agents")
        } else {
            None
        };
        match function {
            Some(f) if line.contains(":_default'") => {
                lines.push(line.replacen(":_default'", &format!(":{f}'"), 1));
            }
            _ => lines.push(line.to_string()),
        }
    }
    let mut script = lines.join("\n");
    script.push('\n');
    // After `#compdef openclaw`, which must stay the first line.
    let at = script.find('\n').map_or(0, |i| i + 1);
    script.insert_str(at, helpers);
    script
}

fn fish(generated: &str) -> String {
    let sessions = "-f -a \"(openclaw __complete sessions)\"";
    let agents = "-f -a \"(openclaw __complete agents)\"";
    let mut script = String::new();
    for line in generated.lines() {
        script.push_str(line);
        if line.ends_with(" -r") {
            if SESSION_OPTIONS
                .iter()
                .any(|o| line.contains(&format!(" -l {o} ")))
            {
                script.push(' ');
                script.push_str(sessions);
            } else if line.contains(" -l agent ") {
                script.push(' ');
                script.push_str(agents);
            }
        }
        script.push('\n');
    }
    script.push_str("# Session keys come from the running daemon.\n");
    script.push_str(&format!(
        "complete -c openclaw -n \"__fish_openclaw_using_subcommand sessions; and __fish_seen_subcommand_from {}\" {sessions}\n",
        NAMES_A_SESSION.join(" ")
    ));
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn of(shell: Shell) -> String {
        script(shell, crate::Cli::command())
    }

    #[test]
    fn internal_commands_are_not_offered() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let s = of(shell);
            assert!(!s.contains("__man"), "{shell:?}");
        }
    }

    #[test]
    fn bash_completes_sessions_and_agents_through_the_daemon() {
        let s = of(Shell::Bash);
        assert!(s.contains("complete -F _openclaw_dynamic "), "{s}");
        assert!(
            !s.contains("complete -F _openclaw -"),
            "the old hook is replaced"
        );
        assert!(s.contains("openclaw __complete sessions"));
        assert!(s.contains("--agent) words=\"$(openclaw __complete agents"));
        assert!(s.find("_openclaw_dynamic() {").unwrap() < s.find("complete -F").unwrap());
    }

    #[test]
    fn zsh_uses_completion_functions_for_session_and_agent_values() {
        let s = of(Shell::Zsh);
        assert!(s.starts_with("#compdef openclaw\n"), "{}", &s[..40]);
        assert!(s.contains("_openclaw_sessions() {"));
        // Every session-naming subcommand's KEY, --parent/--session, and --agent.
        assert!(
            s.matches(":_openclaw_sessions'").count() >= NAMES_A_SESSION.len() + 3,
            "{s}"
        );
        assert!(s.matches(":_openclaw_agents'").count() >= 1, "{s}");
    }

    #[test]
    fn fish_adds_daemon_backed_candidates() {
        let s = of(Shell::Fish);
        assert!(s.contains("-l parent"));
        assert!(
            s.lines().any(
                |l| l.contains("-l parent ") && l.ends_with("(openclaw __complete sessions)\"")
            ),
            "{s}"
        );
        assert!(
            s.lines()
                .any(|l| l.contains("-l agent ") && l.ends_with("(openclaw __complete agents)\""))
        );
        assert!(s.contains(
            "__fish_seen_subcommand_from send follow history show kill patch delete\" -f -a"
        ));
    }
}
