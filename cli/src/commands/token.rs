//! `taskyard token create | list | revoke`: the REST API's bearer tokens.
//!
//! These write straight to Postgres (`--database-url`), not through the
//! API: the first admin token cannot come from an API that needs one. The
//! token itself is printed once, at creation; only its SHA-256 is stored.

use crate::database::Database;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::process::ExitCode;
use taskyard_store::tokens::{CreateTokenError, Role};

#[derive(Debug, Subcommand)]
pub enum Token {
    /// Create a token and print it (once: only its hash is kept).
    Create(Create),
    /// List tokens: name, role, created, last used, revoked.
    List(List),
    /// Revoke a token by name: it stops working at once.
    Revoke(Revoke),
}

#[derive(Debug, Args)]
pub struct Create {
    /// A name for people (who or what holds it); unique.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// viewer (reads), operator (+ submit, cancel, retry, drain, cordon) or
    /// admin (+ pools, node removal).
    #[arg(long, value_name = "ROLE", value_parser = parse_role)]
    pub role: Role,
    #[command(flatten)]
    pub database: Database,
}

#[derive(Debug, Args)]
pub struct List {
    #[command(flatten)]
    pub database: Database,
}

#[derive(Debug, Args)]
pub struct Revoke {
    /// The token's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub database: Database,
}

fn parse_role(raw: &str) -> Result<Role, String> {
    raw.parse()
        .map_err(|err: taskyard_store::tokens::UnknownRole| err.to_string())
}

impl Token {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Token::Create(cmd) => {
                let store = cmd.database.connect().await?;
                match store.create_token(&cmd.name, cmd.role).await {
                    Ok(created) => {
                        println!("{}", created.token);
                        eprintln!(
                            "token `{}` ({}) created; it is shown only this once. Use it as \
                             `Authorization: Bearer <token>`, `taskyard --token <token>` or \
                             TASKYARD_TOKEN.",
                            created.row.name, created.row.role
                        );
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(err @ (CreateTokenError::NameTaken(_) | CreateTokenError::EmptyName)) => {
                        eprintln!("error: {err}");
                        Ok(ExitCode::FAILURE)
                    }
                    Err(err) => Err(err).context("creating the token"),
                }
            }
            Token::List(cmd) => {
                let store = cmd.database.connect().await?;
                let tokens = store.list_tokens().await.context("listing tokens")?;
                if tokens.is_empty() {
                    println!(
                        "no tokens; create one with `taskyard token create --name NAME --role admin`"
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                let when = |t: Option<taskyard_wire::Timestamp>| {
                    t.map(taskyard_client::readable::format_time)
                        .unwrap_or_else(|| "-".to_owned())
                };
                let width = tokens
                    .iter()
                    .map(|t| t.name.len())
                    .max()
                    .unwrap_or(4)
                    .max(4);
                println!(
                    "{:<width$}  {:<8}  {:<19}  {:<19}  REVOKED",
                    "NAME", "ROLE", "CREATED", "LAST USED"
                );
                for token in tokens {
                    println!(
                        "{:<width$}  {:<8}  {:<19}  {:<19}  {}",
                        token.name,
                        token.role.as_str(),
                        taskyard_client::readable::format_time(token.created_at),
                        when(token.last_used_at),
                        when(token.revoked_at),
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            Token::Revoke(cmd) => {
                let store = cmd.database.connect().await?;
                if store.revoke_token(&cmd.name).await.context("revoking")? {
                    println!("token `{}` revoked", cmd.name);
                    Ok(ExitCode::SUCCESS)
                } else {
                    eprintln!("error: no live token is named `{}`", cmd.name);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
