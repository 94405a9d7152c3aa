//! Command lines as a shell would need them typed, for messages that name a command.

/// Words joined with spaces, each with anything a shell would read specially single-quoted.
pub fn quote_words(words: &[String]) -> String {
    words
        .iter()
        .map(|word| {
            let plain = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        let words =
            |ws: &[&str]| quote_words(&ws.iter().map(|w| w.to_string()).collect::<Vec<_>>());
        assert_eq!(words(&["cat"]), "cat");
        assert_eq!(words(&["echo", "it's", ""]), r"echo 'it'\''s' ''");
        assert_eq!(words(&["sh", "-c", "exit 3"]), "sh -c 'exit 3'");
    }
}
