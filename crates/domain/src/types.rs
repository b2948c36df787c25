//! The small closed vocabularies of the domain.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable name used in the database, JSON and logs.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName { kind: stringify!($name), name: s.to_owned() }),
                }
            }
        }
    };
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{name}`")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
}

named_enum! {
    /// The administrative tier holding a case; ordered bottom-up.
    Tier { Grid => "GRID", Community => "COMMUNITY", Township => "TOWNSHIP", County => "COUNTY", City => "CITY" }
}

impl Tier {
    /// The tier above, `None` at the top (the city).
    #[must_use]
    pub const fn up(self) -> Option<Tier> {
        match self {
            Tier::Grid => Some(Tier::Community),
            Tier::Community => Some(Tier::Township),
            Tier::Township => Some(Tier::County),
            Tier::County => Some(Tier::City),
            Tier::City => None,
        }
    }
}

named_enum! {
    /// The statutory four levels of emergencies (一般, 較大, 重大, 特別重大).
    Severity { General => "GENERAL", Larger => "LARGER", Major => "MAJOR", EspeciallyMajor => "ESPECIALLY_MAJOR" }
}

named_enum! {
    CaseStatus {
        Reported => "REPORTED",
        PendingAccept => "PENDING_ACCEPT",
        InProgress => "IN_PROGRESS",
        PendingVerification => "PENDING_VERIFICATION",
        Closed => "CLOSED",
        Rejected => "REJECTED",
        Merged => "MERGED",
    }
}

impl CaseStatus {
    /// No further handling happens (a closed case can still be rated).
    #[must_use]
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            CaseStatus::Closed | CaseStatus::Rejected | CaseStatus::Merged
        )
    }
}

named_enum! {
    UnitKind {
        Grid => "GRID",
        Community => "COMMUNITY",
        Township => "TOWNSHIP",
        County => "COUNTY",
        City => "CITY",
        Department => "DEPARTMENT",
    }
}

impl UnitKind {
    /// The region level a unit of this kind has; `None` for departments.
    #[must_use]
    pub const fn level(self) -> Option<crate::region::Level> {
        use crate::region::Level;
        match self {
            UnitKind::Grid => Some(Level::Grid),
            UnitKind::Community => Some(Level::Community),
            UnitKind::Township => Some(Level::Township),
            UnitKind::County => Some(Level::County),
            UnitKind::City => Some(Level::City),
            UnitKind::Department => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Tier::ALL {
            assert_eq!(t.as_str().parse::<Tier>().unwrap(), *t);
        }
        for s in CaseStatus::ALL {
            assert_eq!(s.as_str().parse::<CaseStatus>().unwrap(), *s);
            assert_eq!(
                serde_json::to_string(s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("NOPE".parse::<Severity>().is_err());
    }

    #[test]
    fn tiers_go_up_to_the_city() {
        let chain: Vec<Tier> = std::iter::successors(Some(Tier::Grid), |t| t.up()).collect();
        assert_eq!(chain, Tier::ALL);
        assert!(Tier::Community < Tier::County);
    }
}
