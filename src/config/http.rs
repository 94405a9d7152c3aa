//! `[http]` (the HTTP surface, SPEC §10) and `[hooks.NAME]` (signed webhooks, §10.1).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Deserialize;

/// Off unless `listen` is set. A non-loopback address needs `allow_remote = true`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `IP:PORT` (or `localhost:PORT`) to listen on with TCP, e.g. `127.0.0.1:7788`.
    pub listen: Option<String>,
    pub allow_remote: bool,
    /// Origins (`scheme://host[:port]`) that browsers may call the API from (CORS). The
    /// daemon's own page is same-origin and needs no entry.
    pub allow_origins: Vec<String>,
}

impl HttpConfig {
    /// The TCP address to listen on, when set (checked by `Config::parse`).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.as_deref().and_then(|l| parse_listen(l).ok())
    }
}

/// One webhook: `POST /hooks/NAME` spawns a `hook:` session on `agent` with `task` rendered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// The agent the session runs (default: the default agent).
    #[serde(default)]
    pub agent: Option<String>,
    /// The session's first message: `{{body}}`, `{{header.NAME}}`, `{{query.NAME}}` filled in.
    pub task: String,
    /// The NAME of the environment variable holding the HMAC secret (never the secret): set,
    /// deliveries must be signed (`X-Hub-Signature-256` or `X-Signature-256`); unset, they
    /// must carry the bearer token.
    #[serde(default)]
    pub secret_env: Option<String>,
}

/// One piece of a task template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart<'a> {
    Text(&'a str),
    Body,
    Header(&'a str),
    Query(&'a str),
}

/// Splits a task template into text and placeholders, or says which placeholder is wrong.
pub fn parse_template(template: &str) -> Result<Vec<TemplatePart<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(TemplatePart::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(
                "a \"{{\" is never closed with \"}}\"; placeholders are {{body}}, {{header.NAME}} and {{query.NAME}}"
                    .into(),
            );
        };
        let name = after[..end].trim();
        let part = match name.split_once('.') {
            None if name == "body" => TemplatePart::Body,
            Some(("header", h)) if is_token(h) => TemplatePart::Header(h),
            Some(("query", q)) if !q.is_empty() => TemplatePart::Query(q),
            _ => {
                return Err(format!(
                    "{{{{{name}}}}} is not a placeholder; use {{{{body}}}}, {{{{header.NAME}}}} or {{{{query.NAME}}}}"
                ));
            }
        };
        parts.push(part);
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Text(rest));
    }
    Ok(parts)
}

/// An HTTP header name (RFC 9110 token).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("\"{s}\": the port must be a number from 0 to 65535"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    s.parse()
        .map_err(|_| format!("\"{s}\" is not an address like \"127.0.0.1:7788\" or \"[::1]:7788\""))
}

/// `[http]` and `[hooks]` checked: the message names the key.
pub(super) fn validate_http(
    http: &HttpConfig,
    hooks: &std::collections::BTreeMap<String, HookConfig>,
    has_agent: impl Fn(&str) -> bool,
) -> Result<(), (String, String)> {
    if let Some(listen) = &http.listen {
        let addr = parse_listen(listen).map_err(|m| ("http.listen".to_string(), m))?;
        if !addr.ip().is_loopback() && !http.allow_remote {
            return Err((
                "http.listen".into(),
                format!(
                    "{addr} is reachable from other machines; the HTTP surface listens on loopback only unless you also set allow_remote = true (and then anyone who has the token can drive every session)"
                ),
            ));
        }
    }
    for origin in &http.allow_origins {
        if !valid_origin(origin) {
            return Err((
                "http.allow_origins".into(),
                format!(
                    "\"{origin}\" is not an origin like \"https://dash.example.com\" or \"http://127.0.0.1:3000\" (scheme and host, no path)"
                ),
            ));
        }
    }
    for (name, hook) in hooks {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err((
                format!("hooks.{name}"),
                "a hook name is letters, digits, - and _ (it is the last part of /hooks/NAME)"
                    .into(),
            ));
        }
        if hook.task.trim().is_empty() {
            return Err((
                format!("hooks.{name}.task"),
                "must not be empty; e.g. task = \"Triage this event:\\n{{body}}\"".into(),
            ));
        }
        parse_template(&hook.task).map_err(|m| (format!("hooks.{name}.task"), m))?;
        if let Some(agent) = &hook.agent
            && !has_agent(agent)
        {
            return Err((
                format!("hooks.{name}.agent"),
                format!("no agent \"{agent}\" is configured; add an [agents.{agent}] table"),
            ));
        }
        if let Some(var) = &hook.secret_env
            && (var.is_empty() || var.contains('='))
        {
            return Err((
                format!("hooks.{name}.secret_env"),
                "the NAME of an environment variable (never the secret itself)".into(),
            ));
        }
    }
    Ok(())
}

fn valid_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    !rest.is_empty() && !rest.contains('/') && !rest.contains('?') && !rest.contains('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_text_and_placeholders() {
        let parts =
            parse_template("Event {{ header.X-GitHub-Event }}:\n{{body}} ({{query.ref}})").unwrap();
        assert_eq!(
            parts,
            vec![
                TemplatePart::Text("Event "),
                TemplatePart::Header("X-GitHub-Event"),
                TemplatePart::Text(":\n"),
                TemplatePart::Body,
                TemplatePart::Text(" ("),
                TemplatePart::Query("ref"),
                TemplatePart::Text(")"),
            ]
        );
        assert_eq!(
            parse_template("no placeholders").unwrap(),
            vec![TemplatePart::Text("no placeholders")]
        );
    }

    #[test]
    fn bad_placeholders_are_named() {
        let err = parse_template("{{bdy}}").unwrap_err();
        assert!(err.contains("{{bdy}}"), "{err}");
        assert!(parse_template("{{header.}}").is_err());
        assert!(parse_template("{{header.a b}}").is_err());
        assert!(
            parse_template("open {{body")
                .unwrap_err()
                .contains("never closed")
        );
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("localhost:7788").unwrap(),
            "127.0.0.1:7788".parse().unwrap()
        );
        assert!(parse_listen("[::1]:80").unwrap().ip().is_loopback());
        assert!(parse_listen("example.com:80").is_err());
        assert!(parse_listen("127.0.0.1").is_err());
    }

    #[test]
    fn origins_are_scheme_and_host_only() {
        assert!(valid_origin("https://dash.example.com"));
        assert!(valid_origin("http://127.0.0.1:3000"));
        assert!(!valid_origin("https://dash.example.com/"));
        assert!(!valid_origin("dash.example.com"));
        assert!(!valid_origin("ftp://x"));
    }
}
