//! Where the daemon's log goes: stderr (its log file when autostarted), written by a thread
//! of its own. The daemon never waits on its log and never fails because of it: a line that
//! cannot be queued (the writer is stuck) or written (a full disk, a closed pipe) is counted
//! and dropped, and the next line that is written says how many were lost.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

/// Lines queued for the writer before new ones are dropped.
const QUEUE: usize = 8192;

/// How long the end of the process waits for queued lines to be written.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Log lines lost since start-up (dropped or failed to write).
static LOST: AtomicU64 = AtomicU64::new(0);

/// Log lines lost since the daemon started: not queued because the writer was behind, or
/// not written (e.g. no space left on the log's disk).
pub fn lines_lost() -> u64 {
    LOST.load(Ordering::Relaxed)
}

enum Item {
    Line(Vec<u8>),
    /// Answered once everything queued before it was written.
    Flush(mpsc::Sender<()>),
}

/// Hands log lines to the writer thread; a `tracing_subscriber` writer (`MakeWriter`).
#[derive(Clone)]
pub struct LogWriter {
    queue: SyncSender<Item>,
}

/// Waits (a little) for queued lines to be written when the daemon's `main` returns.
pub struct FlushOnDrop {
    queue: SyncSender<Item>,
}

impl LogWriter {
    /// Starts the writer thread on `out`; falls back to writing in place (still never
    /// failing) when no thread can be started.
    pub fn start<W: Write + Send + 'static>(out: W) -> (LogWriter, FlushOnDrop) {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_lines(rx, out));
        if spawned.is_err() {
            LOST.fetch_add(1, Ordering::Relaxed);
        }
        (LogWriter { queue: tx.clone() }, FlushOnDrop { queue: tx })
    }

    fn queue(&self, line: Vec<u8>) {
        match self.queue.try_send(Item::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                LOST.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        let (tx, rx) = mpsc::channel();
        if self.queue.try_send(Item::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(FLUSH_WAIT);
        }
    }
}

/// The writer thread: writes each line whole; what fails is counted, and the first line
/// written after a loss says how many lines were lost.
fn write_lines<W: Write>(rx: Receiver<Item>, mut out: W) {
    let mut reported = 0;
    for item in rx {
        let line = match item {
            Item::Line(line) => line,
            Item::Flush(done) => {
                let _ = out.flush();
                let _ = done.send(());
                continue;
            }
        };
        let lost = LOST.load(Ordering::Relaxed);
        if lost > reported {
            let note = format!(
                "openclawd: {} log lines were lost before this one (the log could not be written or kept up)\n",
                lost - reported
            );
            if out.write_all(note.as_bytes()).is_err() {
                LOST.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            reported = lost;
        }
        if out.write_all(&line).is_err() {
            LOST.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One event's text, collected whole and queued when the formatter is done with it.
pub struct LogLine {
    writer: LogWriter,
    buf: Vec<u8>,
}

impl Write for LogLine {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.writer.queue(std::mem::take(&mut self.buf));
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            writer: self.clone(),
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A sink that fails while `full` is set, like a file on a full disk.
    #[derive(Clone, Default)]
    struct Disk {
        full: Arc<std::sync::atomic::AtomicBool>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Disk {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            if self.full.load(Ordering::Relaxed) {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.written.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn line(w: &LogWriter, text: &str) {
        use tracing_subscriber::fmt::MakeWriter;
        let mut l = w.make_writer();
        l.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn failed_writes_are_counted_and_reported_when_the_log_works_again() {
        let disk = Disk::default();
        let (w, flush) = LogWriter::start(disk.clone());
        let before = lines_lost();
        line(&w, "one\n");
        drop(FlushOnDrop {
            queue: flush.queue.clone(),
        });
        disk.full.store(true, Ordering::Relaxed);
        line(&w, "two\n");
        line(&w, "three\n");
        drop(FlushOnDrop {
            queue: flush.queue.clone(),
        });
        assert!(lines_lost() >= before + 2, "both failed lines counted");
        disk.full.store(false, Ordering::Relaxed);
        line(&w, "four\n");
        drop(flush);
        let text = String::from_utf8(disk.written.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("one\n"), "{text}");
        assert!(text.ends_with("four\n"), "{text}");
        assert!(text.contains("log lines were lost"), "{text}");
        assert!(!text.contains("two") && !text.contains("three"), "{text}");
    }
}
