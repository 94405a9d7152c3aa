//! `env_file`s: `KEY=VALUE` lines giving agents (and the daemon's default agent) the
//! variables they need, whoever started the daemon — a cron job's bare environment or a
//! terminal's.

use std::collections::BTreeMap;
use std::path::Path;

/// Reads an env file: `KEY=VALUE` per line; `#` comments and blank lines skipped; an
/// `export ` prefix and one pair of surrounding quotes allowed. The error names the line.
pub fn read(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    parse(&text)
}

/// Whether others may read the file (it usually holds keys: 0600 is wanted).
pub fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

pub fn parse(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=VALUE", i + 1));
        };
        let key = key.trim();
        let valid = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "line {}: \"{key}\" is not a variable name (letters, digits and _)",
                i + 1
            ));
        }
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        vars.insert(key.to_string(), value.to_string());
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_exports_and_quotes() {
        let vars = parse(
            "# keys\nOPENAI_API_KEY=sk-1\nexport MODE = batch\nQUOTED=\"a b\"\nSINGLE='c=d'\n\n",
        )
        .unwrap();
        assert_eq!(vars["OPENAI_API_KEY"], "sk-1");
        assert_eq!(vars["MODE"], "batch");
        assert_eq!(vars["QUOTED"], "a b");
        assert_eq!(vars["SINGLE"], "c=d");
    }

    #[test]
    fn a_bad_line_is_named() {
        assert_eq!(
            parse("A=1\nnonsense\n").unwrap_err(),
            "line 2: expected KEY=VALUE"
        );
        assert!(parse("1X=2").unwrap_err().contains("line 1"));
    }
}
