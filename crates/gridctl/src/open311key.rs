//! `gridctl open311-key issue|revoke|list`: the Open311 facade's client keys, kept in gridd's
//! database (operators run it next to gridd, as for `gridctl audit`).

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use domain::region::RegionCode;

#[derive(Debug, Args)]
pub struct Open311KeyArgs {
    #[command(subcommand)]
    pub cmd: Open311KeyCommand,
    #[arg(long, env = "GRIDD_DATABASE_URL", global = true, default_value = "")]
    pub database_url: String,
}

#[derive(Debug, Subcommand)]
pub enum Open311KeyCommand {
    /// Issue a key to a client: prints the key once (only its digest is kept).
    Issue {
        /// Who the client is (an app, a hotline's web form); named in the audit trail.
        #[arg(long)]
        name: String,
        /// The region it files and reads in: a county (or city) code.
        #[arg(long)]
        region: String,
    },
    /// Revoke a client's key (by the id `list` shows); gridd stops taking it within 10 s.
    Revoke {
        #[arg(long)]
        id: uuid::Uuid,
    },
    /// The clients and whether their keys are live.
    List,
}

pub async fn run(a: Open311KeyArgs) -> anyhow::Result<()> {
    if a.database_url.is_empty() {
        bail!("say --database-url or set GRIDD_DATABASE_URL");
    }
    let store = store::Store::connect(&a.database_url, 1)
        .await
        .context("connecting to gridd's database")?;
    match a.cmd {
        Open311KeyCommand::Issue { name, region } => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 100 {
                bail!("--name: 1 to 100 characters");
            }
            let region =
                RegionCode::parse(&region).map_err(|e| anyhow::anyhow!("--region: {e}"))?;
            let key = server::open311::new_key();
            let c = store
                .issue_open311_key(name, &region, &key, &operator())
                .await?;
            println!(
                "id\t{}\nname\t{}\nregion\t{}\napi_key\t{key}",
                c.id, c.name, c.region
            );
            eprintln!("the key is shown this once: hand it to the client now");
        }
        Open311KeyCommand::Revoke { id } => {
            if !store.revoke_open311_key(id, &operator()).await? {
                bail!("no live key with id {id}");
            }
            println!("revoked {id}");
        }
        Open311KeyCommand::List => {
            for c in store.list_open311_keys().await? {
                let state = c.revoked_at.map_or_else(
                    || "live".to_owned(),
                    |t| format!("revoked {}", t.to_rfc3339()),
                );
                println!(
                    "{}\t{}\t{}\tissued {}\t{state}",
                    c.id,
                    c.region,
                    c.name,
                    c.created_at.to_rfc3339()
                );
            }
        }
    }
    Ok(())
}

/// The audit trail names the operator's login on this machine.
fn operator() -> store::Actor {
    store::Actor {
        subject: format!(
            "gridctl:{}",
            std::env::var("USER").unwrap_or_else(|_| "operator".into())
        ),
        role: "operator".into(),
        unit: None,
    }
}
