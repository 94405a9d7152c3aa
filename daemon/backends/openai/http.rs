//! HTTP with the server: one streamed chat request (retried on 429 and 5xx, with bounded
//! backoff that honours `Retry-After`), and `GET /models`. Cancellation is the caller's:
//! dropping a future here drops its request, which closes the connection at once.

use std::error::Error as _;
use std::sync::{Arc, Once};
use std::time::Duration;

use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use serde_json::{Value, json};

use super::errors::{ChatError, ConnectFailure};
use super::host::TurnHost;
use super::settings::{KeySource, OpenAiSettings};
use super::stream::{
    Completion, Delta, StreamAssembler, completion_from_json, snippet, snippet_of,
};

/// Bytes of an error body kept for the message.
const MAX_ERROR_BODY: usize = 16 * 1024;

pub struct ChatClient {
    http: reqwest::Client,
    settings: Arc<OpenAiSettings>,
    /// Bytes of arguments a tool call may stream (tests set a small one); `None`: the
    /// default, `MAX_TOOL_ARGUMENTS`.
    pub argument_limit: Option<usize>,
}

/// rustls needs one process-wide crypto provider; `ring` is the one openclaw already uses.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another part of the process installed one first: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl ChatClient {
    pub fn new(settings: Arc<OpenAiSettings>) -> Result<ChatClient, String> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("openclaw/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.request_timeout)
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(ChatClient {
            http,
            settings,
            argument_limit: None,
        })
    }

    pub fn chat_url(&self) -> String {
        format!("{}/chat/completions", self.settings.base_url)
    }

    pub fn models_url(&self) -> String {
        format!("{}/models", self.settings.base_url)
    }

    fn headers(&self) -> Result<HeaderMap, ChatError> {
        let mut headers = HeaderMap::new();
        match &self.settings.api_key {
            KeySource::None => {}
            KeySource::Missing { var } => return Err(ChatError::MissingKey { var: var.clone() }),
            KeySource::Set { key, var } => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    .map_err(|_| ChatError::BadKey { var: var.clone() })?;
                // Kept out of any debug output of the request.
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
        }
        Ok(headers)
    }

    /// The ids the server lists, in its order.
    pub async fn list_models(&self) -> Result<Vec<String>, ChatError> {
        let url = self.models_url();
        let request = self.http.get(&url).headers(self.headers()?);
        let response = self.send_once(&url, request).await?;
        let status = response.status().as_u16();
        let body = self.read_body(&url, response).await?;
        if status >= 400 {
            return Err(ChatError::Status {
                url,
                status,
                message: error_message(&body),
                attempts: 1,
            });
        }
        let bad = || ChatError::BadModels {
            url: url.clone(),
            snippet: snippet(&String::from_utf8_lossy(&body)),
        };
        let list: Value = serde_json::from_slice(&body).map_err(|_| bad())?;
        let data = list
            .get("data")
            .or_else(|| list.get("models"))
            .and_then(Value::as_array)
            .ok_or_else(bad)?;
        let ids: Vec<String> = data
            .iter()
            .filter_map(|m| {
                m.get("id")
                    .or_else(|| m.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect();
        if ids.is_empty() {
            return Err(ChatError::NoModels { url });
        }
        Ok(ids)
    }

    /// Sends one chat request and reads its streamed answer, passing text on as it arrives.
    pub async fn complete<H: TurnHost>(
        &self,
        body: &[u8],
        host: &H,
        mut on_delta: impl FnMut(Delta),
    ) -> Result<Completion, ChatError> {
        let url = self.chat_url();
        let response = self.send_with_retries(&url, body, host).await?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.contains("json") {
            // A server that ignored `stream: true` answers with the whole completion.
            let body = self.read_body(&url, response).await?;
            let completion =
                completion_from_json(&String::from_utf8_lossy(&body)).map_err(|error| {
                    ChatError::Stream {
                        url: url.clone(),
                        error,
                    }
                })?;
            if !completion.text.is_empty() {
                on_delta(Delta::Text(completion.text.clone()));
            }
            return Ok(completion);
        }
        if !content_type.is_empty() && !content_type.starts_with("text/event-stream") {
            let body = self.read_body(&url, response).await.unwrap_or_default();
            return Err(ChatError::NotAStream {
                url,
                content_type,
                snippet: snippet(&String::from_utf8_lossy(&body)),
            });
        }
        self.read_stream(&url, response, on_delta).await
    }

    async fn read_stream(
        &self,
        url: &str,
        response: reqwest::Response,
        mut on_delta: impl FnMut(Delta),
    ) -> Result<Completion, ChatError> {
        let idle = self.settings.request_timeout;
        let mut events = response.bytes_stream().eventsource();
        let mut assembler = match self.argument_limit {
            Some(max) => StreamAssembler::with_argument_limit(max),
            None => StreamAssembler::new(),
        };
        loop {
            let next = tokio::time::timeout(idle, events.next())
                .await
                .map_err(|_| ChatError::Stalled {
                    url: url.to_string(),
                    after: idle,
                })?;
            let event = match next {
                None => break,
                Some(Ok(event)) => event,
                // A server that drops the connection after the model finished (before
                // `[DONE]` or the usage chunk) lost nothing that matters.
                Some(Err(EventStreamError::Transport(_))) if assembler.has_finished() => break,
                Some(Err(EventStreamError::Transport(e))) => {
                    return Err(ChatError::Broken {
                        url: url.to_string(),
                        detail: error_chain(&e),
                    });
                }
                Some(Err(EventStreamError::Utf8(_))) => {
                    return Err(ChatError::Stream {
                        url: url.to_string(),
                        error: super::stream::StreamError::NotJson(
                            "(bytes that are not UTF-8)".into(),
                        ),
                    });
                }
                Some(Err(EventStreamError::Parser(e))) => {
                    return Err(ChatError::Broken {
                        url: url.to_string(),
                        detail: format!("not a valid event stream: {e}"),
                    });
                }
            };
            let stream_error = |error| ChatError::Stream {
                url: url.to_string(),
                error,
            };
            if event.event == "error" {
                return Err(stream_error(super::stream::StreamError::Server(snippet(
                    &event.data,
                ))));
            }
            for delta in assembler.feed(&event.data).map_err(stream_error)? {
                on_delta(delta);
            }
            // A call's arguments past the limit: the response is dropped here, which closes
            // the connection and stops the generation.
            if assembler.is_done() || assembler.is_cut() {
                break;
            }
        }
        assembler.finish().map_err(|error| ChatError::Stream {
            url: url.to_string(),
            error,
        })
    }

    async fn send_with_retries<H: TurnHost>(
        &self,
        url: &str,
        body: &[u8],
        host: &H,
    ) -> Result<reqwest::Response, ChatError> {
        let retry = &self.settings.retry;
        let mut headers = self.headers()?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut attempt = 1;
        loop {
            let request = self
                .http
                .post(url)
                .headers(headers.clone())
                .body(body.to_vec());
            let response = self.send_once(url, request).await?;
            let status = response.status().as_u16();
            if status < 400 {
                return Ok(response);
            }
            let retryable = status == 429 || (500..=599).contains(&status);
            let wait = retry_after(response.headers());
            let body = self.read_body(url, response).await.unwrap_or_default();
            let message = error_message(&body);
            if !retryable || attempt >= retry.max_attempts {
                return Err(ChatError::Status {
                    url: url.to_string(),
                    status,
                    message,
                    attempts: attempt,
                });
            }
            let delay = match wait {
                Some(asked) => asked.min(retry.max_retry_after),
                None => retry.backoff(attempt),
            };
            attempt += 1;
            host.lifecycle(json!({
                "phase": "retrying",
                "attempt": attempt,
                "maxAttempts": retry.max_attempts,
                "delayMs": delay.as_millis() as u64,
                "httpStatus": status,
                "reason": if message.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {}", snippet(&message)) },
            }));
            tracing::debug!(url, status, ?delay, attempt, "retrying the chat request");
            tokio::time::sleep(delay).await;
        }
    }

    async fn send_once(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ChatError> {
        let after = self.settings.request_timeout;
        match tokio::time::timeout(after, request.send()).await {
            Err(_) => Err(ChatError::NoResponse {
                url: url.to_string(),
                after,
            }),
            Ok(Err(e)) => Err(connect_error(url, &e)),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// The body of a short answer (an error, the model list), capped.
    async fn read_body(
        &self,
        url: &str,
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, ChatError> {
        let after = self.settings.request_timeout;
        let read = async {
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                body.extend_from_slice(&chunk);
                if body.len() >= MAX_ERROR_BODY {
                    body.truncate(MAX_ERROR_BODY);
                    break;
                }
            }
            Ok::<_, reqwest::Error>(body)
        };
        match tokio::time::timeout(after, read).await {
            Err(_) => Err(ChatError::Stalled {
                url: url.to_string(),
                after,
            }),
            Ok(Err(e)) => Err(ChatError::Broken {
                url: url.to_string(),
                detail: error_chain(&e),
            }),
            Ok(Ok(body)) => Ok(body),
        }
    }
}

/// How long to wait before retrying when a server asked: `retry-after-ms` (OpenAI), else
/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = header(RETRY_AFTER.as_str())?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = when - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// Characters of a server's error message quoted in a sentence.
const MAX_QUOTED: usize = 500;

/// The message of an error body: OpenAI's `{"error": {"message"}}`, the common variants, or
/// the start of the text.
pub fn error_message(body: &[u8]) -> String {
    let snippet = |t: &str| snippet_of(t, MAX_QUOTED);
    let text = String::from_utf8_lossy(body);
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        return snippet(&text);
    };
    let found = [
        v.pointer("/error/message"),
        v.get("error").filter(|e| e.is_string()),
        v.get("message"),
        v.get("detail"),
    ]
    .into_iter()
    .flatten()
    .find_map(|m| match m {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    });
    match found {
        Some(m) => snippet(&m),
        None if v.get("error").is_some() => String::new(),
        None => snippet(&text),
    }
}

fn connect_error(url: &str, e: &reqwest::Error) -> ChatError {
    let detail = root_cause(e);
    let chain = error_chain(e).to_ascii_lowercase();
    let mut failure = ConnectFailure::Other;
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = source {
        if s.downcast_ref::<rustls::Error>().is_some() {
            failure = ConnectFailure::Tls;
        } else if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                failure = ConnectFailure::Refused;
            } else if wraps_tls_error(io) {
                failure = ConnectFailure::Tls;
            }
        }
        source = s.source();
    }
    if failure == ConnectFailure::Other {
        failure = if e.is_timeout() {
            ConnectFailure::Timeout
        } else if chain.contains("dns error") || chain.contains("failed to lookup address") {
            ConnectFailure::Dns
        } else if chain.contains("tls")
            || chain.contains("certificate")
            || chain.contains("handshake")
        {
            ConnectFailure::Tls
        } else {
            ConnectFailure::Other
        };
    }
    ChatError::Connect {
        url: url.to_string(),
        failure,
        detail,
    }
}

/// Whether an I/O error carries a rustls error. TLS streams wrap it in an I/O error, which
/// may be wrapped again, and `io::Error::source` skips the wrapped error itself.
fn wraps_tls_error(io: &std::io::Error) -> bool {
    match io.get_ref() {
        Some(inner) if inner.downcast_ref::<rustls::Error>().is_some() => true,
        Some(inner) => inner
            .downcast_ref::<std::io::Error>()
            .is_some_and(wraps_tls_error),
        None => false,
    }
}

/// Every error in the chain, outermost first, without the repetition reqwest's own
/// messages have.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// The innermost error's text: what actually went wrong.
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}
