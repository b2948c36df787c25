//! Bearer-JWT authentication and area scoping.
//!
//! Claims: `sub`, `role`, `unit` (the unit code the principal acts for), `exp`. HS256 with a
//! shared secret for development, RS256 public keys in production. A principal sees and acts on
//! cases inside its unit's area only (a department: its county's cases it takes part in).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use domain::region::{RegionCode, UnitCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::Request;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    GridWorker,
    UnitStaff,
    Dispatcher,
    Admin,
    Platform,
    /// A system filing reports on residents' behalf: the 12345 hotline, a residents' app,
    /// the Open311 facade, another department's platform (ADR 0031).
    Intake,
}

impl Role {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::GridWorker => "grid_worker",
            Role::UnitStaff => "unit_staff",
            Role::Dispatcher => "dispatcher",
            Role::Admin => "admin",
            Role::Platform => "platform",
            Role::Intake => "intake",
        }
    }

    /// Whether this role calls reporters back, and so sees their contact in full.
    #[must_use]
    pub const fn sees_contacts(self) -> bool {
        matches!(self, Role::UnitStaff | Role::Dispatcher | Role::Admin)
    }

    pub fn parse(s: &str) -> Option<Role> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    /// Empty for an admin or platform principal of the whole installation.
    #[serde(default)]
    pub unit: String,
    pub exp: u64,
}

/// Who is calling, once the token is checked.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    pub role: Role,
    /// `None`: no area limit (installation-wide admin or platform).
    pub unit: Option<UnitCode>,
}

impl Principal {
    #[must_use]
    pub fn dev() -> Principal {
        Principal {
            subject: "dev".into(),
            role: Role::Admin,
            unit: None,
        }
    }

    /// The key of this principal's limits: role, unit and subject.
    #[must_use]
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}",
            self.role.as_str(),
            self.unit.as_ref().map_or("", UnitCode::as_str),
            self.subject
        )
    }

    #[must_use]
    pub fn actor(&self) -> store::Actor {
        store::Actor {
            subject: self.subject.clone(),
            role: self.role.as_str().into(),
            unit: self.unit.as_ref().map(ToString::to_string),
        }
    }

    /// The area this principal may see: its unit's region, `None` for everywhere.
    #[must_use]
    pub fn area(&self) -> Option<RegionCode> {
        self.unit.as_ref().map(UnitCode::region)
    }

    /// Whether `code` (a region, grid or unit) lies inside this principal's area.
    #[must_use]
    pub fn covers(&self, code: &UnitCode) -> bool {
        match &self.unit {
            None => true,
            // a department has no area of its own: it sees what it is assigned
            Some(u) if u.is_department() => code == u,
            Some(u) => code.is_within(&u.region()),
        }
    }

    /// Whether this principal may see `case`: it lies in the principal's area, or (for a
    /// department) the department takes part in it.
    #[must_use]
    pub fn can_see(&self, case: &domain::record::CaseRecord) -> bool {
        match &self.unit {
            None => true,
            Some(u) if u.is_department() => {
                let s = &case.state;
                s.holder.as_ref() == Some(u)
                    || s.lead.as_ref() == Some(u)
                    || s.dispatcher.as_ref() == Some(u)
                    || s.parts.iter().any(|p| &p.unit == u)
            }
            Some(u) => case.grid.is_within(&u.region()),
        }
    }

    /// The region a console request names must lie inside the caller's area: a request for
    /// more than that is refused outright, never answered with a silently smaller result.
    /// A department has no area of its own: it may name its county, and then sees only the
    /// cases it takes part in ([`Principal::department`]).
    pub fn require_region(&self, region: &RegionCode) -> Result<(), ApiError> {
        let ok = match &self.unit {
            None => true,
            Some(u) if u.is_department() => u.county().is_some_and(|c| region.is_within(&c)),
            Some(u) => region.is_within(&u.region()),
        };
        if ok {
            Ok(())
        } else {
            Err(ApiError::PermissionDenied(format!(
                "region {region} is outside the caller's area"
            )))
        }
    }

    /// The department this principal acts for, if it is one: its views are limited to the
    /// cases it takes part in.
    #[must_use]
    pub fn department(&self) -> Option<&UnitCode> {
        self.unit.as_ref().filter(|u| u.is_department())
    }

    /// The caller may act as `unit`: it is the principal's own unit, or (for dispatchers and
    /// admins) a unit inside its area.
    pub fn require_acts_for(&self, unit: &UnitCode) -> Result<(), ApiError> {
        let ok = match (&self.unit, self.role) {
            (None, Role::Admin) => true,
            (Some(u), _) if u == unit => true,
            (Some(u), Role::Admin | Role::Dispatcher) => {
                !u.is_department() && unit.is_within(&u.region())
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(ApiError::PermissionDenied(format!(
                "not allowed to act for unit {unit}"
            )))
        }
    }
}

pub mod keys;

/// The longest `authorization` value looked at; a longer one is refused before it is parsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How tokens are checked.
#[derive(Clone)]
pub enum Verifier {
    /// No authentication: every caller is an installation-wide admin. Development only, and
    /// only on a loopback listener (`gridd` refuses it otherwise).
    InsecureDev,
    Jwt(Arc<JwtCheck>),
}

/// Signed-token checking: the keys, and the issuer and audience when configured.
pub struct JwtCheck {
    keys: keys::Keys,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Verifier {
    /// Tokens signed with `source`'s keys; `iss` and `aud` must match when given.
    pub fn from_source(
        source: keys::KeySource,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<Verifier, String> {
        Ok(Verifier::Jwt(Arc::new(JwtCheck {
            keys: keys::Keys::load(source)?,
            issuer: issuer.filter(|s| !s.is_empty()),
            audience: audience.filter(|s| !s.is_empty()),
        })))
    }

    /// HS256 with a shared secret (development and tests).
    ///
    /// # Panics
    /// If `secret` is empty.
    #[must_use]
    pub fn hs256(secret: &[u8]) -> Verifier {
        Verifier::from_source(keys::KeySource::Secret(secret.to_vec()), None, None)
            .expect("an HS256 secret must not be empty")
    }

    /// RS256 or ES256 with a PEM public key held in memory.
    pub fn rs256(public_pem: &[u8]) -> Result<Verifier, String> {
        Verifier::from_source(keys::KeySource::Pem(public_pem.to_vec()), None, None)
    }

    /// Reads key files again if they changed: `Ok(true)` when new keys are in use.
    pub fn reload_keys(&self) -> Result<bool, String> {
        match self {
            Verifier::InsecureDev => Ok(false),
            Verifier::Jwt(c) => c.keys.reload_if_changed(),
        }
    }

    /// Re-reads key files every `every` until `shutdown`, so keys rotate without a restart.
    pub fn spawn_reloading(
        &self,
        every: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let Verifier::Jwt(check) = self else {
            return;
        };
        if !matches!(
            check.keys.source(),
            keys::KeySource::PemFile(_) | keys::KeySource::JwksFile(_)
        ) {
            return;
        }
        let v = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                match v.reload_keys() {
                    Ok(true) => tracing::info!("token keys reloaded"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "token keys not reloaded; the keys in use stay")
                    }
                }
            }
        });
    }

    pub fn verify(&self, header: Option<&str>) -> Result<Principal, ApiError> {
        let check = match self {
            Verifier::InsecureDev => return Ok(Principal::dev()),
            Verifier::Jwt(c) => c,
        };
        let header =
            header.ok_or_else(|| ApiError::Unauthenticated("missing bearer token".into()))?;
        if header.len() > MAX_TOKEN_BYTES {
            return Err(ApiError::Unauthenticated(format!(
                "token longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::Unauthenticated("authorization is not a bearer token".into()))?
            .trim();
        // `alg: none` and unknown algorithms fail here
        let head = jsonwebtoken::decode_header(token)
            .map_err(|e| ApiError::Unauthenticated(format!("invalid token: {e}")))?;
        // the key decides the algorithm: an HS256 token never meets an RSA key as a secret
        let key = check.keys.pick(&head).ok_or_else(|| {
            ApiError::Unauthenticated(format!(
                "invalid token: no key for algorithm {:?}{}",
                head.alg,
                head.kid
                    .as_deref()
                    .map_or(String::new(), |k| format!(" and key id {k}"))
            ))
        })?;
        let mut validation = Validation::new(key.alg);
        let mut required = vec!["exp", "sub"];
        validation.validate_nbf = true;
        if let Some(iss) = &check.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        if let Some(aud) = &check.audience {
            validation.set_audience(&[aud]);
            required.push("aud");
        } else {
            validation.validate_aud = false;
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| ApiError::Unauthenticated(format!("invalid token: {e}")))?;
        let c = data.claims;
        let unit = if c.unit.is_empty() {
            if !matches!(c.role, Role::Admin | Role::Platform | Role::Intake) {
                return Err(ApiError::Unauthenticated(
                    "token names no unit; only admin, platform and intake tokens may omit it"
                        .into(),
                ));
            }
            None
        } else {
            Some(
                UnitCode::parse(&c.unit)
                    .map_err(|_| ApiError::Unauthenticated("token names an invalid unit".into()))?,
            )
        };
        Ok(Principal {
            subject: c.sub,
            role: c.role,
            unit,
        })
    }
}

/// The principal the access layer (`crate::access`) attached to a request.
pub fn principal<T>(req: &Request<T>) -> Result<Principal, ApiError> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ApiError::Unauthenticated("no principal".into()))
}

/// Signs a development token (HS256), as `gridctl token` does.
pub fn mint_hs256(
    secret: &[u8],
    subject: &str,
    role: Role,
    unit: &str,
    ttl_secs: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    sign_hs256(
        secret,
        &Claims {
            sub: subject.to_owned(),
            role,
            unit: unit.to_owned(),
            exp: now + ttl_secs,
        },
    )
}

/// Signs arbitrary claims (HS256).
pub fn sign_hs256(secret: &[u8], claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod token_tests;
