//! Reading the audit trail. Rows are written by the case writer and the registry, in the
//! transaction of the change they record; gridd's role may only append to them.

use chrono::{DateTime, Utc};

use crate::{Result, Store};

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub principal: String,
    pub role: String,
    pub unit: Option<String>,
    pub action: String,
    pub target: String,
    pub result: String,
}

impl Store {
    /// Every audit row about `target` (a case id, `policy:<county>`, ...), oldest first.
    pub async fn audit_trail(&self, target: &str) -> Result<Vec<AuditEntry>> {
        Ok(sqlx::query_as(
            "SELECT at, principal, role, unit, action, target, result FROM audit_log
              WHERE target = $1 ORDER BY id",
        )
        .bind(target)
        .fetch_all(&self.pool)
        .await?)
    }
}
