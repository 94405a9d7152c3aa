//! `echo`: replies with the message. The default backend and the backbone of tests and
//! benchmarks: it exercises every part of the engine except a real agent.

use super::{TurnContext, TurnError, TurnOutput};

pub async fn run_turn(ctx: TurnContext) -> Result<TurnOutput, TurnError> {
    if ctx.stop.is_cancelled() {
        return Err(TurnError::Stopped);
    }
    ctx.events.assistant_delta(&ctx.message);
    Ok(TurnOutput {
        reply: ctx.message,
        tokens: None,
    })
}
