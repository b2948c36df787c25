//! The registry seed file (`docs/seed-format.md`): units, categories and county policies.

use anyhow::{Context as _, bail};
use domain::policy::{Category, Policy};
use domain::unit::Unit;
use serde::Deserialize;

pub const FORMAT: &str = "griddispatch.registry/v1";

/// The sample county shipped with the project, built into the binary so that `gridctl seed`
/// works from anywhere.
pub const SAMPLE: &str = include_str!("../../../deploy/sample/county-360102.json");

#[derive(Debug, Deserialize)]
pub struct Seed {
    pub format: String,
    pub units: Vec<Unit>,
    #[serde(default)]
    pub categories: Vec<Category>,
    #[serde(default)]
    pub policies: Vec<Policy>,
}

pub fn parse(text: &str) -> anyhow::Result<Seed> {
    let seed: Seed = serde_json::from_str(text).context("reading the seed file")?;
    if seed.format != FORMAT {
        bail!("unsupported seed format {:?}: expected {FORMAT}", seed.format);
    }
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_county_parses_and_is_consistent() {
        let s = parse(SAMPLE).unwrap();
        let count = |k: domain::UnitKind| s.units.iter().filter(|u| u.kind == k).count();
        assert!(count(domain::UnitKind::Township) >= 5);
        assert!(count(domain::UnitKind::Community) >= 30);
        assert!(count(domain::UnitKind::Grid) >= 200);
        assert!(count(domain::UnitKind::Department) >= 10);
        for u in &s.units {
            u.validate().unwrap_or_else(|e| panic!("{}: {e:?}", u.code));
        }
        for p in &s.policies {
            p.validate().unwrap();
        }
        assert!(s.categories.len() >= 8);
    }
}
