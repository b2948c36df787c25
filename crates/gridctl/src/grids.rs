//! `gridctl grids`: where a point falls (LocatePoint), and the benchmark of the index behind it.

use std::time::Instant;

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use domain::area::{Boundary, GridMap, Located};
use domain::geo::LatLon;
use domain::region::{Level, RegionCode};
use proto::v1;

#[derive(Debug, Subcommand)]
pub enum GridsCommand {
    /// Which grid a point falls in (LocatePoint), or why none takes it.
    Locate {
        #[arg(allow_negative_numbers = true)]
        lat: f64,
        #[arg(allow_negative_numbers = true)]
        lon: f64,
        /// The system the coordinates are in.
        #[arg(long, value_enum, default_value_t = CrsArg::Wgs84)]
        crs: CrsArg,
    },
    /// Time point location over a synthetic province of grid polygons, in this process
    /// (no server): the index build and each lookup's latency.
    Bench(BenchArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CrsArg {
    Wgs84,
    Gcj02,
    Bd09,
    Cgcs2000,
}

impl From<CrsArg> for v1::Crs {
    fn from(c: CrsArg) -> v1::Crs {
        match c {
            CrsArg::Wgs84 => v1::Crs::Wgs84,
            CrsArg::Gcj02 => v1::Crs::Gcj02,
            CrsArg::Bd09 => v1::Crs::Bd09,
            CrsArg::Cgcs2000 => v1::Crs::Cgcs2000,
        }
    }
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Grid polygons in the index.
    #[arg(long, default_value_t = 100_000)]
    pub grids: usize,
    /// Points located (a quarter of them outside every grid, near or far).
    #[arg(long, default_value_t = 200_000)]
    pub points: usize,
}

pub fn print_located(r: &v1::LocatePointResponse) {
    if r.inside {
        println!("{}\tcommunity {}\tinside", r.grid_code, r.community_code);
    } else {
        println!(
            "{}\tcommunity {}\toutside every grid, {:.0} m from this one",
            r.grid_code, r.community_code, r.distance_m
        );
    }
}

/// A small deterministic generator, so that every run times the same points.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` grids of about 300 m, in a square lattice of communities of 6 grids, with slanted
/// dividers (shared exactly by neighbours) and an empty street of 0.0003° between communities.
fn province(n: usize, rng: &mut SplitMix) -> (Vec<(RegionCode, Boundary)>, [f64; 4]) {
    const CELL: f64 = 0.003;
    const STREET: f64 = 0.0003;
    let communities = n.div_ceil(6);
    let cols = (communities as f64).sqrt().ceil() as usize;
    let (lon0, lat0) = (114.0, 26.0);
    let mut grids = Vec::with_capacity(n);
    'all: for c in 0..communities {
        let (cx, cy) = (c % cols, c / cols);
        let w = lon0 + cx as f64 * (3.0 * CELL + STREET);
        let s = lat0 + cy as f64 * (2.0 * CELL + STREET);
        // 3 columns by 2 rows; the two inner dividers of each row lean a little
        for row in 0..2 {
            let y0 = s + row as f64 * CELL;
            let y1 = y0 + CELL;
            let mut bottom = [w, w + CELL, w + 2.0 * CELL, w + 3.0 * CELL];
            let mut top = bottom;
            for i in 1..3 {
                bottom[i] += (rng.unit() - 0.5) * 0.4 * CELL;
                top[i] += (rng.unit() - 0.5) * 0.4 * CELL;
            }
            for i in 0..3 {
                if grids.len() == n {
                    break 'all;
                }
                // township 001, community number c + 1 (codes need not be dense)
                let code = format!(
                    "{:06}{:03}{:03}{:03}",
                    360_102 + c / 999_000,
                    1 + (c / 999) % 999,
                    1 + c % 999,
                    1 + row * 3 + i
                );
                let ring = serde_json::json!({"type": "Polygon", "coordinates": [[
                    [bottom[i], y0], [bottom[i + 1], y0], [top[i + 1], y1], [top[i], y1],
                    [bottom[i], y0]
                ]]});
                let b = Boundary::from_geojson(&ring).expect("a synthetic grid is valid");
                grids.push((RegionCode::parse_at(&code, Level::Grid).expect("code"), b));
            }
        }
    }
    let rows = communities.div_ceil(cols);
    let extent = [
        lon0,
        lat0,
        lon0 + cols as f64 * (3.0 * CELL + STREET),
        lat0 + rows as f64 * (2.0 * CELL + STREET),
    ];
    (grids, extent)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

pub fn bench(a: &BenchArgs) -> anyhow::Result<()> {
    if a.grids == 0 || a.points == 0 {
        bail!("--grids and --points must be at least 1");
    }
    let mut rng = SplitMix(0x6772_6964);
    let t = Instant::now();
    let (grids, [w, s, e, n]) = province(a.grids, &mut rng);
    let made = t.elapsed();
    let t = Instant::now();
    let map = GridMap::new(grids, 500.0);
    let built = t.elapsed();
    // three quarters inside the province's extent (in grids or in the streets between
    // communities), the rest up to 0.05° (about 5 km) beyond it
    let points: Vec<LatLon> = (0..a.points)
        .map(|i| {
            if i % 4 == 3 {
                LatLon::new(s - 0.05 * rng.unit(), w + (e - w) * rng.unit())
            } else {
                LatLon::new(s + (n - s) * rng.unit(), w + (e - w) * rng.unit())
            }
        })
        .collect();
    let mut ns = Vec::with_capacity(points.len());
    let (mut inside, mut near, mut far) = (0usize, 0usize, 0usize);
    let all = Instant::now();
    for p in &points {
        let t = Instant::now();
        let r = map.locate(*p);
        ns.push(t.elapsed().as_nanos() as u64);
        match r {
            Ok(Located::Inside { .. }) => inside += 1,
            Ok(Located::Near { .. }) => near += 1,
            Err(_) => far += 1,
        }
    }
    let total = all.elapsed();
    ns.sort_unstable();
    println!(
        "point location: {} grids (made in {:.1} s, index built in {:.2} s), {} points on one core",
        map.len(),
        made.as_secs_f64(),
        built.as_secs_f64(),
        points.len()
    );
    println!(
        "  inside a grid {inside}, near one (within 500 m) {near}, refused {far}; {:.0} lookups/s",
        points.len() as f64 / total.as_secs_f64()
    );
    println!(
        "  latency µs: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        percentile(&ns, 0.50),
        percentile(&ns, 0.90),
        percentile(&ns, 0.99),
        percentile(&ns, 0.999),
        percentile(&ns, 1.0)
    );
    Ok(())
}
