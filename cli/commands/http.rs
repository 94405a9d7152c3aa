//! `openclaw http token [--rotate]`: the bearer token of the daemon's HTTP surface.

use clap::{Args, Subcommand};
use openclaw::protocol::{HttpTokenParams, HttpTokenResult, methods};

use super::{Context, call_raw, typed};
use crate::autostart::Autostart;
use crate::failure::Failure;
use crate::output::{diagnostic, print_json, print_line};

#[derive(Debug, Subcommand)]
pub enum HttpCommand {
    /// Print the HTTP surface's bearer token (made on first use); --rotate replaces it
    #[command(
        long_about = "Print the bearer token of the daemon's HTTP surface on stdout, alone on a line, so `token=$(openclaw http token)` works; it is made on first use and kept 0600 in the data directory. --rotate replaces it: the old token stops working at once. Needs the admin scope, which the owner has."
    )]
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Make a new token; the old one stops working at once
    #[arg(long)]
    pub rotate: bool,
}

pub fn run(ctx: &Context, command: HttpCommand) -> Result<(), Failure> {
    match command {
        HttpCommand::Token(args) => token(ctx, args),
    }
}

fn token(ctx: &Context, args: TokenArgs) -> Result<(), Failure> {
    let params = HttpTokenParams {
        rotate: args.rotate.then_some(true),
    };
    // The token is the daemon's: asking for it does not start one.
    let mut client = ctx.client_with(Autostart::Never)?;
    let raw = call_raw(&mut client, methods::HTTP_TOKEN, &params)?;
    if ctx.json {
        return print_json(&raw);
    }
    let token: HttpTokenResult = typed(methods::HTTP_TOKEN, raw)?;
    print_line(&token.token)?;
    // A rotation is said also to a script: whatever holds the old token stops working.
    if args.rotate {
        diagnostic(
            "note",
            &format!(
                "a new token replaced the old one, which no longer works; kept in {}",
                token.path
            ),
        );
    } else if ctx.terminal.stderr_is_tty {
        let listen = token
            .listen
            .map_or(String::new(), |l| format!("; HTTP listens on {l}"));
        diagnostic("note", &format!("kept in {}{listen}", token.path));
    }
    Ok(())
}
