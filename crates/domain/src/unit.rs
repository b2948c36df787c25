//! Registry entries: the units that hold and handle cases.

use serde::{Deserialize, Serialize};

use crate::UnitKind;
use crate::area::Boundary;
use crate::region::UnitCode;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub code: UnitCode,
    pub name: String,
    pub kind: UnitKind,
    pub parent_code: Option<UnitCode>,
    /// The area a region unit covers (checked as it is parsed); grids need one for reports
    /// located by a point alone. Departments have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary: Option<Boundary>,
}

pub const NAME_MAX: usize = 100;

impl Unit {
    /// Checks that kind, code and parent agree: a grid's parent is its community (the code
    /// minus its last segment), a department's parent is its county, and so on.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > NAME_MAX {
            return Err(("name", format!("1 to {NAME_MAX} characters")));
        }
        match (self.kind, self.kind.level()) {
            (UnitKind::Department, _) if self.boundary.is_some() => {
                return Err(("boundary", "a department has no area of its own".into()));
            }
            (UnitKind::Department, _) => {
                if !self.code.is_department() {
                    return Err(("code", "a department code is `<county>-<SUFFIX>`".into()));
                }
            }
            (_, Some(level)) => {
                if self.code.is_department() || self.code.region().level() != level {
                    return Err((
                        "code",
                        format!("a {} code has {} digits", self.kind, level.digits()),
                    ));
                }
            }
            (_, None) => unreachable!("only departments have no level"),
        }
        let expected_parent = self.code.parent();
        match (&self.parent_code, &expected_parent) {
            (Some(p), Some(e)) if p == e => Ok(()),
            // the top of a registry (a city or county loaded without its parents)
            (None, _) if self.kind != UnitKind::Department && self.kind != UnitKind::Grid => Ok(()),
            _ => Err((
                "parent_code",
                format!(
                    "must be {}",
                    expected_parent.map_or_else(|| "empty".to_owned(), |p| p.to_string())
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(code: &str, kind: UnitKind, parent: Option<&str>) -> Unit {
        Unit {
            code: UnitCode::parse(code).unwrap(),
            name: "名".into(),
            kind,
            parent_code: parent.map(|p| UnitCode::parse(p).unwrap()),
            boundary: None,
        }
    }

    #[test]
    fn kinds_codes_and_parents_agree() {
        assert!(
            unit("360102001001001", UnitKind::Grid, Some("360102001001"))
                .validate()
                .is_ok()
        );
        assert!(
            unit("360102-CGJ", UnitKind::Department, Some("360102"))
                .validate()
                .is_ok()
        );
        assert!(unit("3601", UnitKind::City, None).validate().is_ok());
        assert_eq!(
            unit("360102001001001", UnitKind::Community, Some("360102001001"))
                .validate()
                .unwrap_err()
                .0,
            "code"
        );
        assert_eq!(
            unit("360102001001001", UnitKind::Grid, Some("360102001"))
                .validate()
                .unwrap_err()
                .0,
            "parent_code"
        );
        assert_eq!(
            unit("360102001001001", UnitKind::Grid, None)
                .validate()
                .unwrap_err()
                .0,
            "parent_code"
        );
        assert_eq!(
            unit("360102-CGJ", UnitKind::Department, Some("3601"))
                .validate()
                .unwrap_err()
                .0,
            "parent_code"
        );
        assert_eq!(
            unit("360102", UnitKind::Department, Some("3601"))
                .validate()
                .unwrap_err()
                .0,
            "code"
        );
        let mut u = unit("3601", UnitKind::City, None);
        u.name = " ".into();
        assert_eq!(u.validate().unwrap_err().0, "name");
    }
}
