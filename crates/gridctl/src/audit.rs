//! `gridctl audit --case ID`: a case's audit trail, read from gridd's database (operators run
//! it next to gridd, as the database's owner or any role that may read `audit_log`).

use anyhow::Context as _;

#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// The case whose trail to show.
    #[arg(long = "case")]
    pub case_id: Option<String>,
    /// Any other audited object: `policy:<county>`, a unit code list, ...
    #[arg(long, conflicts_with = "case_id")]
    pub target: Option<String>,
    #[arg(long, env = "GRIDD_DATABASE_URL")]
    pub database_url: String,
}

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let target = match (&args.case_id, &args.target) {
        (Some(id), _) => id
            .parse::<domain::CaseId>()
            .map_err(|e| anyhow::anyhow!("--case: {e}"))?
            .to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => anyhow::bail!("say --case ID or --target OBJECT"),
    };
    let store = store::Store::connect(&args.database_url, 1)
        .await
        .context("connecting to gridd's database")?;
    let rows = store.audit_trail(&target).await?;
    if rows.is_empty() {
        println!("no audit rows for {target}");
        return Ok(());
    }
    println!("audit trail of {target}: {} rows", rows.len());
    for r in rows {
        println!(
            "  {}  {:<22} {:<11} {:<16} {:<18} {}",
            r.at.format("%Y-%m-%d %H:%M:%S%.3f"),
            r.principal,
            r.role,
            r.unit.as_deref().unwrap_or("-"),
            r.action,
            r.result
        );
    }
    Ok(())
}
