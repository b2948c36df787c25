//! A region as SQL conditions: the one place that turns "inside this region" into predicates
//! the county-keyed indexes can serve.

use domain::region::{Level, RegionCode};
use sqlx::{Postgres, QueryBuilder};

/// The bytewise upper bound of the codes that start with `prefix` (codes are ASCII).
fn prefix_upper(prefix: &str) -> String {
    let mut b = prefix.as_bytes().to_vec();
    if let Some(last) = b.last_mut() {
        *last += 1;
    }
    String::from_utf8(b).unwrap_or_default()
}

/// Appends ` AND <conditions>` keeping the rows of `county_col` / `grid_col` inside
/// `region`. County level and below compare the county exactly, so the county-keyed indexes
/// serve them; below a county the grid code's range narrows further. Prefix ranges use the
/// bytewise operators (`~>=~`, `~<~`, those of `text_pattern_ops`), whatever the database's
/// collation.
pub(crate) fn push_region(
    q: &mut QueryBuilder<'_, Postgres>,
    region: &RegionCode,
    county_col: &str,
    grid_col: &str,
) {
    let code = region.as_str();
    match region.county() {
        None => {
            q.push(format!(" AND {county_col} ~>=~ "))
                .push_bind(code.to_owned())
                .push(format!(" AND {county_col} ~<~ "))
                .push_bind(prefix_upper(code));
        }
        Some(county) => {
            q.push(format!(" AND {county_col} = "))
                .push_bind(county.to_string());
            if region.level() != Level::County {
                q.push(format!(" AND {grid_col} ~>=~ "))
                    .push_bind(code.to_owned())
                    .push(format!(" AND {grid_col} ~<~ "))
                    .push_bind(prefix_upper(code));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_end_just_past_their_last_digit() {
        assert_eq!(prefix_upper("3601"), "3602");
        assert_eq!(prefix_upper("369"), "36:");
        assert!("369999" < prefix_upper("369").as_str());
    }
}
