//! `send --stream`: what is left to print once the reply is in, given what streamed.

/// What `send --stream` prints on stdout once the reply is in, given what streamed: the rest
/// of the reply if the stream was a prefix of it (nothing if it was all of it), or the whole
/// reply if nothing streamed or the stream went astray.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplyTail {
    /// Nothing streamed: print the reply as `send` does.
    Whole,
    /// This completes the streamed text (may be empty); the line still needs its end.
    Rest(String),
    /// The streamed text is not the reply (events skipped): print it again, whole.
    Again,
}

pub fn reply_tail(streamed: Option<&str>, reply: &str) -> ReplyTail {
    let Some(streamed) = streamed.filter(|s| !s.is_empty()) else {
        return ReplyTail::Whole;
    };
    match reply.strip_prefix(streamed) {
        Some(rest) => ReplyTail::Rest(rest.to_string()),
        // The reply is stored with its trailing newline trimmed; the stream had it.
        None if streamed.trim_end() == reply.trim_end() => ReplyTail::Rest(String::new()),
        None => ReplyTail::Again,
    }
}

/// `rest` with a line end if the line it finishes would otherwise stay open.
pub fn end_line(mut rest: String, at_line_start: bool) -> String {
    let ended = if rest.is_empty() {
        at_line_start
    } else {
        rest.ends_with('\n')
    };
    if !ended {
        rest.push('\n');
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_tail_completes_or_repeats() {
        assert_eq!(reply_tail(None, "hi"), ReplyTail::Whole);
        assert_eq!(reply_tail(Some(""), "hi"), ReplyTail::Whole);
        assert_eq!(reply_tail(Some("hi"), "hi"), ReplyTail::Rest(String::new()));
        // exec: the stream had stdout's last newline, the stored reply has it trimmed.
        assert_eq!(
            reply_tail(Some("hi\n"), "hi"),
            ReplyTail::Rest(String::new())
        );
        assert_eq!(
            reply_tail(Some("hel"), "hello"),
            ReplyTail::Rest("lo".into())
        );
        assert_eq!(reply_tail(Some("hx"), "hello"), ReplyTail::Again);
        assert_eq!(end_line(String::new(), true), "");
        assert_eq!(end_line(String::new(), false), "\n");
        assert_eq!(end_line("lo".into(), true), "lo\n");
        assert_eq!(end_line("lo\n".into(), false), "lo\n");
    }
}
