//! Where a point falls: units' boundaries and the index that finds the grid holding a point.
//!
//! A boundary is a GeoJSON `Polygon` or `MultiPolygon` in WGS-84 longitude/latitude, as the
//! registry file and `Unit.boundary` carry it. It is checked when it enters the registry
//! (closed rings, no self-intersection, inside the parent's boundary where the parent has one),
//! so everything downstream may trust it. [`GridMap`] indexes the grids' boundaries in an
//! R*-tree: a point inside (or on the edge of) a grid falls in that grid; a point outside every
//! grid falls to the nearest grid's community when it lies within a configured distance, and
//! is refused otherwise.

use std::fmt;

use ::geo::{
    BoundingRect, Contains, Covers, Distance, Haversine, HaversineClosestPoint, Intersects,
    MultiPolygon, Point, Polygon, Relate as _, Validation,
};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::geo::LatLon;
use crate::region::RegionCode;

/// Most positions one boundary may have: a grid's outline is a few dozen; a county's, traced
/// from a survey, some thousands.
pub const MAX_POSITIONS: usize = 20_000;

/// A unit's outline: one or more polygons, each an outer ring and its holes.
#[derive(Clone, PartialEq)]
pub struct Boundary(MultiPolygon<f64>);

// The coordinates are finite (checked on the way in), so equality is an equivalence.
impl Eq for Boundary {}

impl fmt::Debug for Boundary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let positions: usize = self
            .0
            .iter()
            .map(|p| p.exterior().0.len() + p.interiors().iter().map(|r| r.0.len()).sum::<usize>())
            .sum();
        write!(
            f,
            "Boundary({} polygon(s), {positions} positions)",
            self.0.0.len()
        )
    }
}

impl Boundary {
    /// Parses and checks a GeoJSON geometry. The error says what is wrong, in words a person
    /// fixing the file can act on.
    pub fn from_geojson(v: &serde_json::Value) -> Result<Boundary, String> {
        let g: geojson::Geometry = serde_json::from_value(v.clone())
            .map_err(|e| format!("not a GeoJSON geometry: {e}"))?;
        let rings: Vec<&Vec<geojson::Position>> = match &g.value {
            geojson::GeometryValue::Polygon { coordinates } => coordinates.iter().collect(),
            geojson::GeometryValue::MultiPolygon { coordinates } => {
                coordinates.iter().flatten().collect()
            }
            _ => return Err("must be a GeoJSON Polygon or MultiPolygon".into()),
        };
        if rings.is_empty() {
            return Err("has no rings".into());
        }
        let mut total = 0;
        for (i, ring) in rings.iter().enumerate() {
            total += ring.len();
            if ring.len() < 4 {
                return Err(format!(
                    "ring {i} has {} positions: a ring needs at least 4, the last repeating the first",
                    ring.len()
                ));
            }
            for p in ring.iter() {
                let s = p.as_slice();
                if s.len() < 2 || !s.iter().all(|x| x.is_finite()) {
                    return Err(format!("ring {i} holds a position that is not [lon, lat]"));
                }
                if !(-180.0..=180.0).contains(&s[0]) || !(-90.0..=90.0).contains(&s[1]) {
                    return Err(format!(
                        "ring {i} holds [{}, {}], outside longitude -180..180 / latitude -90..90",
                        s[0], s[1]
                    ));
                }
            }
            if ring.first() != ring.last() {
                return Err(format!(
                    "ring {i} is not closed: its last position must repeat its first"
                ));
            }
        }
        if total > MAX_POSITIONS {
            return Err(format!("at most {MAX_POSITIONS} positions"));
        }
        let mp: MultiPolygon<f64> = match g.value {
            geojson::GeometryValue::Polygon { .. } => {
                MultiPolygon(vec![Polygon::try_from(g).map_err(|e| e.to_string())?])
            }
            _ => MultiPolygon::try_from(g).map_err(|e| e.to_string())?,
        };
        if let Some(problem) = mp.validation_errors().into_iter().next() {
            return Err(format!("not a valid area: {problem}"));
        }
        Ok(Boundary(mp))
    }

    /// Parses the GeoJSON text `Unit.boundary` carries on the wire.
    pub fn from_geojson_text(s: &str) -> Result<Boundary, String> {
        let v: serde_json::Value = serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))?;
        Self::from_geojson(&v)
    }

    /// The boundary as a GeoJSON geometry: a `Polygon` when it is one, else a `MultiPolygon`.
    #[must_use]
    pub fn to_geojson(&self) -> serde_json::Value {
        let g = if self.0.0.len() == 1 {
            geojson::Geometry::from(&self.0.0[0])
        } else {
            geojson::Geometry::from(&self.0)
        };
        serde_json::to_value(g).unwrap_or_default()
    }

    /// True when `inner` lies inside this boundary (touching its edge is inside).
    #[must_use]
    pub fn covers(&self, inner: &Boundary) -> bool {
        self.0.covers(&inner.0)
    }

    /// True when the two areas share more than an edge.
    #[must_use]
    pub fn overlaps(&self, other: &Boundary) -> bool {
        // cheap test first: most pairs handed here are neighbours whose boxes touch
        self.0.intersects(&other.0) && self.0.relate(&other.0).matches("2********").unwrap_or(true)
    }

    #[must_use]
    pub fn contains_point(&self, p: LatLon) -> bool {
        self.0.intersects(&point(p))
    }

    fn envelope(&self) -> Option<AABB<[f64; 2]>> {
        self.0
            .bounding_rect()
            .map(|r| AABB::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]))
    }
}

impl Serialize for Boundary {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_geojson().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Boundary {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Boundary::from_geojson(&v).map_err(serde::de::Error::custom)
    }
}

fn point(p: LatLon) -> Point<f64> {
    Point::new(p.lon, p.lat)
}

/// Where a point fell.
#[derive(Debug, Clone, PartialEq)]
pub enum Located {
    /// Inside the grid, or on its edge.
    Inside { grid: RegionCode },
    /// Outside every grid, `distance_m` from `grid`, the nearest one, of `community`.
    Near {
        grid: RegionCode,
        community: RegionCode,
        distance_m: f64,
    },
}

impl Located {
    /// The grid a case reported at this point belongs to.
    #[must_use]
    pub fn grid(&self) -> &RegionCode {
        match self {
            Located::Inside { grid } | Located::Near { grid, .. } => grid,
        }
    }
}

/// Why a point has no grid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LocateError {
    #[error("no grid has a boundary in the registry")]
    NoBoundaries,
    #[error(
        "the point lies outside every grid and farther than {limit_m:.0} m from any community{}",
        .nearest_m.map(|d| format!(" (the nearest grid is {d:.0} m away)")).unwrap_or_default()
    )]
    TooFar {
        limit_m: f64,
        nearest_m: Option<f64>,
    },
}

type Entry = GeomWithData<Rectangle<[f64; 2]>, usize>;

/// Metres per degree of latitude on the mean sphere (and of longitude at the equator).
const M_PER_DEG: f64 = 111_195.0;

/// The grids' boundaries in an R*-tree of their bounding boxes.
pub struct GridMap {
    tree: RTree<Entry>,
    grids: Vec<(RegionCode, Boundary)>,
    /// A point outside every grid falls to the nearest community within this distance.
    reach_m: f64,
}

impl fmt::Debug for GridMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GridMap({} grids, reach {} m)",
            self.grids.len(),
            self.reach_m
        )
    }
}

impl GridMap {
    /// Builds the index (bulk-loaded: about a second for 100,000 grids on one core).
    #[must_use]
    pub fn new(grids: Vec<(RegionCode, Boundary)>, reach_m: f64) -> GridMap {
        let entries = grids
            .iter()
            .enumerate()
            .filter_map(|(i, (_, b))| {
                b.envelope()
                    .map(|e| GeomWithData::new(Rectangle::from_aabb(e), i))
            })
            .collect();
        GridMap {
            tree: RTree::bulk_load(entries),
            grids,
            reach_m,
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.grids.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.grids.is_empty()
    }

    /// The grid a WGS-84 point falls in. A point on the edge two grids share falls in the one
    /// with the lower code, so the answer never depends on the index's order.
    pub fn locate(&self, p: LatLon) -> Result<Located, LocateError> {
        if self.grids.is_empty() {
            return Err(LocateError::NoBoundaries);
        }
        let q = point(p);
        let mut on_edge: Option<&RegionCode> = None;
        for e in self.tree.locate_all_at_point(&[p.lon, p.lat]) {
            let (code, b) = &self.grids[e.data];
            if b.0.contains(&q) {
                return Ok(Located::Inside { grid: code.clone() });
            }
            if b.0.intersects(&q) && on_edge.is_none_or(|c| code < c) {
                on_edge = Some(code);
            }
        }
        if let Some(grid) = on_edge {
            return Ok(Located::Inside { grid: grid.clone() });
        }
        self.nearest(p)
    }

    /// The nearest grid within reach: boxes come out of the tree nearest first; a box's
    /// distance bounds its grid's from below, so the walk stops once the next box is farther
    /// than the best grid found (or than the reach).
    fn nearest(&self, p: LatLon) -> Result<Located, LocateError> {
        let q = point(p);
        // a degree of longitude is shortest at the highest latitude a nearby box can reach
        let lat_margin = self.reach_m / M_PER_DEG;
        let m_per_deg_min = M_PER_DEG * (p.lat.abs() + lat_margin).min(89.0).to_radians().cos();
        let mut best: Option<(f64, usize)> = None;
        for (e, d2) in self
            .tree
            .nearest_neighbor_iter_with_distance_2(&[p.lon, p.lat])
        {
            let lower_bound_m = d2.sqrt() * m_per_deg_min;
            let bar = best.map_or(self.reach_m, |(d, _)| d.min(self.reach_m));
            if lower_bound_m > bar {
                break;
            }
            let (_, b) = &self.grids[e.data];
            let d = match b.0.haversine_closest_point(&q) {
                ::geo::Closest::Intersection(_) => 0.0,
                ::geo::Closest::SinglePoint(c) => Haversine.distance(q, c),
                ::geo::Closest::Indeterminate => continue,
            };
            if best.is_none_or(|(bd, bi)| {
                d < bd || (d == bd && self.grids[e.data].0 < self.grids[bi].0)
            }) {
                best = Some((d, e.data));
            }
        }
        match best {
            Some((d, i)) if d <= self.reach_m => {
                let grid = self.grids[i].0.clone();
                let community = grid.parent().unwrap_or_else(|| grid.clone());
                Ok(Located::Near {
                    grid,
                    community,
                    distance_m: d,
                })
            }
            other => Err(LocateError::TooFar {
                limit_m: self.reach_m,
                nearest_m: other.map(|(d, _)| d),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A box from its corners, written out so that neighbours share exact coordinates.
    fn rect(w: f64, s: f64, e: f64, n: f64) -> serde_json::Value {
        json!({"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]})
    }

    fn grid(code: &str) -> RegionCode {
        RegionCode::parse_at(code, crate::region::Level::Grid).unwrap()
    }

    #[test]
    fn boundaries_are_checked() {
        assert!(Boundary::from_geojson(&rect(115.90, 28.60, 115.91, 28.61)).is_ok());
        let open = json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]]});
        assert!(
            Boundary::from_geojson(&open)
                .unwrap_err()
                .contains("not closed")
        );
        let bowtie = json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]]});
        assert!(
            Boundary::from_geojson(&bowtie)
                .unwrap_err()
                .contains("not a valid area"),
            "{:?}",
            Boundary::from_geojson(&bowtie)
        );
        let short =
            json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]]});
        assert!(
            Boundary::from_geojson(&short)
                .unwrap_err()
                .contains("at least 4")
        );
        let far = json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [200.0, 0.0], [1.0, 1.0], [0.0, 0.0]]]});
        assert!(
            Boundary::from_geojson(&far)
                .unwrap_err()
                .contains("outside longitude")
        );
        let point = json!({"type": "Point", "coordinates": [0.0, 0.0]});
        assert!(
            Boundary::from_geojson(&point)
                .unwrap_err()
                .contains("Polygon or MultiPolygon")
        );
        assert!(
            Boundary::from_geojson(&json!({"type": "Polygon"}))
                .unwrap_err()
                .contains("GeoJSON")
        );
        let b = Boundary::from_geojson(&rect(115.90, 28.60, 115.91, 28.61)).unwrap();
        assert_eq!(Boundary::from_geojson(&b.to_geojson()).unwrap(), b);
    }

    #[test]
    fn parents_cover_children() {
        let parent = Boundary::from_geojson(&rect(115.90, 28.60, 115.92, 28.62)).unwrap();
        let inside = Boundary::from_geojson(&rect(115.90, 28.60, 115.91, 28.61)).unwrap();
        let across = Boundary::from_geojson(&rect(115.915, 28.60, 115.925, 28.61)).unwrap();
        assert!(parent.covers(&inside));
        assert!(!parent.covers(&across));
        let neighbour = Boundary::from_geojson(&rect(115.91, 28.60, 115.92, 28.61)).unwrap();
        assert!(
            !inside.overlaps(&neighbour),
            "sharing an edge is not overlapping"
        );
        assert!(
            inside.overlaps(
                &Boundary::from_geojson(&rect(115.905, 28.605, 115.915, 28.615)).unwrap()
            )
        );
    }

    fn two_grids() -> GridMap {
        GridMap::new(
            vec![
                (
                    grid("360102001001002"),
                    Boundary::from_geojson(&rect(115.91, 28.60, 115.92, 28.61)).unwrap(),
                ),
                (
                    grid("360102001001001"),
                    Boundary::from_geojson(&rect(115.90, 28.60, 115.91, 28.61)).unwrap(),
                ),
            ],
            500.0,
        )
    }

    #[test]
    fn points_fall_inside_on_edges_and_near() {
        let m = two_grids();
        assert_eq!(
            m.locate(LatLon::new(28.605, 115.915)).unwrap(),
            Located::Inside {
                grid: grid("360102001001002")
            }
        );
        // the shared edge goes to the lower code, whichever grid the tree offers first
        assert_eq!(
            m.locate(LatLon::new(28.605, 115.91)).unwrap(),
            Located::Inside {
                grid: grid("360102001001001")
            }
        );
        // a corner of one grid only
        assert_eq!(
            m.locate(LatLon::new(28.61, 115.92)).unwrap(),
            Located::Inside {
                grid: grid("360102001001002")
            }
        );
        // 0.002° of latitude north of the grids: about 222 m
        match m.locate(LatLon::new(28.612, 115.915)).unwrap() {
            Located::Near {
                grid: g,
                community,
                distance_m,
            } => {
                assert_eq!(g, grid("360102001001002"));
                assert_eq!(community.as_str(), "360102001001");
                assert!((distance_m - 222.4).abs() < 2.0, "{distance_m}");
            }
            other => panic!("{other:?}"),
        }
        // 0.01° north: about 1.1 km, beyond the 500 m reach
        let err = m.locate(LatLon::new(28.62, 115.915)).unwrap_err();
        assert!(
            matches!(
                err,
                LocateError::TooFar {
                    nearest_m: None,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("farther than 500 m"));
        assert_eq!(
            GridMap::new(Vec::new(), 500.0)
                .locate(LatLon::new(0.0, 0.0))
                .unwrap_err(),
            LocateError::NoBoundaries
        );
    }
}
