//! The newest part of each session's transcript, kept between its turns, so a turn reads
//! only the messages committed since the last one instead of the whole context window (up
//! to `max_context_messages` + slack rows, each parsed from JSON) every time.
//!
//! This is exact because a session's transcript is append-only while the session exists:
//! messages are never edited, and deleting a session removes it from the cache (and
//! entries are keyed by the session's id, which is never reused). The window kept is the
//! same one a fresh read returns: the newest `limit` messages within `budget` bytes of
//! content, the newest one truncated when it alone is larger.
//!
//! The cache is bounded (entries and bytes, least recently used first out), so thousands
//! of idle sessions cost nothing beyond the bound.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::protocol::Message;

/// Sessions kept at most.
const MAX_ENTRIES: usize = 512;
/// Content bytes kept at most, over all sessions.
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// A message of the window and the size of its whole content as stored (JSON text), which
/// is what the byte budget counts.
#[derive(Debug, Clone)]
struct Kept {
    message: Message,
    len: usize,
}

/// One session's window: its newest messages, oldest first, and the seq read up to.
#[derive(Debug, Clone)]
pub struct Window {
    sid: i64,
    kept: VecDeque<Kept>,
    /// Every message up to this seq has been read (0: none yet).
    read_to: u64,
    bytes: usize,
}

impl Window {
    /// A window from a fresh read (`history`'s newest `limit` within `budget`).
    pub fn fresh(sid: i64, loaded: Vec<Message>) -> Window {
        let mut w = Window {
            sid,
            kept: VecDeque::with_capacity(loaded.len()),
            read_to: 0,
            bytes: 0,
        };
        for m in loaded {
            w.push(m);
        }
        w
    }

    /// The seq to read after.
    pub fn read_to(&self) -> u64 {
        self.read_to
    }

    fn push(&mut self, message: Message) {
        let len = stored_len(&message);
        self.read_to = self.read_to.max(message.seq);
        self.bytes += len;
        self.kept.push_back(Kept { message, len });
    }

    /// Adds the messages committed since (oldest first, none left out), then drops the
    /// oldest until the window is what a fresh read of `limit` within `budget` returns.
    pub fn extend(&mut self, newer: Vec<Message>, limit: usize, budget: usize) {
        for m in newer {
            if m.seq > self.read_to {
                self.push(m);
            }
        }
        // A fresh read walks from the newest message back: it always takes the newest (cut
        // to the budget when larger), then each older one while the count and the bytes
        // stay within bounds.
        let mut keep = 0;
        let mut used = 0usize;
        for k in self.kept.iter().rev() {
            if keep >= limit.max(1) || (keep > 0 && used + k.len > budget) {
                break;
            }
            used += k.len;
            keep += 1;
        }
        while self.kept.len() > keep {
            if let Some(k) = self.kept.pop_front() {
                self.bytes -= k.len;
            }
        }
    }

    /// The window's messages, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        self.kept.iter().map(|k| k.message.clone()).collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.kept.len()
    }
}

/// The size a message's content has in the store: its JSON text, or for a message read
/// truncated, the whole size the store reported.
fn stored_len(m: &Message) -> usize {
    match m.bytes {
        Some(b) if m.truncated == Some(true) => b as usize,
        _ => crate::daemon::store::stored_len(&m.content),
    }
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, (Window, u64)>,
    clock: u64,
    bytes: usize,
}

/// The windows of recently active sessions, by session id.
#[derive(Default)]
pub struct ContextCache {
    inner: Mutex<Inner>,
}

impl ContextCache {
    pub fn new() -> ContextCache {
        ContextCache::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a session's window out for a turn (a session's turns run one at a time; a
    /// turn that finds none reads the store afresh).
    pub fn take(&self, session_id: &str, sid: i64) -> Option<Window> {
        let mut inner = self.lock();
        let (w, _) = inner.entries.remove(session_id)?;
        inner.bytes -= w.bytes;
        (w.sid == sid).then_some(w)
    }

    /// Keeps a session's window for its next turn.
    pub fn put(&self, session_id: &str, window: Window) {
        if window.bytes > MAX_BYTES / 4 {
            return; // a window that large is read afresh rather than crowd out the others
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let used = inner.clock;
        inner.bytes += window.bytes;
        if let Some((old, _)) = inner.entries.insert(session_id.to_string(), (window, used)) {
            inner.bytes -= old.bytes;
        }
        while inner.entries.len() > MAX_ENTRIES || inner.bytes > MAX_BYTES {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((w, _)) = inner.entries.remove(&oldest) {
                inner.bytes -= w.bytes;
            }
        }
    }

    /// The session is gone.
    pub fn forget(&self, session_id: &str) {
        let mut inner = self.lock();
        if let Some((w, _)) = inner.entries.remove(session_id) {
            inner.bytes -= w.bytes;
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Role;

    fn m(seq: u64, text: &str) -> Message {
        crate::daemon::test_support::text_message(seq, Role::User, text)
    }

    fn seqs(w: &Window) -> Vec<u64> {
        w.messages().iter().map(|m| m.seq).collect()
    }

    #[test]
    fn the_window_keeps_the_newest_within_the_count() {
        let mut w = Window::fresh(1, vec![m(1, "a"), m(2, "b")]);
        w.extend(vec![m(3, "c"), m(4, "d")], 3, 1 << 20);
        assert_eq!(seqs(&w), vec![2, 3, 4]);
        assert_eq!(w.read_to(), 4);
        // Seen already: not twice.
        w.extend(vec![m(4, "d"), m(5, "e")], 3, 1 << 20);
        assert_eq!(seqs(&w), vec![3, 4, 5]);
    }

    #[test]
    fn the_window_keeps_the_newest_within_the_bytes_as_a_fresh_read_does() {
        // Each "xxxx" is 6 bytes as JSON text.
        let mut w = Window::fresh(1, vec![m(1, "xxxx"), m(2, "xxxx")]);
        w.extend(vec![m(3, "xxxx")], 10, 12);
        assert_eq!(seqs(&w), vec![2, 3]);
        // A message read truncated counts with its whole size: once older, it ends the window.
        let mut big = m(4, "cut");
        big.truncated = Some(true);
        big.bytes = Some(1000);
        w.extend(vec![big], 10, 12);
        assert_eq!(seqs(&w), vec![4], "the newest is always kept");
        w.extend(vec![m(5, "y")], 10, 12);
        assert_eq!(seqs(&w), vec![5]);
    }

    #[test]
    fn the_cache_is_per_session_id_and_sid_and_bounded() {
        let c = ContextCache::new();
        c.put("s1", Window::fresh(1, vec![m(1, "a")]));
        assert!(c.take("s1", 2).is_none(), "another sid is another session");
        assert!(c.take("s1", 1).is_none(), "taken by the call before");
        c.put("s1", Window::fresh(1, vec![m(1, "a")]));
        assert_eq!(c.take("s1", 1).map(|w| w.len()), Some(1));
        for i in 0..MAX_ENTRIES + 10 {
            c.put(&format!("s{i}"), Window::fresh(i as i64, vec![m(1, "a")]));
        }
        assert_eq!(c.len(), MAX_ENTRIES);
        assert!(
            c.take("s0", 0).is_none(),
            "the least recently used went first"
        );
        assert!(
            c.take(&format!("s{}", MAX_ENTRIES + 9), (MAX_ENTRIES + 9) as i64)
                .is_some()
        );
        c.forget("s20");
        assert!(c.take("s20", 20).is_none());
    }
}
