//! Region, grid and unit codes: the routing tree.
//!
//! County and above are GB/T 2260 codes (province 2 digits, city 4, county 6); the statistics
//! bureau extends them with township (9) and community/village (12) codes; a grid is its
//! community code plus a 3-digit grid number (15). So "up one tier" is dropping the last
//! segment, and "inside my area" is a prefix test. Departments are not places: they are written
//! `<county>-<SUFFIX>` and belong to their county.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Tier;

/// The levels of the administrative tree, by code length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    Province,
    City,
    County,
    Township,
    Community,
    Grid,
}

impl Level {
    pub const ALL: [Level; 6] = [
        Level::Province,
        Level::City,
        Level::County,
        Level::Township,
        Level::Community,
        Level::Grid,
    ];

    /// Number of digits of a code at this level.
    #[must_use]
    pub const fn digits(self) -> usize {
        match self {
            Level::Province => 2,
            Level::City => 4,
            Level::County => 6,
            Level::Township => 9,
            Level::Community => 12,
            Level::Grid => 15,
        }
    }

    fn from_digits(n: usize) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.digits() == n)
    }

    /// The case tier a unit at this level works at (the province has none: it does not
    /// handle cases in this pipeline, it receives the export feed).
    #[must_use]
    pub const fn tier(self) -> Option<Tier> {
        match self {
            Level::Province => None,
            Level::City => Some(Tier::City),
            Level::County => Some(Tier::County),
            Level::Township => Some(Tier::Township),
            Level::Community => Some(Tier::Community),
            Level::Grid => Some(Tier::Grid),
        }
    }

    #[must_use]
    pub const fn of_tier(tier: Tier) -> Level {
        match tier {
            Tier::Grid => Level::Grid,
            Tier::Community => Level::Community,
            Tier::Township => Level::Township,
            Tier::County => Level::County,
            Tier::City => Level::City,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("must not be empty")]
    Empty,
    #[error("a region code has 2, 4, 6, 9, 12 or 15 digits, got {0}")]
    Length(usize),
    #[error("a region code has only digits 0-9")]
    NotDigits,
    #[error("a department code is `<6-digit county>-<2 to 10 letters or digits>`")]
    Department,
    #[error("expected a {expected:?} code, got a {got:?} code")]
    WrongLevel { expected: Level, got: Level },
}

/// A validated region code (province down to grid).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionCode(String);

impl RegionCode {
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        if s.is_empty() {
            return Err(CodeError::Empty);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CodeError::NotDigits);
        }
        Level::from_digits(s.len()).ok_or(CodeError::Length(s.len()))?;
        Ok(Self(s.to_owned()))
    }

    /// Parses a code that must be at `level` (e.g. a grid code in a report).
    pub fn parse_at(s: &str, level: Level) -> Result<Self, CodeError> {
        let code = Self::parse(s)?;
        if code.level() == level {
            Ok(code)
        } else {
            Err(CodeError::WrongLevel {
                expected: level,
                got: code.level(),
            })
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    #[must_use]
    pub fn level(&self) -> Level {
        Level::from_digits(self.0.len()).expect("validated on construction")
    }

    /// One level up; `None` for a province.
    #[must_use]
    pub fn parent(&self) -> Option<RegionCode> {
        let i = Level::ALL.iter().position(|l| *l == self.level())?;
        let up = Level::ALL.get(i.checked_sub(1)?)?;
        Some(Self(self.0[..up.digits()].to_owned()))
    }

    /// The code of the enclosing region at `level`, if this code is at or below it.
    #[must_use]
    pub fn ancestor_at(&self, level: Level) -> Option<RegionCode> {
        (level <= self.level()).then(|| Self(self.0[..level.digits()].to_owned()))
    }

    /// The county this code lies in, if it is at county level or below.
    #[must_use]
    pub fn county(&self) -> Option<RegionCode> {
        self.ancestor_at(Level::County)
    }

    /// True when `self` lies inside (or is) the region `scope`.
    #[must_use]
    pub fn is_within(&self, scope: &RegionCode) -> bool {
        self.0.starts_with(&scope.0)
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RegionCode {
    type Error = CodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<RegionCode> for String {
    fn from(c: RegionCode) -> String {
        c.0
    }
}

/// Any unit that can hold or act on a case: a region unit (grid, community, township, county,
/// city) or a county department.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UnitCode(String);

impl UnitCode {
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        if s.is_empty() {
            return Err(CodeError::Empty);
        }
        if let Some((county, suffix)) = s.split_once('-') {
            let ok_county = RegionCode::parse_at(county, Level::County).is_ok();
            let ok_suffix = (2..=10).contains(&suffix.len())
                && suffix
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            return if ok_county && ok_suffix {
                Ok(Self(s.to_owned()))
            } else {
                Err(CodeError::Department)
            };
        }
        RegionCode::parse(s).map(|r| Self(r.0))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    #[must_use]
    pub fn is_department(&self) -> bool {
        self.0.contains('-')
    }

    /// The region this unit works in: itself for a region unit, its county for a department.
    #[must_use]
    pub fn region(&self) -> RegionCode {
        RegionCode(self.0.split('-').next().unwrap_or_default().to_owned())
    }

    /// The tier the unit works at: departments work at their county's tier.
    #[must_use]
    pub fn tier(&self) -> Option<Tier> {
        self.region().level().tier()
    }

    /// The county the unit belongs to, if any.
    #[must_use]
    pub fn county(&self) -> Option<RegionCode> {
        self.region().county()
    }

    /// The unit one tier up: a region's parent; a department's county.
    #[must_use]
    pub fn parent(&self) -> Option<UnitCode> {
        if self.is_department() {
            Some(Self(self.region().0))
        } else {
            self.region().parent().map(|r| Self(r.0))
        }
    }

    /// True when this unit lies inside the area `scope` (a department inside its county).
    #[must_use]
    pub fn is_within(&self, scope: &RegionCode) -> bool {
        self.region().is_within(scope)
    }
}

impl From<RegionCode> for UnitCode {
    fn from(r: RegionCode) -> Self {
        Self(r.0)
    }
}

impl fmt::Display for UnitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for UnitCode {
    type Error = CodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<UnitCode> for String {
    fn from(c: UnitCode) -> String {
        c.0
    }
}

/// Which unit takes a case at `tier` in the area of `from` (a grid, or the region of the unit
/// handing the case up): the unit of that tier above `from`, or, when the registry holds no
/// unit there, the nearest one above it. `None` when no unit up to the top exists. The router
/// (first tier), escalation and `ResolveRoute` all decide with this one function.
pub fn unit_taking(
    from: &RegionCode,
    tier: Tier,
    exists: impl Fn(&RegionCode) -> bool,
) -> Option<(UnitCode, Tier)> {
    std::iter::successors(Some(from.clone()), RegionCode::parent).find_map(|r| {
        let t = r.level().tier()?;
        (t >= tier && exists(&r)).then(|| (UnitCode::from(r), t))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_by_length() {
        for (code, level) in [
            ("36", Level::Province),
            ("3601", Level::City),
            ("360102", Level::County),
            ("360102001", Level::Township),
            ("360102001002", Level::Community),
            ("360102001002003", Level::Grid),
        ] {
            assert_eq!(RegionCode::parse(code).unwrap().level(), level, "{code}");
        }
    }

    #[test]
    fn rejects_bad_codes() {
        assert_eq!(RegionCode::parse(""), Err(CodeError::Empty));
        assert_eq!(RegionCode::parse("3601a2"), Err(CodeError::NotDigits));
        assert_eq!(RegionCode::parse("36010"), Err(CodeError::Length(5)));
        assert_eq!(
            RegionCode::parse("3601020010020031"),
            Err(CodeError::Length(16))
        );
        assert!(matches!(
            RegionCode::parse_at("360102001", Level::Grid),
            Err(CodeError::WrongLevel { .. })
        ));
        for bad in [
            "360102-",
            "360102-c",
            "36010-CGJ",
            "360102-TOOLONGSUFFIX",
            "360102-cg",
        ] {
            assert_eq!(UnitCode::parse(bad), Err(CodeError::Department), "{bad}");
        }
    }

    #[test]
    fn walks_up_the_tree() {
        let grid = RegionCode::parse("360102001002003").unwrap();
        let chain: Vec<String> = std::iter::successors(Some(grid.clone()), RegionCode::parent)
            .map(String::from)
            .collect();
        assert_eq!(
            chain,
            [
                "360102001002003",
                "360102001002",
                "360102001",
                "360102",
                "3601",
                "36"
            ]
        );
        assert_eq!(grid.county().unwrap().as_str(), "360102");
        assert_eq!(
            grid.ancestor_at(Level::Township).unwrap().as_str(),
            "360102001"
        );
        assert!(grid.is_within(&RegionCode::parse("3601").unwrap()));
        assert!(!grid.is_within(&RegionCode::parse("360103").unwrap()));
        assert_eq!(RegionCode::parse("3601").unwrap().county(), None);
    }

    #[test]
    fn departments_belong_to_their_county() {
        let d = UnitCode::parse("360102-CGJ").unwrap();
        assert!(d.is_department());
        assert_eq!(d.tier(), Some(Tier::County));
        assert_eq!(d.parent().unwrap().as_str(), "360102");
        assert!(d.is_within(&RegionCode::parse("3601").unwrap()));
        let c = UnitCode::parse("360102001002").unwrap();
        assert_eq!(c.tier(), Some(Tier::Community));
        assert_eq!(c.parent().unwrap().as_str(), "360102001");
        assert_eq!(UnitCode::parse("36").unwrap().tier(), None);
    }

    #[test]
    fn serde_validates() {
        let ok: UnitCode = serde_json::from_str("\"360102-ZJJ\"").unwrap();
        assert_eq!(ok.as_str(), "360102-ZJJ");
        assert!(serde_json::from_str::<RegionCode>("\"12345\"").is_err());
    }

    #[test]
    fn a_case_goes_to_the_tier_asked_or_the_nearest_unit_above_it() {
        let grid = RegionCode::parse("360102001001001").unwrap();
        let all = |_: &RegionCode| true;
        let unit = |s: &str| UnitCode::parse(s).unwrap();
        assert_eq!(
            unit_taking(&grid, Tier::Community, all),
            Some((unit("360102001001"), Tier::Community))
        );
        assert_eq!(
            unit_taking(&grid, Tier::County, all),
            Some((unit("360102"), Tier::County))
        );
        // the community is not in the registry: its township takes the case
        let no_community = |r: &RegionCode| r.as_str() != "360102001001";
        assert_eq!(
            unit_taking(&grid, Tier::Community, no_community),
            Some((unit("360102001"), Tier::Township))
        );
        // escalation from a community: the tier above it
        assert_eq!(
            unit_taking(
                &unit("360102001001").region(),
                Tier::Community.up().unwrap(),
                all
            ),
            Some((unit("360102001"), Tier::Township))
        );
        assert_eq!(unit_taking(&grid, Tier::Community, |_| false), None);
    }
}
