//! The README's configuration examples are configs the daemon accepts: each ```toml block,
//! as written, parses (an unknown key or a bad value would be refused at start-up, so a
//! stale example would fail a newcomer on their first try).

use std::path::Path;

use openclaw::config::Config;

fn toml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in markdown.lines().enumerate() {
        match &mut current {
            None if line.trim_start() == "```toml" => current = Some((n + 2, String::new())),
            Some(_) if line.trim_start() == "```" => blocks.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "a ```toml block is never closed");
    blocks
}

#[test]
fn every_toml_example_in_the_readme_is_a_valid_config() {
    let readme = include_str!("../README.md");
    let blocks = toml_blocks(readme);
    assert!(
        blocks.len() >= 4,
        "the README's configuration examples were found ({} blocks)",
        blocks.len()
    );
    for (line, text) in blocks {
        if let Err(e) = Config::parse(&text, Path::new("config.toml")) {
            panic!("README.md line {line}: the example is refused: {e}\n{text}");
        }
    }
}

#[test]
fn a_wrong_key_in_an_example_would_be_caught() {
    let bad = "# x\n```toml\n[agents.main]\nbackend = \"openai\"\nbase = \"http://x\"\n```\n";
    let blocks = toml_blocks(bad);
    assert_eq!(blocks.len(), 1);
    assert!(Config::parse(&blocks[0].1, Path::new("config.toml")).is_err());
}
