//! The day's plan, made from the seed before the day starts: when each report comes (a
//! diurnal curve), from which grid, of which category, from whom; and the seeded chances each
//! unit's decisions are drawn from. Pure: the same seed plans the same day.

use chrono::{DateTime, Duration, Utc};

use anyhow::Context as _;

/// A number in [0, 1) from the seed and what it decides: the same inputs, the same number.
pub(super) fn chance(seed: u64, what: &str) -> f64 {
    // SplitMix64 over FNV-1a of the key: small, fast, and well spread
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in what.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// One of `items` by their weights.
pub(super) fn pick<T>(items: &[(T, f64)], r: f64) -> &T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut at = r * total;
    for (item, w) in items {
        if at < *w {
            return item;
        }
        at -= w;
    }
    &items[items.len() - 1].0
}

/// Reports per hour of the day from 06:00 (relative weights): a morning peak when grid
/// workers patrol, a lull at noon, an afternoon peak, a quiet evening.
const DIURNAL: [f64; 16] = [
    1.0, 3.0, 7.0, 10.0, 10.0, 8.0, 4.0, 4.0, 8.0, 9.0, 8.0, 6.0, 4.0, 3.0, 2.0, 1.5,
];

/// What residents and grid workers report most, by category (the rest share what is left).
const COMMON: &[(&str, f64)] = &[
    ("0501", 14.0),
    ("0604", 9.0),
    ("0603", 8.0),
    ("0502", 6.0),
    ("0303", 6.0),
    ("0101", 5.0),
    ("0103", 5.0),
    ("0504", 4.0),
    ("0602", 4.0),
    ("0401", 3.0),
    ("0201", 3.0),
    ("0202", 2.0),
    ("0601", 2.0),
    ("0204", 2.0),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    GridWorker,
    Resident,
    Hotline,
}

/// One report of the plan.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    pub(super) n: usize,
    pub(super) at: DateTime<Utc>,
    pub(super) grid: String,
    pub(super) point: (f64, f64),
    pub(super) category: String,
    pub(super) title: String,
    pub(super) source: Source,
    pub(super) self_handled: bool,
    /// The earlier report of the plan this one sees again, if any.
    pub(super) repeats: Option<usize>,
}

/// The sample county as the plan needs it.
pub(super) struct County {
    pub(super) grids: Vec<(String, (f64, f64))>,
    pub(super) categories: Vec<(String, String)>,
}

pub(super) fn county() -> anyhow::Result<County> {
    let seed: serde_json::Value = serde_json::from_str(domain::seed::SAMPLE)?;
    let mut grids = Vec::new();
    for u in seed["units"].as_array().context("units")? {
        if u["kind"] != "GRID" {
            continue;
        }
        let code = u["code"].as_str().context("code")?.to_owned();
        // a point inside the grid: the mean of its outline's corners
        let ring = u["boundary"]["coordinates"][0]
            .as_array()
            .context("a grid without an outline")?;
        let corners = &ring[..ring.len().saturating_sub(1)];
        let (mut lat, mut lon) = (0.0, 0.0);
        for c in corners {
            lon += c[0].as_f64().unwrap_or_default();
            lat += c[1].as_f64().unwrap_or_default();
        }
        let k = corners.len().max(1) as f64;
        grids.push((code, (lat / k, lon / k)));
    }
    let categories = seed["categories"]
        .as_array()
        .context("categories")?
        .iter()
        .filter_map(|c| {
            let code = c["code"].as_str().filter(|code| code.len() == 4)?;
            Some((code.to_owned(), c["name"].as_str()?.to_owned()))
        })
        .collect();
    Ok(County { grids, categories })
}

/// The day's reports, from the seed.
pub(super) fn plan(
    seed: u64,
    volume: u32,
    hours: u32,
    start: DateTime<Utc>,
    c: &County,
) -> Vec<Planned> {
    let hours = (hours as usize).min(DIURNAL.len());
    let weights: Vec<(usize, f64)> = DIURNAL[..hours].iter().copied().enumerate().collect();
    let common: f64 = COMMON.iter().map(|(_, w)| w).sum();
    let rest = c.categories.len().saturating_sub(COMMON.len()).max(1) as f64;
    let cats: Vec<(&(String, String), f64)> = c
        .categories
        .iter()
        .map(|cat| {
            let w = COMMON
                .iter()
                .find(|(code, _)| *code == cat.0)
                .map_or(common * 0.15 / rest, |(_, w)| *w);
            (cat, w)
        })
        .collect();
    let mut out: Vec<Planned> = (0..volume as usize)
        .map(|n| {
            let r = |what: &str| chance(seed, &format!("{n}:{what}"));
            let hour = *pick(&weights, r("hour"));
            let at = start
                + Duration::hours(hour as i64)
                + Duration::seconds((r("second") * 3600.0) as i64);
            let (grid, centre) = c.grids[(r("grid") * c.grids.len() as f64) as usize].clone();
            // somewhere within about 40 m of the grid's centre
            let point = near(centre, (r("north") - 0.5) * 80.0, (r("east") - 0.5) * 80.0);
            let (category, name) = (*pick(&cats, r("category"))).clone();
            let source = *pick(
                &[
                    (Source::GridWorker, 0.72),
                    (Source::Resident, 0.16),
                    (Source::Hotline, 0.12),
                ],
                r("source"),
            );
            Planned {
                n,
                at,
                grid,
                point,
                title: name,
                category,
                source,
                self_handled: source == Source::GridWorker && r("self") < 0.22,
                repeats: None,
            }
        })
        .collect();
    // the same matter seen again: about one report in sixteen is someone else reporting what an
    // earlier report saw, a few metres away, a while later (ADR 0044 links it as a repeat)
    let end = start + Duration::hours(hours as i64);
    for n in 1..out.len() {
        let r = |what: &str| chance(seed, &format!("{n}:{what}"));
        if r("again") >= REPEATS {
            continue;
        }
        let earlier = out[(r("of") * n as f64) as usize].clone();
        let at = earlier.at + Duration::minutes(10 + (r("later") * 110.0) as i64);
        if at >= end {
            continue;
        }
        let p = &mut out[n];
        p.at = at;
        p.grid = earlier.grid;
        p.point = near(
            earlier.point,
            (r("dn") - 0.5) * 20.0,
            (r("de") - 0.5) * 20.0,
        );
        p.category = earlier.category;
        p.title = earlier.title;
        p.self_handled = false;
        p.repeats = Some(earlier.n);
    }
    out.sort_by_key(|p| (p.at, p.n));
    out
}

/// The share of reports that see again what an earlier one saw.
const REPEATS: f64 = 1.0 / 16.0;

/// A point `north` and `east` metres from `p` (latitude, longitude).
fn near(p: (f64, f64), north: f64, east: f64) -> (f64, f64) {
    const M_PER_DEG: f64 = 111_320.0;
    (
        p.0 + north / M_PER_DEG,
        p.1 + east / (M_PER_DEG * p.0.to_radians().cos()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_plans_the_same_day_and_another_seed_another() {
        let c = county().unwrap();
        let start = DateTime::parse_from_rfc3339("2026-12-03T06:00:00+08:00")
            .unwrap()
            .with_timezone(&Utc);
        let key = |p: &Planned| {
            (
                p.at,
                p.grid.clone(),
                p.category.clone(),
                p.source,
                p.self_handled,
            )
        };
        let a: Vec<_> = plan(7, 300, 16, start, &c).iter().map(key).collect();
        let b: Vec<_> = plan(7, 300, 16, start, &c).iter().map(key).collect();
        let other: Vec<_> = plan(8, 300, 16, start, &c).iter().map(key).collect();
        assert_eq!(a.len(), 300);
        assert_eq!(a, b);
        assert_ne!(a, other);
        // inside the day, in order, from every source, the morning busier than the evening
        let end = start + Duration::hours(16);
        assert!(a.iter().all(|k| k.0 >= start && k.0 < end));
        assert!(a.windows(2).all(|w| w[0].0 <= w[1].0));
        for s in [Source::GridWorker, Source::Resident, Source::Hotline] {
            assert!(a.iter().any(|k| k.3 == s), "{s:?}");
        }
        let hour = |h: i64| {
            a.iter()
                .filter(|k| {
                    k.0 >= start + Duration::hours(h) && k.0 < start + Duration::hours(h + 1)
                })
                .count()
        };
        assert!(
            hour(3) > hour(15),
            "09:00 {} vs 21:00 {}",
            hour(3),
            hour(15)
        );
        // some reports see again what an earlier one saw: its grid and matter, within 15 m
        let day = plan(7, 300, 16, start, &c);
        let again: Vec<&Planned> = day.iter().filter(|p| p.repeats.is_some()).collect();
        assert!((8..40).contains(&again.len()), "{} repeats", again.len());
        for p in again {
            let first = day.iter().find(|e| Some(e.n) == p.repeats).unwrap();
            assert_eq!((&p.grid, &p.category), (&first.grid, &first.category));
            assert!(p.at > first.at);
            let d = domain::geo::distance_m(
                domain::geo::LatLon::new(p.point.0, p.point.1),
                domain::geo::LatLon::new(first.point.0, first.point.1),
            );
            assert!(d < 15.0, "{d} m");
        }
        // a unit's decision is drawn the same way each time
        assert_eq!(
            chance(7, "360102-20261203-000001:check"),
            chance(7, "360102-20261203-000001:check")
        );
    }
}
