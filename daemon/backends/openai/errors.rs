//! Why a request to the server failed, and the sentence a user reads about it: it names the
//! agent, the URL and what to check. No sentence ever holds the API key.

use std::time::Duration;

use super::stream::StreamError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    Refused,
    Dns,
    Tls,
    Timeout,
    Other,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChatError {
    #[error("cannot connect to {url}: {detail}")]
    Connect {
        url: String,
        failure: ConnectFailure,
        detail: String,
    },
    #[error("no response from {url} within {after:?}")]
    NoResponse { url: String, after: Duration },
    #[error("the stream from {url} stalled for {after:?}")]
    Stalled { url: String, after: Duration },
    /// An HTTP error status (429 and 5xx only after the retries ran out).
    #[error("{url} answered HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
        attempts: u32,
    },
    #[error("{url} answered {content_type}, not an event stream")]
    NotAStream {
        url: String,
        content_type: String,
        snippet: String,
    },
    #[error("the stream from {url}: {error}")]
    Stream { url: String, error: StreamError },
    /// The connection broke mid-stream, before the model finished.
    #[error("the stream from {url} broke: {detail}")]
    Broken { url: String, detail: String },
    #[error("{url} lists no models")]
    NoModels { url: String },
    #[error("{url} did not answer with a model list")]
    BadModels { url: String, snippet: String },
    #[error("the API key variable {var} is not set")]
    MissingKey { var: String },
    #[error("the API key in {var} cannot be sent in a header")]
    BadKey { var: String },
}

/// What an error sentence needs to know about the agent.
pub struct ErrorContext<'a> {
    pub agent_id: &'a str,
    pub model: Option<&'a str>,
    pub base_url: &'a str,
    /// The variable named by api_key_env, when a key is configured.
    pub key_var: Option<&'a str>,
    pub request_timeout: Duration,
    /// The key itself, only to scrub it from anything a server echoed back.
    pub key: Option<&'a str>,
}

impl ChatError {
    pub fn sentence(&self, cx: &ErrorContext<'_>) -> String {
        let agent = cx.agent_id;
        let table = format!("[agents.{agent}]");
        let secs = |d: &Duration| format_seconds(*d);
        let text = match self {
            ChatError::Connect {
                url,
                failure,
                detail,
            } => match failure {
                ConnectFailure::Refused => format!(
                    "agent \"{agent}\" cannot reach {url}: connection refused. Check that the server is running and that base_url in {table} points to it."
                ),
                ConnectFailure::Dns => format!(
                    "agent \"{agent}\" cannot reach {url}: the host name does not resolve ({detail}). Check base_url in {table} and this host's DNS."
                ),
                ConnectFailure::Tls => format!(
                    "agent \"{agent}\" cannot reach {url}: the TLS handshake failed ({detail}). Check that base_url uses https:// only for a server that speaks TLS (a local server usually wants http://) and that its certificate is valid."
                ),
                ConnectFailure::Timeout => format!(
                    "agent \"{agent}\" cannot reach {url}: no connection within {}. Check that the host is up and reachable from here.",
                    secs(&cx.request_timeout)
                ),
                ConnectFailure::Other => format!(
                    "agent \"{agent}\" cannot reach {url}: {detail}. Check base_url in {table}."
                ),
            },
            ChatError::NoResponse { url, after } => format!(
                "agent \"{agent}\": {url} sent no response within {}. Check that the server is not overloaded, or raise request_timeout_seconds in {table}.",
                secs(after)
            ),
            ChatError::Stalled { url, after } => format!(
                "agent \"{agent}\": the stream from {url} stalled: nothing arrived for {}. Check that the server is not overloaded, or raise request_timeout_seconds in {table}.",
                secs(after)
            ),
            ChatError::Status {
                url,
                status,
                message,
                attempts,
            } => status_sentence(cx, &table, url, *status, message, *attempts),
            ChatError::NotAStream {
                url,
                content_type,
                snippet,
            } => format!(
                "agent \"{agent}\": {url} answered with {content_type} (\"{snippet}\"), not an event stream. Check that base_url in {table} points at an OpenAI-compatible API (usually ending in /v1)."
            ),
            ChatError::Stream { url, error } => match error {
                StreamError::NotJson(snippet) => format!(
                    "agent \"{agent}\": {url} sent a stream chunk that is not JSON: \"{snippet}\". Check that base_url in {table} points at an OpenAI-compatible API (usually ending in /v1)."
                ),
                StreamError::Server(message) => format!(
                    "agent \"{agent}\": {url} reported an error mid-stream: \"{message}\". Check the server's logs."
                ),
                StreamError::Unfinished => format!(
                    "agent \"{agent}\": the stream from {url} ended before the model finished (no finish_reason). Check the server's logs: it may have crashed or hit a limit."
                ),
            },
            ChatError::Broken { url, detail } => format!(
                "agent \"{agent}\": the stream from {url} broke before the model finished (no finish_reason; {detail}). Check the server's logs: it may have crashed or hit a limit."
            ),
            ChatError::NoModels { url } => format!(
                "agent \"{agent}\": {url} lists no models, and {table} names none. Set model in {table}."
            ),
            ChatError::BadModels { url, snippet } => format!(
                "agent \"{agent}\": {url} did not answer with a model list (\"{snippet}\"). Set model in {table}, and check that base_url points at an OpenAI-compatible API (usually ending in /v1)."
            ),
            ChatError::MissingKey { var } => format!(
                "agent \"{agent}\": api_key_env names {var}, which is not set in openclawd's environment. Export {var} before the daemon starts (openclaw daemon stop, then run openclaw again), or remove api_key_env from {table}."
            ),
            ChatError::BadKey { var } => format!(
                "agent \"{agent}\": the API key in {var} holds characters an HTTP header cannot carry (a line break, or a character that is not ASCII). Check the value of {var}."
            ),
        };
        scrub(text, cx.key)
    }
}

fn status_sentence(
    cx: &ErrorContext<'_>,
    table: &str,
    url: &str,
    status: u16,
    message: &str,
    attempts: u32,
) -> String {
    let agent = cx.agent_id;
    let said = if message.is_empty() {
        String::from(" (the server gave no message)")
    } else {
        format!(": \"{message}\"")
    };
    match status {
        401 | 403 => {
            let check = match cx.key_var {
                Some(var) => format!(
                    "Check that {var} (named by api_key_env in {table}) holds a valid API key for this server."
                ),
                None => format!(
                    "No API key was sent: set api_key_env in {table} to the name of the variable that holds the key."
                ),
            };
            format!("agent \"{agent}\": {url} refused the request (HTTP {status}){said}. {check}")
        }
        404 => {
            let model = cx
                .model
                .map(|m| format!("model \"{m}\""))
                .unwrap_or_else(|| "the model".into());
            format!(
                "agent \"{agent}\": {url} answered HTTP 404{said}. Check that {model} exists on the server (GET {}/models lists them) and that base_url in {table} ends with the API's version path (usually /v1).",
                cx.base_url
            )
        }
        429 => format!(
            "agent \"{agent}\": {url} still answered HTTP 429 (rate limited) after {attempts} attempts{said}. Check the account's rate limits, or try again later."
        ),
        500..=599 => format!(
            "agent \"{agent}\": {url} still answered HTTP {status} after {attempts} attempts{said}. Check the server's logs."
        ),
        _ => format!(
            "agent \"{agent}\": {url} rejected the request (HTTP {status}){said}. Check model, max_tokens, the tool settings and extra_body in {table} against what the server accepts."
        ),
    }
}

fn format_seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{} s", s as u64)
    } else {
        format!("{s:.1} s")
    }
}

/// Removes the key from text that may quote what a server sent.
pub fn scrub(text: String, key: Option<&str>) -> String {
    match key {
        Some(k) if k.len() >= 4 && text.contains(k) => text.replace(k, "[redacted]"),
        _ => text,
    }
}
