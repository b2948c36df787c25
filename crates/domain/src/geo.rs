//! Coordinate reference systems used by case reports, and conversion to WGS-84.
//!
//! Reports reach us from several sources: phone GPS and Tianditu (WGS-84 / CGCS2000), AMap and
//! Tencent maps (GCJ-02, the state-mandated obfuscated "Mars coordinates") and Baidu maps (BD-09,
//! a further offset on top of GCJ-02). Grid assignment and distance checks need a single system,
//! so everything is normalised to WGS-84 with [`to_wgs84`].
//!
//! The GCJ-02 and BD-09 formulas are the widely published ones (the `coordtransform` family of
//! libraries); they reproduce what the map vendors' own SDKs produce to well under a metre, which
//! is far finer than a grid cell.

use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// A coordinate reference system a location may be expressed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Crs {
    /// GPS / international maps.
    Wgs84,
    /// National mapping standard (AMap, Tencent): WGS-84 plus a non-linear offset.
    Gcj02,
    /// Baidu maps: GCJ-02 plus Baidu's own offset.
    Bd09,
    /// China Geodetic Coordinate System 2000 (Tianditu, official surveys).
    Cgcs2000,
}

/// A point in decimal degrees (latitude north, longitude east).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

impl LatLon {
    pub const fn new(lat: f64, lon: f64) -> Self {
        Self { lat, lon }
    }
}

/// Semi-major axis of the Krasovsky 1940 ellipsoid, which the GCJ-02 formula is defined on.
const KRASOVSKY_A: f64 = 6_378_245.0;
/// First eccentricity squared of the Krasovsky 1940 ellipsoid.
const KRASOVSKY_EE: f64 = 0.006_693_421_622_965_943;
/// Baidu's angular scaling constant; written this way so results match the published formula
/// bit for bit.
const X_PI: f64 = PI * 3000.0 / 180.0;
/// Mean Earth radius (IUGG), adequate for haversine distances at city scale.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Convergence threshold for the iterative GCJ-02 inverse, in degrees (about 0.01 mm), well
/// below the centimetre the callers care about.
const INVERSE_TOLERANCE_DEG: f64 = 1e-10;
/// The inverse converges in three or four steps; the cap only guards against pathological
/// input such as a point straddling the bounding box edge.
const INVERSE_MAX_ITERATIONS: usize = 30;

/// The rough bounding box the GCJ-02 offset is applied within. It is deliberately the same
/// crude rectangle the vendor SDKs use, so that points near borders agree with them even where
/// the rectangle is geographically wrong (it covers Korea, for instance).
fn out_of_china(p: LatLon) -> bool {
    !(p.lon > 73.66 && p.lon < 135.05 && p.lat > 3.86 && p.lat < 53.55)
}

fn transform_lat(x: f64, y: f64) -> f64 {
    let mut ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    ret += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    ret += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    ret += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    ret
}

fn transform_lon(x: f64, y: f64) -> f64 {
    let mut ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    ret += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    ret += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    ret += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    ret
}

/// WGS-84 to GCJ-02. Points outside mainland China's bounding box are returned unchanged,
/// matching the vendor SDKs.
pub fn wgs84_to_gcj02(p: LatLon) -> LatLon {
    if out_of_china(p) {
        return p;
    }
    let dlat = transform_lat(p.lon - 105.0, p.lat - 35.0);
    let dlon = transform_lon(p.lon - 105.0, p.lat - 35.0);
    let rad_lat = p.lat / 180.0 * PI;
    let sin_lat = rad_lat.sin();
    let magic = 1.0 - KRASOVSKY_EE * sin_lat * sin_lat;
    let sqrt_magic = magic.sqrt();
    let dlat = (dlat * 180.0) / ((KRASOVSKY_A * (1.0 - KRASOVSKY_EE)) / (magic * sqrt_magic) * PI);
    let dlon = (dlon * 180.0) / (KRASOVSKY_A / sqrt_magic * rad_lat.cos() * PI);
    LatLon {
        lat: p.lat + dlat,
        lon: p.lon + dlon,
    }
}

/// GCJ-02 to WGS-84.
///
/// The forward offset has no closed-form inverse. The common one-step approximation is off by
/// up to a few metres, enough to put a report in the neighbouring grid cell near a boundary, so
/// this refines by fixed-point iteration until the forward transform reproduces the input.
pub fn gcj02_to_wgs84(p: LatLon) -> LatLon {
    if out_of_china(p) {
        return p;
    }
    let mut w = p;
    for _ in 0..INVERSE_MAX_ITERATIONS {
        let g = wgs84_to_gcj02(w);
        let dlat = p.lat - g.lat;
        let dlon = p.lon - g.lon;
        w.lat += dlat;
        w.lon += dlon;
        if dlat.abs() < INVERSE_TOLERANCE_DEG && dlon.abs() < INVERSE_TOLERANCE_DEG {
            break;
        }
    }
    w
}

/// GCJ-02 to BD-09 (Baidu's published forward formula).
pub fn gcj02_to_bd09(p: LatLon) -> LatLon {
    let (x, y) = (p.lon, p.lat);
    let z = (x * x + y * y).sqrt() + 0.00002 * (y * X_PI).sin();
    let theta = y.atan2(x) + 0.000003 * (x * X_PI).cos();
    LatLon {
        lat: z * theta.sin() + 0.006,
        lon: z * theta.cos() + 0.0065,
    }
}

/// BD-09 to GCJ-02.
///
/// This is the standard approximate inverse that Baidu's own services and every other system
/// use; a BD-09 round trip is off by at most about 0.2 m, which is kept rather than iterated
/// away so that our GCJ-02 values agree with theirs.
pub fn bd09_to_gcj02(p: LatLon) -> LatLon {
    let x = p.lon - 0.0065;
    let y = p.lat - 0.006;
    let z = (x * x + y * y).sqrt() - 0.00002 * (y * X_PI).sin();
    let theta = y.atan2(x) - 0.000003 * (x * X_PI).cos();
    LatLon {
        lat: z * theta.sin(),
        lon: z * theta.cos(),
    }
}

/// Converts a point in `crs` to WGS-84.
///
/// CGCS2000 and WGS-84 differ by centimetres to decimetres, far below what consumer
/// positioning or grid assignment can resolve, so CGCS2000 is taken as is.
pub fn to_wgs84(crs: Crs, p: LatLon) -> LatLon {
    let q = match crs {
        Crs::Wgs84 | Crs::Cgcs2000 => return p,
        Crs::Gcj02 => gcj02_to_wgs84(p),
        Crs::Bd09 => gcj02_to_wgs84(bd09_to_gcj02(p)),
    };
    // the offsets can carry a point on the edge of the range just past it: keep the result a
    // valid WGS-84 position (latitude clamped at the poles, longitude wrapped at ±180°)
    let lon = if q.lon > 180.0 {
        q.lon - 360.0
    } else if q.lon < -180.0 {
        q.lon + 360.0
    } else {
        q.lon
    };
    LatLon::new(q.lat.clamp(-90.0, 90.0), lon)
}

/// Great-circle distance in metres (haversine on a spherical Earth; error below 0.5 %).
pub fn distance_m(a: LatLon, b: LatLon) -> f64 {
    let phi1 = a.lat.to_radians();
    let phi2 = b.lat.to_radians();
    let dphi = (b.lat - a.lat).to_radians();
    let dlambda = (b.lon - a.lon).to_radians();
    let h = (dphi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (dlambda / 2.0).sin().powi(2);
    // Rounding can push `h` a hair above 1 for antipodal points, where asin would yield NaN.
    2.0 * EARTH_RADIUS_M * h.clamp(0.0, 1.0).sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values are the outputs of the published `coordtransform` algorithm (the
    /// Tiananmen pair is the example in its README).
    const DEG_EPS: f64 = 1e-9;

    fn assert_close(actual: LatLon, expected: LatLon, eps: f64) {
        assert!(
            (actual.lat - expected.lat).abs() < eps && (actual.lon - expected.lon).abs() < eps,
            "expected {expected:?}, got {actual:?}"
        );
    }

    const TIANANMEN: LatLon = LatLon::new(39.915, 116.404);
    const BAYI_SQUARE: LatLon = LatLon::new(28.6764, 115.8921);
    const SHANGHAI: LatLon = LatLon::new(31.2304, 121.4737);

    #[test]
    fn wgs84_to_gcj02_matches_reference_points() {
        assert_close(
            wgs84_to_gcj02(TIANANMEN),
            LatLon::new(39.916_404_281_501_64, 116.410_244_499_169_38),
            DEG_EPS,
        );
        assert_close(
            wgs84_to_gcj02(BAYI_SQUARE),
            LatLon::new(28.673_031_266_787_703, 115.896_945_597_790_59),
            DEG_EPS,
        );
        assert_close(
            wgs84_to_gcj02(SHANGHAI),
            LatLon::new(31.228_457_737_577_27, 121.478_223_059_276_93),
            DEG_EPS,
        );
    }

    #[test]
    fn gcj02_bd09_match_reference_points() {
        assert_close(
            gcj02_to_bd09(TIANANMEN),
            LatLon::new(39.921_336_993_510_21, 116.410_369_493_710_29),
            DEG_EPS,
        );
        assert_close(
            bd09_to_gcj02(TIANANMEN),
            LatLon::new(39.908_656_739_576_31, 116.397_627_291_193_15),
            DEG_EPS,
        );
        // Full WGS-84 -> GCJ-02 -> BD-09 chains.
        assert_close(
            gcj02_to_bd09(wgs84_to_gcj02(BAYI_SQUARE)),
            LatLon::new(28.679_153_228_925_927, 115.903_408_072_204_34),
            DEG_EPS,
        );
        assert_close(
            gcj02_to_bd09(wgs84_to_gcj02(SHANGHAI)),
            LatLon::new(31.234_310_593_689_997, 121.484_781_468_503),
            DEG_EPS,
        );
    }

    #[test]
    fn gcj02_to_wgs84_is_exact_inverse_and_close_to_one_step_approximation() {
        let w = gcj02_to_wgs84(TIANANMEN);
        assert_close(wgs84_to_gcj02(w), TIANANMEN, 1e-9);
        assert_close(
            w,
            LatLon::new(39.913_596_235_609_404, 116.397_755_754_574_85),
            1e-9,
        );
        // The README's one-step result; the iterated answer differs by a few centimetres here.
        let one_step = LatLon::new(39.913_595_718_498_36, 116.397_755_500_830_61);
        let d = distance_m(w, one_step);
        assert!(d > 0.01 && d < 1.0, "{d}");
    }

    #[test]
    fn round_trip_across_china_within_5_cm() {
        let mut lat = 18.0;
        while lat < 53.5 {
            let mut lon = 74.0;
            while lon < 135.0 {
                let p = LatLon::new(lat, lon);
                let back = gcj02_to_wgs84(wgs84_to_gcj02(p));
                let d = distance_m(p, back);
                assert!(d < 0.05, "{p:?} came back {d} m away");
                lon += 0.73;
            }
            lat += 0.61;
        }
    }

    #[test]
    fn gcj_offset_in_china_is_hundreds_of_metres() {
        for p in [TIANANMEN, BAYI_SQUARE, SHANGHAI] {
            let d = distance_m(p, wgs84_to_gcj02(p));
            assert!((100.0..1000.0).contains(&d), "{p:?}: {d} m");
        }
        let d = distance_m(TIANANMEN, wgs84_to_gcj02(TIANANMEN));
        assert!((d - 555.0).abs() < 1.0, "{d}");
    }

    #[test]
    fn points_outside_china_are_unchanged() {
        let tokyo = LatLon::new(35.6812, 139.7671);
        let london = LatLon::new(51.5007, -0.1246);
        let sydney = LatLon::new(-33.8568, 151.2153);
        for p in [tokyo, london, sydney] {
            assert_eq!(wgs84_to_gcj02(p), p);
            assert_eq!(gcj02_to_wgs84(p), p);
            assert_eq!(to_wgs84(Crs::Gcj02, p), p);
        }
    }

    #[test]
    fn bd09_round_trip_within_half_a_metre() {
        for p in [TIANANMEN, BAYI_SQUARE, SHANGHAI] {
            let back = bd09_to_gcj02(gcj02_to_bd09(p));
            let d = distance_m(p, back);
            assert!(d < 0.5, "{p:?}: {d} m");
        }
    }

    #[test]
    fn to_wgs84_handles_every_crs() {
        for p in [TIANANMEN, BAYI_SQUARE, SHANGHAI] {
            assert_eq!(to_wgs84(Crs::Wgs84, p), p);
            assert_eq!(to_wgs84(Crs::Cgcs2000, p), p);
            let gcj = wgs84_to_gcj02(p);
            assert!(distance_m(to_wgs84(Crs::Gcj02, gcj), p) < 0.05);
            let bd = gcj02_to_bd09(gcj);
            assert!(distance_m(to_wgs84(Crs::Bd09, bd), p) < 0.5);
        }
    }

    #[test]
    fn converted_points_stay_in_range() {
        for (lat, lon) in [(0.0, -180.0), (-90.0, 0.0), (90.0, 180.0), (0.0, 180.0)] {
            for crs in [Crs::Gcj02, Crs::Bd09] {
                let q = to_wgs84(crs, LatLon::new(lat, lon));
                assert!(
                    (-90.0..=90.0).contains(&q.lat) && (-180.0..=180.0).contains(&q.lon),
                    "{q:?}"
                );
            }
        }
    }

    #[test]
    fn haversine_distances() {
        assert_eq!(distance_m(TIANANMEN, TIANANMEN), 0.0);
        // One degree along a meridian is R·π/180.
        let d = distance_m(LatLon::new(30.0, 115.0), LatLon::new(31.0, 115.0));
        assert!((d - 111_195.08).abs() < 0.1, "{d}");
        let ab = distance_m(TIANANMEN, SHANGHAI);
        assert!((ab - distance_m(SHANGHAI, TIANANMEN)).abs() < 1e-6);
        assert!((1_060_000.0..1_075_000.0).contains(&ab), "{ab}");
        let antipode = distance_m(LatLon::new(0.0, 0.0), LatLon::new(0.0, 180.0));
        assert!((antipode - PI * EARTH_RADIUS_M).abs() < 1e-3);
    }

    #[test]
    fn serde_names() {
        assert_eq!(serde_json::to_string(&Crs::Wgs84).unwrap(), "\"WGS84\"");
        assert_eq!(serde_json::to_string(&Crs::Gcj02).unwrap(), "\"GCJ02\"");
        assert_eq!(serde_json::to_string(&Crs::Bd09).unwrap(), "\"BD09\"");
        assert_eq!(
            serde_json::to_string(&Crs::Cgcs2000).unwrap(),
            "\"CGCS2000\""
        );
        let p: LatLon = serde_json::from_str(r#"{"lat":28.6764,"lon":115.8921}"#).unwrap();
        assert_eq!(p, BAYI_SQUARE);
    }
}
