//! `sealstream market login|link revoke|operator-key|admin role`: the
//! session itself, an order's bearer links, the owner's opt-in operator
//! key, and an admin's role changes.

use sealstream_api::auth::MeResponse;
use sealstream_api::machines::RegisterOperatorKey;
use sealstream_core::identity::Did;

use super::market_session::{client, client_error, json_answer};
use crate::cli::{
    MarketAdminCommand, MarketLinkCommand, MarketOperatorKeyCommand, MarketRoleCommand,
    MarketSession,
};
use crate::error::{CliError, CliResult};
use crate::ui::Ui;

/// A DID given on the command line, as the server writes it.
fn did(text: &str, flag: &str) -> CliResult<String> {
    Did::parse(text, flag)
        .map(|d| d.to_string())
        .map_err(|e| CliError::input(e.to_string()))
}

/// `market login`: the token on stdout, who and what on stderr.
pub fn login(session: &MarketSession, ui: Ui) -> CliResult {
    let mut client = client(session, "a user")?;
    let token = client
        .session_token()
        .map_err(|e| client_error("login", e))?
        .to_string();
    let me = client.me().map_err(|e| client_error("login", e))?;
    if ui.json {
        let mut m = sealstream_core::json::Map::new();
        m.insert("token".into(), token.into());
        m.insert("did".into(), me.did.as_str().into());
        m.insert(
            "roles".into(),
            sealstream_core::json::Value::Array(
                me.roles.iter().map(|r| r.as_str().into()).collect(),
            ),
        );
        ui.json_out(&sealstream_core::json::Value::Object(m));
        return Ok(());
    }
    println!("{token}");
    ui.say(format!(
        "Signed in to {} as {} ({}); send the token as `Authorization: Bearer TOKEN`",
        session.server,
        me.did,
        roles_text(&me)
    ));
    Ok(())
}

/// `market login --web`: a single-use sign-in link for a browser on stdout.
pub fn login_web(session: &MarketSession, ui: Ui) -> CliResult {
    let mut client = client(session, "a user")?;
    let link = client.web_link().map_err(|e| client_error("login", e))?;
    if ui.json {
        let mut m = sealstream_core::json::Map::new();
        m.insert("url".into(), link.url.as_str().into());
        m.insert("expiresAt".into(), link.expires_at.as_str().into());
        ui.json_out(&sealstream_core::json::Value::Object(m));
        return Ok(());
    }
    println!("{}", link.url);
    ui.say(format!(
        "Open the link in a browser before {} to sign in to {}; it works once. Anyone holding it until then can sign in as you: do not share it.",
        link.expires_at, session.server
    ));
    Ok(())
}

/// "owner, buyer", or "no role".
fn roles_text(me: &MeResponse) -> String {
    if me.roles.is_empty() {
        return "no role".into();
    }
    let names: Vec<&str> = me.roles.iter().map(|r| r.as_str()).collect();
    format!("roles: {}", names.join(", "))
}

/// `market link revoke`.
pub fn link(command: MarketLinkCommand, ui: Ui) -> CliResult {
    let MarketLinkCommand::Revoke {
        session,
        order,
        link,
    } = command;
    let mut client = client(&session, "a buyer or seller")?;
    client
        .revoke_link(&order, &link)
        .map_err(|e| client_error("link revoke", e))?;
    ui.say(format!("Link {link} of order {order} revoked"));
    Ok(())
}

/// `market operator-key set|remove`.
pub fn operator_key(command: MarketOperatorKeyCommand, ui: Ui) -> CliResult {
    match command {
        MarketOperatorKeyCommand::Set {
            session,
            machine,
            operator_key_file,
        } => {
            let machine = did(&machine, "--machine-did")?;
            let secret =
                crate::keyfile::x25519_secret(&operator_key_file, "operator recipient key")?;
            let mut client = client(&session, "an owner")?;
            let request = RegisterOperatorKey {
                secret_key_hex: secret.to_hex_secret().as_str().to_string(),
            };
            let view = client
                .register_operator_key(&machine, &request)
                .map_err(|e| client_error("operator-key set", e))?;
            ui.say(format!(
                "The server now grants paid orders of {} itself, with operator key {} ({})",
                view.machine_did, view.public_key_hex, view.recipient_id
            ));
            if ui.json {
                json_answer(&ui, &view)?;
            }
            Ok(())
        }
        MarketOperatorKeyCommand::Remove { session, machine } => {
            let machine = did(&machine, "--machine-did")?;
            let mut client = client(&session, "an owner")?;
            client
                .revoke_operator_key(&machine)
                .map_err(|e| client_error("operator-key remove", e))?;
            ui.say(format!(
                "Operator key of {machine} removed: paid orders wait for the owner's grant daemon"
            ));
            Ok(())
        }
    }
}

/// `market admin role grant|revoke`.
pub fn admin(command: MarketAdminCommand, ui: Ui) -> CliResult {
    let MarketAdminCommand::Role(command) = command;
    let (session, principal, role, grant) = match command {
        MarketRoleCommand::Grant { session, did, role } => (session, did, role, true),
        MarketRoleCommand::Revoke { session, did, role } => (session, did, role, false),
    };
    let principal = did(&principal, "DID")?;
    let mut client = client(&session, "an admin")?;
    let me = if grant {
        client.grant_role(&principal, &role)
    } else {
        client.revoke_role(&principal, &role)
    }
    .map_err(|e| {
        client_error(
            if grant {
                "admin role grant"
            } else {
                "admin role revoke"
            },
            e,
        )
    })?;
    ui.say(format!(
        "{} {role} {} {}: {}",
        if grant { "Granted" } else { "Revoked" },
        if grant { "to" } else { "from" },
        me.did,
        roles_text(&me)
    ));
    if ui.json {
        json_answer(&ui, &me)?;
    }
    Ok(())
}
