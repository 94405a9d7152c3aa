//! `openclaw http token [--rotate]`: the HTTP surface's bearer token, for `curl -H
//! "Authorization: Bearer $(openclaw http token)"`.

use clap::Subcommand;
use openclaw::protocol::{HttpTokenParams, HttpTokenResult, methods};

use super::{Context, call_raw, typed};
use crate::failure::Failure;
use crate::output::{diagnostic, print_json, write_stdout};

#[derive(Debug, Subcommand)]
pub enum HttpCommand {
    /// Print the bearer token of the daemon's HTTP API (the daemon creates it, 0600, on start)
    #[command(
        long_about = "Print the bearer token that HTTP requests on [http] listen must carry (`Authorization: Bearer TOKEN`). The daemon creates it (32 random bytes, hex) in http.token in its data directory, mode 0600, on its first start. With --rotate a new token replaces it and the old one stops working at once. Requests on the Unix socket need no token: the kernel's peer credentials say who they are."
    )]
    Token {
        /// Replace the token; the old one stops working at once
        #[arg(long)]
        rotate: bool,
    },
}

pub async fn run(ctx: &Context, command: HttpCommand) -> Result<(), Failure> {
    match command {
        HttpCommand::Token { rotate } => token(ctx, rotate).await,
    }
}

async fn token(ctx: &Context, rotate: bool) -> Result<(), Failure> {
    let client = ctx.client().await?;
    let params = HttpTokenParams {
        rotate: rotate.then_some(true),
    };
    let raw = call_raw(&client, methods::HTTP_TOKEN, &params).await?;
    if ctx.json {
        return print_json(&raw);
    }
    let result: HttpTokenResult = typed(methods::HTTP_TOKEN, raw)?;
    if rotate {
        diagnostic(
            "note",
            &format!("a new token replaced the old one in {}", result.path),
        );
    }
    write_stdout(&format!("{}\n", result.token))
}
