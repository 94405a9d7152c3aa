//! `echo`: replies with the message. The default backend and the backbone of tests and
//! benchmarks: it exercises every part of the engine except a real agent.

use tokio_util::sync::CancellationToken;

use super::{TurnError, TurnInput, TurnOutput};

pub async fn run_turn(input: TurnInput, stop: CancellationToken) -> Result<TurnOutput, TurnError> {
    if stop.is_cancelled() {
        return Err(TurnError::Stopped);
    }
    Ok(TurnOutput {
        reply: input.message,
        tokens: None,
    })
}
