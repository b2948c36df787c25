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

    #[test]
    fn the_sample_grids_tile_their_communities() {
        use crate::area::{GridMap, Located};
        use crate::region::{Level, RegionCode};
        let s = parse(SAMPLE).unwrap();
        let by_code: std::collections::HashMap<&str, &Unit> =
            s.units.iter().map(|u| (u.code.as_str(), u)).collect();
        let grids: Vec<_> = s
            .units
            .iter()
            .filter(|u| u.kind == crate::UnitKind::Grid)
            .map(|u| {
                let b = u
                    .boundary
                    .clone()
                    .expect("every sample grid has a boundary");
                let parent = by_code[u.parent_code.as_ref().unwrap().as_str()];
                assert!(parent.boundary.as_ref().unwrap().covers(&b), "{}", u.code);
                (
                    RegionCode::parse_at(u.code.as_str(), Level::Grid).unwrap(),
                    b,
                )
            })
            .collect();
        assert_eq!(grids.len(), 324);
        for (i, (a, ab)) in grids.iter().enumerate() {
            for (b, bb) in &grids[i + 1..] {
                assert!(!ab.overlaps(bb), "{a} overlaps {b}");
            }
        }
        let map = GridMap::new(grids, 500.0);
        // where the tests report from
        assert_eq!(
            map.locate(crate::geo::LatLon::new(28.6832, 115.8992))
                .unwrap(),
            Located::Inside {
                grid: RegionCode::parse("360102001001001").unwrap()
            }
        );
    }
}
