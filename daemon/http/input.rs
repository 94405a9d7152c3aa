//! Request bodies and query strings into the protocol's typed params, with errors that name
//! what is wrong: the line and column of bad JSON, the field that is unknown or of the wrong
//! type, the query parameter that is not understood.

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;

use super::errors::HttpError;
use crate::protocol::EventKind;

/// The body, refused with 413 before reading when its `Content-Length` is over `limit`, and
/// as soon as it grows past `limit` when it comes chunked.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, HttpError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(HttpError::too_large(limit));
    }
    use futures_util::StreamExt;
    let mut chunks = body.into_data_stream();
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk
            .map_err(|e| HttpError::invalid(format!("could not read the request body: {e}")))?;
        let so_far = first.as_ref().map_or(0, Bytes::len) + joined.len();
        if so_far + chunk.len() > limit {
            return Err(HttpError::too_large(limit));
        }
        match first.take() {
            None if joined.is_empty() => first = Some(chunk),
            None => joined.extend_from_slice(&chunk),
            Some(f) => {
                joined.extend_from_slice(&f);
                joined.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

/// The one parameter of a route's path (`{key}`, `{run_id}`, `{name}`), percent-decoded.
pub struct PathParam(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PathParam {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(p)| PathParam(p))
            .map_err(|e| HttpError::invalid(format!("the path: {e}")))
    }
}

/// A JSON body as `T`; an empty body is `{}`, so a missing required field is named.
pub fn json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, HttpError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            HttpError::invalid(format!(
                "the request body is not valid JSON: {inner}; send one JSON object"
            ))
        } else if path == "." || path.is_empty() {
            HttpError::invalid(format!("invalid request body: {inner}"))
        } else {
            HttpError::invalid(format!("invalid request body: {path}: {inner}"))
        }
    })?;
    de.end().map_err(|e| {
        HttpError::invalid(format!(
            "the request body has more after its JSON object: {e}; send one JSON object"
        ))
    })?;
    Ok(value)
}

/// A query string's parameters, taken one by one; [`Query::finish`] refuses what is left.
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Query { pairs }
    }

    /// The last value of `name` (removing every one).
    pub fn take(&mut self, name: &str) -> Option<String> {
        let mut found = None;
        self.pairs.retain(|(k, v)| {
            if k == name {
                found = Some(v.clone());
                false
            } else {
                true
            }
        });
        found
    }

    /// Every value of `name`, each split on commas (`kinds=a,b` or `kinds=a&kinds=b`).
    pub fn take_list(&mut self, name: &str) -> Option<Vec<String>> {
        let mut values = Vec::new();
        let mut any = false;
        self.pairs.retain(|(k, v)| {
            if k == name {
                any = true;
                values.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                );
                false
            } else {
                true
            }
        });
        any.then_some(values)
    }

    pub fn take_number<N: std::str::FromStr>(
        &mut self,
        name: &str,
    ) -> Result<Option<N>, HttpError> {
        match self.take(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                HttpError::invalid(format!("query parameter {name}={v:?} must be a number"))
            }),
        }
    }

    /// `1`, `true`, `yes`, `on` or nothing (`?follow`) for true; `0`, `false`, `no`, `off`.
    pub fn take_bool(&mut self, name: &str) -> Result<Option<bool>, HttpError> {
        match self.take(name).as_deref().map(str::trim) {
            None => Ok(None),
            Some("" | "1" | "true" | "yes" | "on") => Ok(Some(true)),
            Some("0" | "false" | "no" | "off") => Ok(Some(false)),
            Some(other) => Err(HttpError::invalid(format!(
                "query parameter {name}={other:?} must be 1 or 0 (true or false)"
            ))),
        }
    }

    /// `events=message,assistant,...`: which kinds of events a stream carries.
    pub fn take_events(&mut self) -> Result<Option<Vec<EventKind>>, HttpError> {
        let Some(list) = self.take_list("events") else {
            return Ok(None);
        };
        list.iter()
            .map(|s| {
                EventKind::parse(s).ok_or_else(|| {
                    let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                    HttpError::invalid(format!(
                        "events: \"{s}\" is not an event kind; use some of {}",
                        known.join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Refuses parameters nobody took, naming them and those `route` understands.
    pub fn finish(self, known: &[&str]) -> Result<(), HttpError> {
        if let Some((k, _)) = self.pairs.first() {
            return Err(HttpError::invalid(format!(
                "unknown query parameter \"{k}\"; this route takes {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SpawnParams;

    #[test]
    fn bad_json_names_line_and_column() {
        let err = json_body::<SpawnParams>(b"{\"task\":\n  oops}").unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("line 2 column 3"), "{}", err.message);
    }

    #[test]
    fn unknown_and_mistyped_fields_are_named() {
        let err = json_body::<SpawnParams>(br#"{"task":"t","tsak":1}"#).unwrap_err();
        assert!(err.message.contains("tsak"), "{}", err.message);
        let err = json_body::<SpawnParams>(br#"{"task":"t","label":3}"#).unwrap_err();
        assert!(err.message.contains("label"), "{}", err.message);
        let err = json_body::<SpawnParams>(b"").unwrap_err();
        assert!(err.message.contains("task"), "{}", err.message);
        let err = json_body::<SpawnParams>(br#"{"task":"t"} {}"#).unwrap_err();
        assert!(err.message.contains("more after"), "{}", err.message);
    }

    #[test]
    fn query_parameters_are_typed_and_leftovers_refused() {
        let mut q = Query::parse(Some("limit=5&kinds=a,b&kinds=c&follow&x=%20y"));
        assert_eq!(q.take_number::<u32>("limit").unwrap(), Some(5));
        assert_eq!(
            q.take_list("kinds").unwrap(),
            vec!["a".to_string(), "b".into(), "c".into()]
        );
        assert_eq!(q.take_bool("follow").unwrap(), Some(true));
        let err = q.finish(&["limit", "kinds", "follow"]).unwrap_err();
        assert!(
            err.message.contains("\"x\"") && err.message.contains("limit"),
            "{}",
            err.message
        );
        let mut q = Query::parse(Some("limit=five&follow=maybe"));
        assert!(q.take_number::<u32>("limit").is_err());
        assert!(q.take_bool("follow").is_err());
        let mut q = Query::parse(Some("events=message,bogus"));
        assert!(q.take_events().unwrap_err().message.contains("bogus"));
    }
}
