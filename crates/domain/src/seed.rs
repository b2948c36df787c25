//! The registry seed file (`docs/seed-format.md`): units, categories and county policies.

use serde::Deserialize;

use crate::policy::{Category, Policy};
use crate::unit::Unit;

pub const FORMAT: &str = "griddispatch.registry/v1";

/// The sample county shipped with the project (`deploy/sample/`), built in so that tools and
/// tests can load it from anywhere.
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

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("not a seed file: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported seed format {0:?}: expected {FORMAT}")]
    Format(String),
}

pub fn parse(text: &str) -> Result<Seed, SeedError> {
    let seed: Seed = serde_json::from_str(text)?;
    if seed.format != FORMAT {
        return Err(SeedError::Format(seed.format));
    }
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_county_parses_and_is_consistent() {
        let s = parse(SAMPLE).unwrap();
        let count = |k: crate::UnitKind| s.units.iter().filter(|u| u.kind == k).count();
        assert!(count(crate::UnitKind::Township) >= 5);
        assert!(count(crate::UnitKind::Community) >= 30);
        assert!(count(crate::UnitKind::Grid) >= 200);
        assert!(count(crate::UnitKind::Department) >= 10);
        for u in &s.units {
            u.validate().unwrap_or_else(|e| panic!("{}: {e:?}", u.code));
        }
        for p in &s.policies {
            p.validate().unwrap();
        }
        assert!(s.categories.len() >= 8);
    }
}
