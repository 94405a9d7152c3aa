//! What one published event shares with every stream that forwards it, so its cost does not
//! grow with its subscribers: its notification params encoded once (all but the
//! per-subscriber `subscription` id, which `notify` splices in), and for a message, its cut
//! to the reply budget, made once.

use std::sync::{Arc, OnceLock};

use crate::daemon::store::{stored_len, truncated};
use crate::protocol::Message;

#[derive(Debug, Clone, Default)]
pub struct SharedEncoding(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// The params without `subscription`, e.g. `{"sessionKey":…,"message":…}`.
    params: OnceLock<Box<[u8]>>,
    /// The message as a reply within `budget` carries it; `None` when it fits whole.
    cut: OnceLock<(usize, Option<Arc<Message>>)>,
}

impl SharedEncoding {
    /// The params without `subscription`, encoded by the first caller only.
    pub fn params(&self, encode: impl FnOnce() -> Vec<u8>) -> &[u8] {
        self.0.params.get_or_init(|| encode().into_boxed_slice())
    }

    /// `message` as a reply within `budget` bytes carries it: itself, or truncated with its
    /// whole size. The flag is false when the cut was made for another budget first (the
    /// config was reloaded in between): the message is then this caller's own, and its
    /// encoding must not be taken from, or left in, this cache.
    pub fn fit(&self, message: &Arc<Message>, budget: usize) -> (Arc<Message>, bool) {
        let (cached_for, cut) = self.0.cut.get_or_init(|| (budget, cut(message, budget)));
        if *cached_for == budget {
            (cut.clone().unwrap_or_else(|| message.clone()), true)
        } else {
            (cut_to(message, budget), false)
        }
    }
}

fn cut(message: &Message, budget: usize) -> Option<Arc<Message>> {
    let len = stored_len(&message.content);
    (len > budget).then(|| Arc::new(truncated(message, len, budget)))
}

fn cut_to(message: &Arc<Message>, budget: usize) -> Arc<Message> {
    cut(message, budget).unwrap_or_else(|| message.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Role;
    use serde_json::Value;

    fn message(text: &str) -> Arc<Message> {
        Arc::new(crate::daemon::test_support::text_message(
            1,
            Role::Assistant,
            text,
        ))
    }

    #[test]
    fn a_message_over_the_budget_is_cut_once_and_marked_with_its_size() {
        let shared = SharedEncoding::default();
        let big = message(&"x".repeat(100));
        let (cut, cached) = shared.fit(&big, 10);
        assert!(cached);
        assert_eq!(cut.content, Value::String("x".repeat(10)));
        assert_eq!((cut.truncated, cut.bytes), (Some(true), Some(102)));
        let (again, _) = shared.fit(&big, 10);
        assert!(Arc::ptr_eq(&cut, &again), "made once, shared after");
        let (other, cached) = shared.fit(&big, 20);
        assert!(!cached, "another budget is not served from the cache");
        assert_eq!(other.content, Value::String("x".repeat(20)));
    }

    #[test]
    fn a_message_within_the_budget_is_itself() {
        let shared = SharedEncoding::default();
        let small = message("hi");
        let (same, _) = shared.fit(&small, 4);
        assert!(Arc::ptr_eq(&same, &small) && same.truncated.is_none());
    }

    #[test]
    fn params_are_encoded_by_the_first_caller_only() {
        let shared = SharedEncoding::default();
        let mut calls = 0;
        let first = shared.params(|| {
            calls += 1;
            b"{\"a\":1}".to_vec()
        });
        assert_eq!(first, b"{\"a\":1}");
        let second = shared.params(|| {
            calls += 1;
            b"{}".to_vec()
        });
        assert_eq!(second, b"{\"a\":1}");
        assert_eq!(calls, 1);
    }
}
