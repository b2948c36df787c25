//! `gridctl dead-letters`: what the router gave up on, and re-driving it. Reads Redis directly
//! (operators run it next to gridd), with gridd's own key prefix.

use anyhow::Context as _;

#[derive(Debug, Clone, clap::Args)]
pub struct DeadLetterArgs {
    /// The county whose dead letters to show.
    #[arg(long, default_value = "360102")]
    pub county: String,
    /// Put this dead letter back on its stream.
    #[arg(long)]
    pub redrive: Option<String>,
    /// Put every dead letter of the county back.
    #[arg(long)]
    pub redrive_all: bool,
    #[arg(
        long,
        env = "GRIDD_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    #[arg(long, env = "GRIDD_REDIS_PREFIX", default_value = "gd")]
    pub redis_prefix: String,
}

pub async fn run(args: DeadLetterArgs) -> anyhow::Result<()> {
    let county = domain::region::RegionCode::parse_at(&args.county, domain::region::Level::County)
        .map_err(|e| anyhow::anyhow!("--county: {e}"))?;
    let q = queue::Queue::connect(&args.redis_url, &args.redis_prefix)
        .await
        .context("connecting to Redis")?;
    let key = q.key(&queue::Stream::Dead(county));
    if let Some(id) = &args.redrive {
        let done = q.redrive(&key, id).await?;
        println!(
            "{id}: {}",
            if done {
                "re-driven"
            } else {
                "no such dead letter"
            }
        );
        return Ok(());
    }
    let dead = q.list_dead(&key, 1000).await?;
    if args.redrive_all {
        let mut n = 0;
        for d in &dead {
            if q.redrive(&key, &d.id).await? {
                n += 1;
            }
        }
        println!("re-drove {n} dead letters of county {}", args.county);
        return Ok(());
    }
    if dead.is_empty() {
        println!("no dead letters for county {}", args.county);
    }
    for d in &dead {
        println!(
            "{}\tdeliveries={}\tfrom={}\treason={}\t{}",
            d.id, d.deliveries, d.source_key, d.reason, d.payload
        );
    }
    Ok(())
}
