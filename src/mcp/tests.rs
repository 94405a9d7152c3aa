//! In-process tests of the stdio transport's answers to input it cannot use.
