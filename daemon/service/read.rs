//! Reading sessions: `history` (pages of a transcript), `message` (one message whole, in
//! chunks), `list` and `get`. Every reply keeps within `[limits] max_reply_bytes`.

use super::{Caller, Result, ServiceError, SessionService};
use crate::daemon::store::{COUNT_CAP, ListFilter};
use crate::protocol::{
    GetParams, GetResult, HistoryParams, HistoryResult, ListParams, ListResult, MessageChunkResult,
    MessageParams, SessionKind, methods, scopes,
};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 1000;
const MAX_LIST_MESSAGES: u32 = 100;

impl SessionService {
    /// The newest messages, oldest first, with a cursor to older pages.
    pub async fn history(&self, caller: &Caller, p: HistoryParams) -> Result<HistoryResult> {
        self.authorize(caller, methods::SESSIONS_HISTORY, scopes::SESSIONS_READ)?;
        let session = self.session(caller, &p.session_key).await?;
        let limit = p.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let before = match p.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(c.parse::<u64>().map_err(|_| {
                ServiceError::InvalidParams(format!(
                    "cursor \"{c}\" is not one this daemon gave out (expected a nextCursor value)"
                ))
            })?),
        };
        let budget = self.engine.config().limits.max_reply_bytes;
        let page = self
            .engine
            .store
            .history(
                session.sid,
                limit,
                before,
                p.include_tools.unwrap_or(false),
                budget,
            )
            .await?;
        let next_cursor = if page.has_more {
            page.messages.first().map(|m| m.seq.to_string())
        } else {
            None
        };
        Ok(HistoryResult {
            session_key: session.key,
            session_id: session.id,
            messages: page.messages,
            next_cursor,
            has_more: page.has_more,
        })
    }

    /// One message, a chunk at a time: for one too large for a history page.
    pub async fn message(&self, caller: &Caller, p: MessageParams) -> Result<MessageChunkResult> {
        self.authorize(caller, methods::SESSIONS_MESSAGE, scopes::SESSIONS_READ)?;
        let session = self.session(caller, &p.session_key).await?;
        let mut message = self
            .engine
            .store
            .message_at(session.sid, p.seq)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "session {} has no message {}; its messages are numbered from 1",
                    session.key, p.seq
                ))
            })?;
        let (encoding, text) = match &message.content {
            serde_json::Value::String(s) => ("text", s.clone()),
            other => ("json", other.to_string()),
        };
        let budget = self.engine.config().limits.max_reply_bytes;
        let total = text.len();
        let mut start = (p.offset.unwrap_or(0) as usize).min(total);
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let want = p.length.map_or(budget, |l| (l as usize).min(budget)).max(1);
        let mut end = start.saturating_add(want).min(total);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        if end == start && start < total {
            // A length shorter than one character still moves forward by one.
            end = start + text[start..].chars().next().map_or(0, char::len_utf8);
        }
        message.content = serde_json::Value::String(text[start..end].to_string());
        Ok(MessageChunkResult {
            session_key: session.key,
            message,
            encoding: encoding.to_string(),
            offset: start as u64,
            total_bytes: total as u64,
            has_more: end < total,
        })
    }

    /// Sessions, most recently updated first, paged by cursor.
    pub async fn list(&self, caller: &Caller, p: ListParams) -> Result<ListResult> {
        self.authorize(caller, methods::SESSIONS_LIST, scopes::SESSIONS_READ)?;
        let after = match p.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(parse_list_cursor(c).ok_or_else(|| {
                ServiceError::InvalidParams(format!(
                    "cursor \"{c}\" is not one this daemon gave out (expected a nextCursor value)"
                ))
            })?),
        };
        let parent_key = p.parent_key.map(|k| self.normalize(&k));
        let mut kinds = Vec::new();
        for k in p.kinds.unwrap_or_default() {
            let kind = SessionKind::parse(&k).ok_or_else(|| {
                ServiceError::InvalidParams(format!(
                    "kinds: \"{}\" is not a session kind; kinds are {}",
                    k.chars().take(64).collect::<String>(),
                    SessionKind::ALL.map(SessionKind::as_str).join(", ")
                ))
            })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        let limit = p.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let message_limit = p.message_limit.unwrap_or(0).min(MAX_LIST_MESSAGES);
        let filter = ListFilter {
            kinds,
            limit,
            after,
            active_minutes: p.active_minutes,
            parent_key,
            include_archived: p.include_archived.unwrap_or(false),
            message_limit,
            message_budget: self.engine.config().limits.max_reply_bytes / limit as usize,
            scope: self.scope(caller),
        };
        let page = self.engine.store.list(filter).await?;
        let sessions = page
            .sessions
            .into_iter()
            .map(|(rec, messages)| {
                let mut row = rec.to_row();
                row.messages = messages;
                row
            })
            .collect();
        Ok(ListResult {
            sessions,
            next_cursor: page.next.map(|(updated, sid)| format!("{updated}.{sid}")),
            total: page.total.map(|n| n.min(COUNT_CAP)),
            total_is_lower_bound: page.total.is_some_and(|n| n > COUNT_CAP),
        })
    }

    /// One session's row.
    pub async fn get(&self, caller: &Caller, p: GetParams) -> Result<GetResult> {
        self.authorize(caller, methods::SESSIONS_GET, scopes::SESSIONS_READ)?;
        let session = self.session(caller, &p.session_key).await?;
        Ok(GetResult {
            session: session.to_row(),
        })
    }
}

fn parse_list_cursor(c: &str) -> Option<(i64, i64)> {
    let (updated, sid) = c.split_once('.')?;
    Some((updated.parse().ok()?, sid.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_cursor_round_trips() {
        assert_eq!(parse_list_cursor("1700.42"), Some((1700, 42)));
        assert_eq!(parse_list_cursor("x.1"), None);
        assert_eq!(parse_list_cursor("17"), None);
    }
}
