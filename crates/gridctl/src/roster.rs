//! `gridctl roster`: a unit's duty week (365天服務不打烊), from DutyService.WhoIsOnDuty.

use chrono::{Datelike as _, Duration, FixedOffset, NaiveDate, TimeZone as _, Utc};
use clap::Args;
use proto::convert;
use proto::v1;
use server::auth::Role;

use crate::Conn;

#[derive(Args, Debug)]
pub struct RosterArgs {
    /// The unit.
    #[arg(long)]
    unit: String,
    /// The week's first day, YYYY-MM-DD (China time); default: today.
    #[arg(long)]
    from: Option<NaiveDate>,
}

const WEEKDAYS: [&str; 7] = ["一", "二", "三", "四", "五", "六", "日"];

fn person(p: Option<&v1::Person>) -> String {
    p.map_or_else(String::new, |p| format!("{} ({})", p.name, p.id))
}

pub async fn run(conn: &Conn, args: RosterArgs) -> anyhow::Result<()> {
    let china = FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    let from = args
        .from
        .unwrap_or_else(|| Utc::now().with_timezone(&china).date_naive());
    let start = china
        .from_local_datetime(&from.and_hms_opt(0, 0, 0).expect("midnight"))
        .single()
        .expect("China time has no gaps")
        .with_timezone(&Utc);
    let mut duty = v1::duty_service_client::DutyServiceClient::with_interceptor(
        conn.channel.clone(),
        conn.auth_as(Role::Admin, "", "gridctl")?,
    );
    let r = duty
        .who_is_on_duty(v1::WhoIsOnDutyRequest {
            unit_code: args.unit.clone(),
            at: Some(convert::timestamp(start)),
            until: Some(convert::timestamp(start + Duration::days(6))),
        })
        .await?
        .into_inner();
    println!(
        "{} — week from {from}; head: {}",
        args.unit,
        person(r.head.as_ref())
    );
    let mut people: Vec<(String, Vec<String>)> = Vec::new();
    for d in &r.on_duty {
        let (Some(a), Some(b)) = (
            d.from.as_ref().and_then(convert::from_timestamp),
            d.to.as_ref().and_then(convert::from_timestamp),
        ) else {
            continue;
        };
        let (a, b) = (a.with_timezone(&china), b.with_timezone(&china));
        let key = format!(
            "{} 周{}  {}–{}  {}  {}",
            a.format("%m-%d"),
            WEEKDAYS[a.weekday().num_days_from_monday() as usize],
            a.format("%H:%M"),
            b.format("%H:%M"),
            d.shift,
            d.team
        );
        let who = format!(
            "{}{}",
            person(d.person.as_ref()),
            if d.swapped { " (swap)" } else { "" }
        );
        match people.last_mut() {
            Some((k, v)) if *k == key => v.push(who),
            _ => people.push((key, vec![who])),
        }
    }
    for (k, v) in people {
        println!("{k}  {}", v.join(", "));
    }
    Ok(())
}
