//! `openclaw pairing list|approve|reject|revoke`: the owner admits other local users' devices
//! (SPEC §8). Every one of these needs the `admin` scope, which the owner has.

use clap::{Args, Subcommand};
use openclaw::protocol::{
    ApproveParams, NoParams, PairedDevice, PairingListResult, PendingRequest, RejectParams,
    RevokeParams, RevokeResult, methods, scopes,
};
use serde::Deserialize;

use super::{Context, call_raw, typed};
use crate::failure::Failure;
use crate::output::{Paint, Table, paint, print_json, print_line, write_stdout};

/// How many characters of an id or fingerprint a terminal table shows; commands accept any
/// unique prefix of 4 characters or more.
const SHORT: usize = 8;

#[derive(Debug, Subcommand)]
pub enum PairingCommand {
    /// List pending pairing requests and paired devices
    #[command(
        long_about = "List the pending pairing requests (made when another user's openclaw first reaches the daemon) and the paired devices, with their scopes and whether they were revoked.\n\nOn a terminal: two aligned tables, ids and fingerprints shortened to 8 characters (any unique prefix of 4 or more is accepted by approve, reject and revoke). Otherwise the same columns tab-separated with full ids, header line first, the requests' table, an empty line, then the devices' table; --json gives the whole result. Requests that expired are not listed."
    )]
    List,
    /// Pair the device of a pending request, granting it scopes
    #[command(
        long_about = "Pair the device of a pending request: from now on that user's openclaw is admitted with the granted scopes. REQUEST_ID is the id `openclaw pairing list` shows (any unique prefix of 4 characters or more), as given in the message the other user saw.\n\nScopes: sessions.read (list, history, follow, subscribe, wait, agents, daemon status), sessions.write (spawn, send, kill, patch, delete), admin (pairing, daemon stop, and seeing every user's sessions; without it a device sees only the sessions it created). Default: sessions.read,sessions.write."
    )]
    Approve(ApproveArgs),
    /// Refuse a pending pairing request
    #[command(
        long_about = "Refuse a pending pairing request: it is removed. The same device asks again (a new request) the next time its user runs openclaw."
    )]
    Reject(RejectArgs),
    /// Unpair a device; its open connections are dropped at once
    #[command(
        long_about = "Unpair a device: its calls are refused from now on, and its open connections (a follow, a subscribe) are closed at once. DEVICE is the fingerprint `openclaw pairing list` shows, or a unique prefix of it (4 characters or more). Prints the device's fingerprint and how many connections were dropped. Approving a new request from the same device pairs it again."
    )]
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The request's id, or a unique prefix of it (4 characters or more)
    #[arg(value_name = "REQUEST_ID")]
    pub request_id: String,
    /// Scopes to grant, comma-separated [default: sessions.read,sessions.write]
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        value_parser = clap::builder::PossibleValuesParser::new(scopes::ALL),
    )]
    pub scopes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    /// The request's id, or a unique prefix of it (4 characters or more)
    #[arg(value_name = "REQUEST_ID")]
    pub request_id: String,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The device's fingerprint, or a unique prefix of it (4 characters or more)
    #[arg(value_name = "DEVICE")]
    pub device: String,
}

/// Request ids and fingerprints are named by a unique prefix of at least this many characters.
const MIN_PREFIX: usize = 4;

/// A prefix too short to name one request or device is refused here, saying what is needed,
/// instead of the daemon's "no such request".
fn check_prefix(id: &str, what: &str) -> Result<(), Failure> {
    let len = id.trim().chars().count();
    if len < MIN_PREFIX {
        return Err(Failure::usage(format!(
            "\"{id}\" is too short to name a {what}: give its id, or a prefix of at least {MIN_PREFIX} characters (`openclaw pairing list` shows them)"
        ))
        .with_kind("prefix_too_short"));
    }
    Ok(())
}

pub fn run(ctx: &Context, command: PairingCommand) -> Result<(), Failure> {
    match &command {
        PairingCommand::List => {}
        PairingCommand::Approve(a) => check_prefix(&a.request_id, "pairing request")?,
        PairingCommand::Reject(a) => check_prefix(&a.request_id, "pairing request")?,
        PairingCommand::Revoke(a) => check_prefix(&a.device, "device")?,
    }
    match command {
        PairingCommand::List => list(ctx),
        PairingCommand::Approve(args) => approve(ctx, args),
        PairingCommand::Reject(args) => reject(ctx, args),
        PairingCommand::Revoke(args) => revoke(ctx, args),
    }
}

fn list(ctx: &Context) -> Result<(), Failure> {
    let mut client = ctx.client()?;
    let raw = call_raw(&mut client, methods::PAIRING_LIST, &NoParams {})?;
    if ctx.json {
        return print_json(&raw);
    }
    let result: PairingListResult = typed(methods::PAIRING_LIST, raw)?;
    let terminal = &ctx.terminal;
    let short = terminal.stdout_is_tty;
    let pending = pending_table(&result.pending, short);
    let devices = devices_table(&result.devices, short);
    let text = if terminal.stdout_is_tty {
        let section = |title: &str, table: &Table, empty: &str, count: usize| {
            let title = paint(terminal.color, Paint::Bold, title);
            if count == 0 {
                format!("{title}: {}\n", paint(terminal.color, Paint::Dim, empty))
            } else {
                format!("{title}:\n{}", table.aligned(terminal.color))
            }
        };
        format!(
            "{}\n{}",
            section("Pending requests", &pending, "none", result.pending.len()),
            section("Devices", &devices, "none", result.devices.len())
        )
    } else {
        format!("{}\n{}", pending.tab_separated(), devices.tab_separated())
    };
    write_stdout(&text)
}

/// `id` cut to `SHORT` characters and marked as cut, when `short`.
fn shorten(id: &str, short: bool) -> String {
    match id.char_indices().nth(SHORT) {
        Some((end, _)) if short => format!("{}…", &id[..end]),
        _ => id.to_string(),
    }
}

fn pending_table(pending: &[PendingRequest], short: bool) -> Table {
    let mut table = Table::new(vec![
        "REQUEST",
        "UID",
        "USER",
        "DEVICE",
        "REQUESTED",
        "EXPIRES",
    ]);
    for request in pending {
        table.push(vec![
            shorten(&request.request_id, short),
            request.uid.to_string(),
            request.user.clone().unwrap_or_default(),
            shorten(&request.fingerprint, short),
            request.requested_at.clone(),
            request.expires_at.clone(),
        ]);
    }
    table
}

fn devices_table(devices: &[PairedDevice], short: bool) -> Table {
    let mut table = Table::new(vec![
        "DEVICE", "UID", "USER", "SCOPES", "APPROVED", "REVOKED",
    ]);
    for device in devices {
        table.push(vec![
            shorten(&device.fingerprint, short),
            device.uid.to_string(),
            device.user.clone().unwrap_or_default(),
            device.scopes.join(","),
            device.approved_at.clone(),
            device.revoked_at.clone().unwrap_or_default(),
        ]);
    }
    table
}

fn approve_params(args: ApproveArgs) -> ApproveParams {
    ApproveParams {
        request_id: args.request_id,
        // None lets the daemon apply its default (sessions.read, sessions.write).
        scopes: (!args.scopes.is_empty()).then_some(args.scopes),
    }
}

/// What `pairing.approve` answers.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Approved {
    fingerprint: String,
    uid: u32,
    scopes: Vec<String>,
}

fn approve(ctx: &Context, args: ApproveArgs) -> Result<(), Failure> {
    let params = approve_params(args);
    let mut client = ctx.client()?;
    let raw = call_raw(&mut client, methods::PAIRING_APPROVE, &params)?;
    if ctx.json {
        return print_json(&raw);
    }
    let approved: Approved = typed(methods::PAIRING_APPROVE, raw)?;
    print_line(&approved_line(&approved))
}

fn approved_line(approved: &Approved) -> String {
    let scopes = if approved.scopes.is_empty() {
        "no scopes".to_string()
    } else {
        format!("scopes {}", approved.scopes.join(","))
    };
    format!(
        "paired device {} of uid {} with {scopes}",
        approved.fingerprint, approved.uid
    )
}

/// What `pairing.reject` answers.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rejected {
    request_id: String,
}

fn reject(ctx: &Context, args: RejectArgs) -> Result<(), Failure> {
    let params = RejectParams {
        request_id: args.request_id,
    };
    let mut client = ctx.client()?;
    let raw = call_raw(&mut client, methods::PAIRING_REJECT, &params)?;
    if ctx.json {
        return print_json(&raw);
    }
    let rejected: Rejected = typed(methods::PAIRING_REJECT, raw)?;
    print_line(&format!("rejected request {}", rejected.request_id))
}

fn revoke(ctx: &Context, args: RevokeArgs) -> Result<(), Failure> {
    let params = RevokeParams {
        device: args.device,
    };
    let mut client = ctx.client()?;
    let raw = call_raw(&mut client, methods::PAIRING_REVOKE, &params)?;
    if ctx.json {
        return print_json(&raw);
    }
    let revoked: RevokeResult = typed(methods::PAIRING_REVOKE, raw)?;
    print_line(&revoked_line(&revoked))
}

fn revoked_line(revoked: &RevokeResult) -> String {
    let verb = if revoked.revoked {
        "revoked device"
    } else {
        "device already revoked:"
    };
    let dropped = match revoked.dropped_connections {
        1 => "1 open connection".to_string(),
        n => format!("{n} open connections"),
    };
    format!("{verb} {}; dropped {dropped}", revoked.fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<PairingCommand, clap::Error> {
        let argv = ["openclaw", "pairing"].iter().chain(args);
        match crate::Cli::try_parse_from(argv)?.command {
            crate::Command::Pairing(cmd) => Ok(cmd),
            other => panic!("not a pairing command: {other:?}"),
        }
    }

    fn approve_args(args: &[&str]) -> ApproveArgs {
        let mut argv = vec!["approve"];
        argv.extend_from_slice(args);
        match parse(&argv).unwrap() {
            PairingCommand::Approve(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn approve_without_scopes_leaves_the_default_to_the_daemon() {
        let params = approve_params(approve_args(&["7f3a1b2c"]));
        assert_eq!(params.request_id, "7f3a1b2c");
        assert_eq!(params.scopes, None);
        let json = serde_json::to_value(&params).unwrap();
        assert_eq!(json, serde_json::json!({"requestId": "7f3a1b2c"}));
    }

    #[test]
    fn approve_takes_comma_separated_known_scopes() {
        let params = approve_params(approve_args(&["7f3a", "--scopes", "sessions.read,admin"]));
        assert_eq!(
            params.scopes,
            Some(vec!["sessions.read".to_string(), "admin".to_string()])
        );
        let err = parse(&["approve", "7f3a", "--scopes", "sessions.read,root"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("root"), "{err}");
    }

    #[test]
    fn every_subcommand_needs_its_id() {
        for sub in ["approve", "reject", "revoke"] {
            assert_eq!(parse(&[sub]).unwrap_err().exit_code(), 2, "{sub}");
        }
        assert!(matches!(parse(&["list"]).unwrap(), PairingCommand::List));
        assert!(matches!(
            parse(&["revoke", "3fa9"]).unwrap(),
            PairingCommand::Revoke(RevokeArgs { device }) if device == "3fa9"
        ));
    }

    #[test]
    fn a_prefix_needs_four_characters() {
        let err = check_prefix("ab", "pairing request").unwrap_err();
        assert_eq!(err.exit, crate::failure::Exit::Usage);
        let message = err.message.unwrap();
        assert!(message.contains("at least 4 characters"), "{message}");
        assert!(check_prefix("7f3a", "device").is_ok());
    }

    #[test]
    fn ids_are_shortened_only_for_terminals() {
        let id = "7f3a1b2c9d8e7f60";
        assert_eq!(shorten(id, true), "7f3a1b2c…");
        assert_eq!(shorten(id, false), id);
        assert_eq!(shorten("7f3a1b2c", true), "7f3a1b2c");
        assert_eq!(shorten("7f3a", true), "7f3a");
    }

    fn sample() -> PairingListResult {
        PairingListResult {
            pending: vec![PendingRequest {
                request_id: "7f3a1b2c9d8e7f60aa".into(),
                uid: 65534,
                user: Some("nobody".into()),
                fingerprint: "3fa9c1d2e5f60718".into(),
                requested_at: "2025-01-02T03:04:05.000Z".into(),
                expires_at: "2025-01-02T04:04:05.000Z".into(),
            }],
            devices: vec![
                PairedDevice {
                    fingerprint: "aabbccddeeff0011".into(),
                    uid: 1001,
                    user: None,
                    scopes: vec!["sessions.read".into(), "sessions.write".into()],
                    approved_at: "2025-01-01T00:00:00.000Z".into(),
                    revoked_at: None,
                },
                PairedDevice {
                    fingerprint: "0011223344556677".into(),
                    uid: 1002,
                    user: Some("reports".into()),
                    scopes: vec![],
                    approved_at: "2025-01-01T00:00:00.000Z".into(),
                    revoked_at: Some("2025-01-03T00:00:00.000Z".into()),
                },
            ],
        }
    }

    #[test]
    fn tables_for_scripts_keep_full_ids_and_every_column() {
        let list = sample();
        assert_eq!(
            pending_table(&list.pending, false).tab_separated(),
            "REQUEST\tUID\tUSER\tDEVICE\tREQUESTED\tEXPIRES\n\
             7f3a1b2c9d8e7f60aa\t65534\tnobody\t3fa9c1d2e5f60718\t2025-01-02T03:04:05.000Z\t2025-01-02T04:04:05.000Z\n"
        );
        assert_eq!(
            devices_table(&list.devices, false).tab_separated(),
            "DEVICE\tUID\tUSER\tSCOPES\tAPPROVED\tREVOKED\n\
             aabbccddeeff0011\t1001\t\tsessions.read,sessions.write\t2025-01-01T00:00:00.000Z\t\n\
             0011223344556677\t1002\treports\t\t2025-01-01T00:00:00.000Z\t2025-01-03T00:00:00.000Z\n"
        );
    }

    #[test]
    fn tables_for_people_shorten_ids() {
        let list = sample();
        let out = pending_table(&list.pending, true).aligned(false);
        assert!(out.contains("7f3a1b2c…  65534  nobody  3fa9c1d2…"), "{out}");
        assert!(!out.contains("7f3a1b2c9"), "{out}");
    }

    #[test]
    fn results_read_as_sentences() {
        let approved = Approved {
            fingerprint: "3fa9".into(),
            uid: 65534,
            scopes: vec!["sessions.read".into()],
        };
        assert_eq!(
            approved_line(&approved),
            "paired device 3fa9 of uid 65534 with scopes sessions.read"
        );
        let revoked = RevokeResult {
            fingerprint: "3fa9".into(),
            revoked: true,
            dropped_connections: 1,
        };
        assert_eq!(
            revoked_line(&revoked),
            "revoked device 3fa9; dropped 1 open connection"
        );
        let revoked = RevokeResult {
            dropped_connections: 0,
            ..revoked
        };
        assert!(revoked_line(&revoked).ends_with("dropped 0 open connections"));
    }
}
