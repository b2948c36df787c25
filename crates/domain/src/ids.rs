//! Identifiers that cross crate boundaries.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A case's identity: a UUIDv7, so that new cases sort by the time they were made.
///
/// It is the same value on the wire (`case_id` strings), in Postgres (`uuid`) and in queue
/// messages (a transparent serde string); the newtype keeps it from being mixed with the
/// other UUIDs in play (idempotency keys, assignment ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CaseId(Uuid);

impl CaseId {
    /// A fresh id, ordered by creation time.
    #[must_use]
    pub fn new() -> CaseId {
        CaseId(Uuid::now_v7())
    }

    /// The zero id, for tests and placeholders that are never written.
    #[must_use]
    pub const fn nil() -> CaseId {
        CaseId(Uuid::nil())
    }

    #[must_use]
    pub const fn from_uuid(id: Uuid) -> CaseId {
        CaseId(id)
    }

    /// The UUID to bind in SQL.
    #[must_use]
    pub const fn uuid(self) -> Uuid {
        self.0
    }

    /// A slice of ids as the UUIDs to bind as one `uuid[]` parameter.
    #[must_use]
    pub fn uuids(ids: &[CaseId]) -> Vec<Uuid> {
        ids.iter().map(|c| c.0).collect()
    }
}

impl Default for CaseId {
    fn default() -> Self {
        CaseId::new()
    }
}

impl From<Uuid> for CaseId {
    fn from(id: Uuid) -> Self {
        CaseId(id)
    }
}

impl From<CaseId> for Uuid {
    fn from(id: CaseId) -> Self {
        id.0
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for CaseId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(CaseId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_its_uuid_in_text_and_json() {
        let id = CaseId::new();
        assert_eq!(id.to_string().parse::<CaseId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", id.uuid()));
        assert_eq!(serde_json::from_str::<CaseId>(&json).unwrap(), id);
        assert!("not-a-uuid".parse::<CaseId>().is_err());
    }

    #[test]
    fn new_ids_sort_by_creation() {
        let a = CaseId::new();
        let b = CaseId::new();
        assert!(a < b);
    }
}
