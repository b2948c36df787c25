//! Bearer-JWT authentication and area scoping.
//!
//! Claims: `sub`, `role`, `unit` (the unit code the principal acts for), `exp`. HS256 with a
//! shared secret for development, RS256 public keys in production. A principal sees and acts on
//! cases inside its unit's area only (a department: its county's cases it takes part in).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use domain::region::{RegionCode, UnitCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
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
        }
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

    #[must_use]
    pub fn actor(&self) -> store::Actor {
        store::Actor {
            subject: self.subject.clone(),
            role: self.role.as_str().into(),
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

/// How tokens are checked.
#[derive(Clone)]
pub enum Verifier {
    /// No authentication: every caller is an installation-wide admin. Development only.
    InsecureDev,
    Jwt {
        key: Arc<DecodingKey>,
        validation: Arc<Validation>,
    },
}

impl Verifier {
    #[must_use]
    pub fn hs256(secret: &[u8]) -> Verifier {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        Verifier::Jwt {
            key: Arc::new(DecodingKey::from_secret(secret)),
            validation: Arc::new(validation),
        }
    }

    pub fn rs256(public_pem: &[u8]) -> Result<Verifier, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Verifier::Jwt {
            key: Arc::new(DecodingKey::from_rsa_pem(public_pem)?),
            validation: Arc::new(validation),
        })
    }

    pub fn verify(&self, header: Option<&str>) -> Result<Principal, ApiError> {
        let (key, validation) = match self {
            Verifier::InsecureDev => return Ok(Principal::dev()),
            Verifier::Jwt { key, validation } => (key, validation),
        };
        let header =
            header.ok_or_else(|| ApiError::Unauthenticated("missing bearer token".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                ApiError::Unauthenticated("authorization is not a bearer token".into())
            })?;
        let data = jsonwebtoken::decode::<Claims>(token.trim(), key, validation)
            .map_err(|e| ApiError::Unauthenticated(format!("invalid token: {e}")))?;
        let c = data.claims;
        let unit = if c.unit.is_empty() {
            if !matches!(c.role, Role::Admin | Role::Platform) {
                return Err(ApiError::Unauthenticated(
                    "token names no unit; only admin and platform tokens may omit it".into(),
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
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_checked() {
        let v = Verifier::hs256(b"secret");
        let t = mint_hs256(b"secret", "w1", Role::GridWorker, "360102001001001", 60).unwrap();
        let p = v.verify(Some(&format!("Bearer {t}"))).unwrap();
        assert_eq!(p.role, Role::GridWorker);
        assert_eq!(p.unit.unwrap().as_str(), "360102001001001");
        let bad = mint_hs256(b"other", "w1", Role::GridWorker, "360102001001001", 60).unwrap();
        assert!(v.verify(Some(&format!("Bearer {bad}"))).is_err());
        assert!(v.verify(None).is_err());
        assert!(v.verify(Some("Basic abc")).is_err());
        let no_unit = mint_hs256(b"secret", "w1", Role::UnitStaff, "", 60).unwrap();
        assert!(v.verify(Some(&format!("Bearer {no_unit}"))).is_err());
    }

    /// An RSA key pair made by `openssl` for this test: (private PEM, public PEM).
    fn rsa_pair(dir: &std::path::Path, name: &str) -> (Vec<u8>, Vec<u8>) {
        let private = dir.join(format!("{name}.key"));
        let public = dir.join(format!("{name}.pub"));
        let run = |args: &[&std::ffi::OsStr]| {
            let ok = std::process::Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl runs")
                .status
                .success();
            assert!(ok, "openssl {args:?}");
        };
        run(&[
            "genpkey".as_ref(),
            "-algorithm".as_ref(),
            "RSA".as_ref(),
            "-pkeyopt".as_ref(),
            "rsa_keygen_bits:2048".as_ref(),
            "-out".as_ref(),
            private.as_os_str(),
        ]);
        run(&[
            "pkey".as_ref(),
            "-in".as_ref(),
            private.as_os_str(),
            "-pubout".as_ref(),
            "-out".as_ref(),
            public.as_os_str(),
        ]);
        (
            std::fs::read(private).unwrap(),
            std::fs::read(public).unwrap(),
        )
    }

    #[test]
    fn rs256_tokens_are_checked_against_the_public_key_only() {
        let dir = std::env::temp_dir().join(format!("gd-rs256-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let (private, public) = rsa_pair(&dir, "issuer");
        let (other, _) = rsa_pair(&dir, "other");
        std::fs::remove_dir_all(&dir).unwrap();
        let v = Verifier::rs256(&public).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = |exp: u64| Claims {
            sub: "console-1".into(),
            role: Role::Dispatcher,
            unit: "360102".into(),
            exp,
        };
        let rs = |key: &[u8], exp| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::RS256),
                &claims(exp),
                &EncodingKey::from_rsa_pem(key).unwrap(),
            )
            .unwrap()
        };
        let p = v
            .verify(Some(&format!("Bearer {}", rs(&private, now + 600))))
            .unwrap();
        assert_eq!(
            (p.role, p.unit.unwrap().as_str()),
            (Role::Dispatcher, "360102")
        );
        // another key, an expired token, and an HS256 token made with the public key as its
        // secret (the algorithm-confusion attack): all refused
        for bad in [
            rs(&other, now + 600),
            rs(&private, now - 3600),
            sign_hs256(&public, &claims(now + 600)).unwrap(),
        ] {
            assert!(matches!(
                v.verify(Some(&format!("Bearer {bad}"))),
                Err(ApiError::Unauthenticated(_))
            ));
        }
    }

    #[test]
    fn areas() {
        let p = |unit: &str, role| Principal {
            subject: "s".into(),
            role,
            unit: Some(UnitCode::parse(unit).unwrap()),
        };
        let u = |c: &str| UnitCode::parse(c).unwrap();
        let township = p("360102001", Role::Dispatcher);
        assert!(township.covers(&u("360102001001001")));
        assert!(!township.covers(&u("360102002001001")));
        assert!(township.require_acts_for(&u("360102001001")).is_ok());
        let staff = p("360102001001", Role::UnitStaff);
        assert!(staff.require_acts_for(&u("360102001001")).is_ok());
        assert!(staff.require_acts_for(&u("360102001001001")).is_err());
        let dept = p("360102-CGJ", Role::UnitStaff);
        assert!(dept.covers(&u("360102-CGJ")));
        assert!(!dept.covers(&u("360102001001001")));
        assert!(!dept.covers(&u("360102-ZJJ")));
        assert!(Principal::dev().require_acts_for(&u("360102-ZJJ")).is_ok());
    }
}
