//! `echo`: replies with the message. The default backend and the backbone of tests and
//! benchmarks: it exercises every part of the engine except a real agent.

use tokio_util::sync::CancellationToken;

use super::{TurnError, TurnInput, TurnOutput};
use crate::daemon::events::RunEvents;

pub async fn run_turn(
    input: TurnInput,
    events: RunEvents,
    stop: CancellationToken,
) -> Result<TurnOutput, TurnError> {
    if stop.is_cancelled() {
        return Err(TurnError::Stopped);
    }
    events.assistant_delta(&input.message);
    Ok(TurnOutput {
        reply: input.message,
        tokens: None,
    })
}
