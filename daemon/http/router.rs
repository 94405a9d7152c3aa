//! The route table, and what every request on TCP passes first: a `Host` that names this
//! daemon (so a DNS-rebinding page cannot reach it through a name of its own), and an `Origin`
//! that is this daemon's own or listed in `[http] allow_origins` (CORS is off otherwise).
//! The Unix socket skips both: no browser reaches it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State as Shared};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::errors::HttpError;
use super::{State, Transport, hooks, page, routes};

pub fn routes(state: Arc<State>) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/healthz", get(routes::healthz))
        .route("/api/sessions", get(routes::list))
        .route("/api/sessions/spawn", post(routes::spawn))
        .route(
            "/api/sessions/{key}",
            get(routes::get_session).delete(routes::delete),
        )
        .route("/api/sessions/{key}/send", post(routes::send))
        .route("/api/sessions/{key}/kill", post(routes::kill))
        .route("/api/sessions/{key}/history", get(routes::history))
        // The path report 002's peer documents.
        .route("/sessions/{key}/history", get(routes::history))
        .route("/api/runs/{run_id}", get(routes::run))
        .route("/api/events", get(routes::events))
        .route("/hooks/{name}", post(hooks::deliver))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> HttpError {
    HttpError::not_found(format!(
        "there is no {method} {}; the API is under /api/sessions, /api/runs and /api/events, webhooks under /hooks/NAME",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> HttpError {
    HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {method}", uri.path()),
    )
}

/// The `Host` and `Origin` checks, and CORS for allowed origins.
async fn guard(Shared(state): Shared<Arc<State>>, req: Request, next: Next) -> Response {
    if !matches!(req.extensions().get::<Transport>(), Some(Transport::Tcp)) {
        return next.run(req).await;
    }
    let config = state.service.engine().config();
    let allowed = &config.http.allow_origins;
    let port = state.listen.map_or(0, |a| a.port());
    let host = match host_of(req.headers()) {
        Some(h) if host_allowed(h, port, allowed) => h.to_string(),
        Some(h) => {
            return HttpError::forbidden(format!(
                "Host \"{h}\" does not name this daemon (it listens on port {port}); use an IP address or localhost, or list the name's origin in [http] allow_origins"
            ))
            .into_response();
        }
        None => {
            return HttpError::invalid("a request needs a Host header (HTTP/1.1)").into_response();
        }
    };
    match origin_check(req.headers(), &host, allowed) {
        OriginCheck::Absent | OriginCheck::SameOrigin => next.run(req).await,
        OriginCheck::Refused(origin) => HttpError::forbidden(format!(
            "requests from {origin} are not allowed; add it to [http] allow_origins in config.toml to let a page there use the API"
        ))
        .into_response(),
        OriginCheck::Allowed(origin) => {
            let preflight = req.method() == Method::OPTIONS
                && req
                    .headers()
                    .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
            let mut response = if preflight {
                let mut r = StatusCode::NO_CONTENT.into_response();
                let h = r.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST, DELETE"),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("authorization, content-type, last-event-id"),
                );
                h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
                r
            } else {
                next.run(req).await
            };
            let h = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&origin) {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            }
            h.append(header::VARY, HeaderValue::from_static("origin"));
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("retry-after, www-authenticate"),
            );
            response
        }
    }
}

fn host_of(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST)?.to_str().ok().map(str::trim)
}

/// The host name and port of a `Host` value (port 80 when it has none).
fn split_host(host: &str) -> Option<(&str, u16)> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        (ip, after.strip_prefix(':'))
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 80,
    };
    Some((name, port))
}

/// Whether `Host` names this daemon: its port, and a name no DNS rebinding can stand behind —
/// an IP address, `localhost`, or the host of an allowed origin.
fn host_allowed(host: &str, port: u16, allowed_origins: &[String]) -> bool {
    let Some((name, p)) = split_host(host) else {
        return false;
    };
    if p != port {
        return false;
    }
    name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed_origins.iter().any(|o| {
            let rest = o.split_once("://").map_or(o.as_str(), |(_, r)| r);
            split_host(rest).is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
        })
}

#[derive(Debug, PartialEq, Eq)]
enum OriginCheck {
    /// No `Origin` header: not a cross-origin browser request.
    Absent,
    /// This daemon's own page.
    SameOrigin,
    Allowed(String),
    Refused(String),
}

fn origin_check(headers: &HeaderMap, host: &str, allowed: &[String]) -> OriginCheck {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return OriginCheck::Absent;
    };
    let origin = origin.to_str().unwrap_or("(not text)").trim();
    if origin.eq_ignore_ascii_case(&format!("http://{host}")) {
        return OriginCheck::SameOrigin;
    }
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return OriginCheck::Allowed(origin.to_string());
    }
    OriginCheck::Refused(origin.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_must_name_this_daemon() {
        let none: Vec<String> = Vec::new();
        assert!(host_allowed("127.0.0.1:7788", 7788, &none));
        assert!(host_allowed("localhost:7788", 7788, &none));
        assert!(host_allowed("[::1]:7788", 7788, &none));
        assert!(host_allowed("LOCALHOST:7788", 7788, &none));
        assert!(!host_allowed("127.0.0.1:7789", 7788, &none), "another port");
        assert!(
            !host_allowed("evil.example:7788", 7788, &none),
            "a rebinding name"
        );
        assert!(
            !host_allowed("localhost", 7788, &none),
            "port 80 is not 7788"
        );
        assert!(host_allowed("localhost", 80, &none));
        let listed = vec!["https://box.lan:7788".to_string()];
        assert!(host_allowed("box.lan:7788", 7788, &listed));
        assert!(!host_allowed("[::1", 7788, &none));
    }

    #[test]
    fn origins_same_listed_or_refused() {
        let mut h = HeaderMap::new();
        let listed = vec!["https://dash.example.com".to_string()];
        assert_eq!(
            origin_check(&h, "127.0.0.1:7788", &listed),
            OriginCheck::Absent
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:7788"),
        );
        assert_eq!(
            origin_check(&h, "127.0.0.1:7788", &listed),
            OriginCheck::SameOrigin
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://dash.example.com"),
        );
        assert_eq!(
            origin_check(&h, "127.0.0.1:7788", &listed),
            OriginCheck::Allowed("https://dash.example.com".into())
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(matches!(
            origin_check(&h, "127.0.0.1:7788", &listed),
            OriginCheck::Refused(_)
        ));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(matches!(
            origin_check(&h, "127.0.0.1:7788", &listed),
            OriginCheck::Refused(_)
        ));
    }
}
