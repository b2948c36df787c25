//! The registry (units), the category catalogue and county policies.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use domain::UnitKind;
use domain::area::Boundary;
use domain::policy::{Category, CategoryCode, Policy};
use domain::region::{Level, RegionCode, UnitCode};
use domain::unit::Unit;

use crate::cases::Actor;
use crate::rows::corrupt;
use crate::{Result, Store, StoreError};

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Filters of [`Store::list_units`].
#[derive(Debug, Default, Clone)]
pub struct UnitFilter {
    pub parent: Option<UnitCode>,
    pub kind: Option<UnitKind>,
    /// Only codes that start with this region code: its subtree and its departments.
    pub region: Option<String>,
    /// Codes strictly after this one (keyset paging).
    pub after: Option<String>,
    pub limit: u32,
}

type UnitRow = (
    String,
    String,
    String,
    Option<String>,
    Option<serde_json::Value>,
);

fn unit_from_row((code, name, kind, parent, boundary): UnitRow) -> Result<Unit> {
    Ok(Unit {
        code: UnitCode::parse(&code).map_err(|e| corrupt("units.code", e))?,
        name,
        kind: kind.parse().map_err(|e| corrupt("units.kind", e))?,
        parent_code: parent
            .map(|p| UnitCode::parse(&p))
            .transpose()
            .map_err(|e| corrupt("units.parent_code", e))?,
        boundary: boundary
            .map(|b| Boundary::from_geojson(&b))
            .transpose()
            .map_err(|e| corrupt("units.boundary", e))?,
    })
}

/// The grids' boundaries, for the index that finds the grid holding a point.
#[derive(Debug, Default)]
pub struct GridBoundaries {
    /// Changes whenever any unit's boundary is set, changed or removed.
    pub rev: i64,
    pub grids: Vec<(RegionCode, Boundary)>,
}

impl Store {
    /// Inserts or updates units by code in one transaction; answers how many changed.
    /// Every parent must already exist or come earlier in `units`.
    pub async fn upsert_units(&self, units: &[Unit], actor: &Actor) -> Result<u64> {
        let mut seen = HashSet::new();
        for (i, u) in units.iter().enumerate() {
            if let Err((field, reason)) = u.validate() {
                return Err(invalid(format!("units[{i}].{field}"), reason));
            }
            if let Some(p) = &u.parent_code
                && !seen.contains(p.as_str())
            {
                let exists: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM units WHERE code = $1)")
                        .bind(p.as_str())
                        .fetch_one(&self.pool)
                        .await?;
                if !exists {
                    return Err(invalid(
                        format!("units[{i}].parent_code"),
                        format!("unknown unit {p}: parents must exist or come first"),
                    ));
                }
            }
            if !seen.insert(u.code.as_str()) {
                return Err(invalid(format!("units[{i}].code"), "listed twice"));
            }
        }
        let codes: Vec<&str> = units.iter().map(|u| u.code.as_str()).collect();
        let names: Vec<&str> = units.iter().map(|u| u.name.trim()).collect();
        let kinds: Vec<&str> = units.iter().map(|u| u.kind.as_str()).collect();
        let parents: Vec<Option<&str>> = units
            .iter()
            .map(|u| u.parent_code.as_ref().map(UnitCode::as_str))
            .collect();
        let boundaries: Vec<Option<serde_json::Value>> = units
            .iter()
            .map(|u| u.boundary.as_ref().map(Boundary::to_geojson))
            .collect();
        // One statement: foreign keys are checked at its end, so children may follow parents
        // within the batch. Unchanged rows are not rewritten, so loading twice changes nothing.
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "INSERT INTO units (code, name, kind, parent_code, boundary, boundary_rev)
             SELECT c, n, k, p, b, CASE WHEN b IS NULL THEN NULL ELSE nextval('unit_boundary_rev') END
               FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[]) AS u (c, n, k, p, b)
             ON CONFLICT (code) DO UPDATE
                SET name = EXCLUDED.name, kind = EXCLUDED.kind,
                    parent_code = EXCLUDED.parent_code, boundary = EXCLUDED.boundary,
                    boundary_rev = CASE WHEN units.boundary IS DISTINCT FROM EXCLUDED.boundary
                                        THEN nextval('unit_boundary_rev')
                                        ELSE units.boundary_rev END,
                    updated_at = now()
              WHERE (units.name, units.kind, units.parent_code, units.boundary)
                    IS DISTINCT FROM
                    (EXCLUDED.name, EXCLUDED.kind, EXCLUDED.parent_code, EXCLUDED.boundary)",
        )
        .bind(&codes)
        .bind(&names)
        .bind(&kinds)
        .bind(&parents)
        .bind(&boundaries)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        audit(&mut tx, actor, "upsert_units", &codes.join(",")).await?;
        tx.commit().await?;
        Ok(changed)
    }

    pub async fn list_units(&self, f: &UnitFilter) -> Result<Vec<Unit>> {
        let rows: Vec<UnitRow> = sqlx::query_as(
            "SELECT code, name, kind, parent_code, boundary FROM units
              WHERE ($1::text IS NULL OR parent_code = $1)
                AND ($2::text IS NULL OR kind = $2)
                AND ($3::text IS NULL OR code > $3)
                AND ($5::text IS NULL OR starts_with(code, $5))
              ORDER BY code LIMIT $4",
        )
        .bind(f.parent.as_ref().map(UnitCode::as_str))
        .bind(f.kind.map(UnitKind::as_str))
        .bind(f.after.as_deref())
        .bind(i64::from(f.limit))
        .bind(f.region.as_deref())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(unit_from_row).collect()
    }

    pub async fn get_unit(&self, code: &str) -> Result<Option<Unit>> {
        let row: Option<UnitRow> = sqlx::query_as(
            "SELECT code, name, kind, parent_code, boundary FROM units WHERE code = $1",
        )
        .bind(code)
        .fetch_optional(&self.pool)
        .await?;
        row.map(unit_from_row).transpose()
    }

    /// The boundaries of the named units that have one (a batch's parents, to check that
    /// children lie inside them).
    pub async fn unit_boundaries(&self, codes: &[&str]) -> Result<Vec<(String, Boundary)>> {
        let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(
            "SELECT code, boundary FROM units WHERE code = ANY($1) AND boundary IS NOT NULL",
        )
        .bind(codes)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(c, b)| {
                Boundary::from_geojson(&b)
                    .map(|b| (c, b))
                    .map_err(|e| corrupt("units.boundary", e))
            })
            .collect()
    }

    /// The revision of the registry's boundaries: one indexed maximum, read before deciding
    /// whether [`Store::grid_boundaries`] must be read again.
    pub async fn boundary_rev(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT coalesce(max(boundary_rev), 0) FROM units")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Every grid's boundary, with the revision it was read at.
    pub async fn grid_boundaries(&self) -> Result<GridBoundaries> {
        let mut tx = self.pool.begin().await?;
        // one snapshot: the revision and the rows agree
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let rev: i64 = sqlx::query_scalar("SELECT coalesce(max(boundary_rev), 0) FROM units")
            .fetch_one(&mut *tx)
            .await?;
        let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(
            "SELECT code, boundary FROM units WHERE kind = 'GRID' AND boundary IS NOT NULL",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let grids = rows
            .into_iter()
            .map(|(c, b)| {
                let code =
                    RegionCode::parse_at(&c, Level::Grid).map_err(|e| corrupt("units.code", e))?;
                let b = Boundary::from_geojson(&b).map_err(|e| corrupt("units.boundary", e))?;
                Ok((code, b))
            })
            .collect::<Result<_>>()?;
        Ok(GridBoundaries { rev, grids })
    }

    /// Inserts or updates categories by code; parents must exist or come earlier.
    pub async fn upsert_categories(&self, cats: &[Category], actor: &Actor) -> Result<u64> {
        let mut seen = HashSet::new();
        for (i, c) in cats.iter().enumerate() {
            if c.parent_code != c.code.parent() {
                return Err(invalid(
                    format!("categories[{i}].parent_code"),
                    "must be the code's first two digits for a sub-category, empty otherwise",
                ));
            }
            if c.name.trim().is_empty() {
                return Err(invalid(format!("categories[{i}].name"), "required"));
            }
            for (f, l) in [
                ("accept_limit", c.accept_limit),
                ("handle_limit", c.handle_limit),
            ] {
                l.validate()
                    .map_err(|e| invalid(format!("categories[{i}].{f}"), e.to_string()))?;
            }
            if let Some(p) = &c.parent_code
                && !seen.contains(p.as_str())
                && self.get_category(p).await?.is_none()
            {
                return Err(invalid(
                    format!("categories[{i}].parent_code"),
                    format!("unknown category {p}"),
                ));
            }
            if !seen.insert(c.code.as_str()) {
                return Err(invalid(format!("categories[{i}].code"), "listed twice"));
            }
        }
        let codes: Vec<&str> = cats.iter().map(|c| c.code.as_str()).collect();
        let parents: Vec<Option<&str>> = cats
            .iter()
            .map(|c| c.parent_code.as_ref().map(CategoryCode::as_str))
            .collect();
        let names: Vec<&str> = cats.iter().map(|c| c.name.trim()).collect();
        let bodies: Vec<serde_json::Value> = cats
            .iter()
            .map(|c| serde_json::to_value(c).expect("a category serialises"))
            .collect();
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "INSERT INTO categories (code, parent_code, name, body)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::jsonb[])
             ON CONFLICT (code) DO UPDATE
                SET parent_code = EXCLUDED.parent_code, name = EXCLUDED.name,
                    body = EXCLUDED.body, updated_at = now()
              WHERE (categories.parent_code, categories.name, categories.body)
                    IS DISTINCT FROM (EXCLUDED.parent_code, EXCLUDED.name, EXCLUDED.body)",
        )
        .bind(&codes)
        .bind(&parents)
        .bind(&names)
        .bind(&bodies)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        audit(&mut tx, actor, "upsert_categories", &codes.join(",")).await?;
        tx.commit().await?;
        Ok(changed)
    }

    pub async fn list_categories(&self) -> Result<Vec<Category>> {
        let rows: Vec<(serde_json::Value,)> =
            sqlx::query_as("SELECT body FROM categories ORDER BY code")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(b,)| serde_json::from_value(b).map_err(|e| corrupt("categories.body", e)))
            .collect()
    }

    pub async fn get_category(&self, code: &CategoryCode) -> Result<Option<Category>> {
        let row: Option<(serde_json::Value,)> =
            sqlx::query_as("SELECT body FROM categories WHERE code = $1")
                .bind(code.as_str())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(b,)| serde_json::from_value(b).map_err(|e| corrupt("categories.body", e)))
            .transpose()
    }

    /// Replaces a county's policy after checking it and every unit and category it names.
    /// Putting the same policy again changes nothing (the version stays).
    pub async fn put_policy(&self, policy: &Policy, actor: &Actor) -> Result<(u64, DateTime<Utc>)> {
        policy
            .validate()
            .map_err(|e| invalid(format!("policy.{}", e.field), e.reason))?;
        let county = self.get_unit(policy.county_code.as_str()).await?;
        if county.is_none_or(|u| u.kind != UnitKind::County) {
            return Err(invalid(
                "policy.county_code",
                "not a county in the registry",
            ));
        }
        for (i, d) in policy.departments.iter().enumerate() {
            for (j, unit) in std::iter::once(&d.lead).chain(&d.assisting).enumerate() {
                if self.get_unit(unit.as_str()).await?.is_none() {
                    let f = if j == 0 {
                        format!("policy.departments[{i}].lead")
                    } else {
                        format!("policy.departments[{i}].assisting[{}]", j - 1)
                    };
                    return Err(invalid(f, format!("unknown unit {unit}")));
                }
            }
        }
        let cats: Vec<&CategoryCode> = policy
            .departments
            .iter()
            .map(|d| &d.category)
            .chain(policy.category_tiers.keys())
            .chain(policy.sla.iter().filter_map(|r| r.category.as_ref()))
            .collect();
        for c in cats {
            if self.get_category(c).await?.is_none() {
                return Err(invalid("policy", format!("unknown category {c}")));
            }
        }
        let body = serde_json::to_value(policy).expect("a policy serialises");
        let mut tx = self.pool.begin().await?;
        let (version, at) = put_versioned(
            &mut tx,
            "policies",
            "county_code",
            policy.county_code.as_str(),
            &body,
        )
        .await?;
        audit(
            &mut tx,
            actor,
            "put_policy",
            &format!("policy:{}", policy.county_code),
        )
        .await?;
        tx.commit().await?;
        Ok((u64::try_from(version).unwrap_or_default(), at))
    }

    pub async fn get_policy(
        &self,
        county: &RegionCode,
    ) -> Result<Option<(Policy, u64, DateTime<Utc>)>> {
        let row: Option<(serde_json::Value, i64, DateTime<Utc>)> =
            sqlx::query_as("SELECT body, version, updated_at FROM policies WHERE county_code = $1")
                .bind(county.as_str())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(b, v, at)| {
            let p = serde_json::from_value(b).map_err(|e| corrupt("policies.body", e))?;
            Ok((p, u64::try_from(v).unwrap_or_default(), at))
        })
        .transpose()
    }
}

/// Stores `body` under `key` in a versioned table (`policies`, `rosters`): the next version
/// when the body changed, nothing when it did not. Answers the version and time it holds.
pub(crate) async fn put_versioned(
    tx: &mut sqlx::PgConnection,
    table: &str,
    key_column: &str,
    key: &str,
    body: &serde_json::Value,
) -> Result<(i64, DateTime<Utc>)> {
    let row: Option<(i64, DateTime<Utc>)> = sqlx::query_as(&format!(
        "INSERT INTO {table} ({key_column}, version, body) VALUES ($1, 1, $2)
         ON CONFLICT ({key_column}) DO UPDATE
            SET version = {table}.version + 1, body = EXCLUDED.body, updated_at = now()
          WHERE {table}.body IS DISTINCT FROM EXCLUDED.body
         RETURNING version, updated_at"
    ))
    .bind(key)
    .bind(body)
    .fetch_optional(&mut *tx)
    .await?;
    match row {
        Some(r) => Ok(r),
        None => Ok(sqlx::query_as(&format!(
            "SELECT version, updated_at FROM {table} WHERE {key_column} = $1"
        ))
        .bind(key)
        .fetch_one(&mut *tx)
        .await?),
    }
}

/// One audit row for a registry or policy change, in the change's transaction.
pub(crate) async fn audit(
    tx: &mut sqlx::PgConnection,
    actor: &Actor,
    action: &str,
    target: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (principal, role, unit, action, target, result)
         VALUES ($1, $2, $3, $4, $5, 'ok')",
    )
    .bind(&actor.subject)
    .bind(&actor.role)
    .bind(actor.unit.as_deref())
    .bind(action)
    .bind(target)
    .execute(tx)
    .await?;
    Ok(())
}
