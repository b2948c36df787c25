//! The keys tokens are checked with: an HS256 secret (development), a PEM public key (RS256 or
//! ES256) or a JWKS file. Files are read again when they change, so keys rotate without a
//! restart; a file that no longer parses leaves the keys in use as they were.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Header};

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// An HS256 shared secret.
    Secret(Vec<u8>),
    /// A PEM public key held in memory (RS256 or ES256, told apart by the key).
    Pem(Vec<u8>),
    /// A PEM public key file, re-read when it changes.
    PemFile(PathBuf),
    /// A JSON Web Key Set file (RS256 and ES256 keys, picked by `kid`), re-read when it changes.
    JwksFile(PathBuf),
}

/// One verification key.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// The keys in use and where they came from.
pub struct Keys {
    source: KeySource,
    current: RwLock<(Option<SystemTime>, Arc<Vec<Key>>)>,
}

impl Keys {
    /// Reads the keys once; an unreadable or unparsable source is an error here.
    pub fn load(source: KeySource) -> Result<Keys, String> {
        let stamp = modified(&source);
        let keys = read(&source)?;
        Ok(Keys {
            source,
            current: RwLock::new((stamp, Arc::new(keys))),
        })
    }

    #[must_use]
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// Reads the file again if it changed since it was last read. `Ok(true)`: new keys are in
    /// use. An error leaves the keys in use as they were.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let stamp = modified(&self.source);
        if stamp.is_none() || stamp == self.read_lock().0 {
            return Ok(false);
        }
        let keys = read(&self.source)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (stamp, Arc::new(keys));
        Ok(true)
    }

    /// The key a token's header asks for: one of its algorithm, with its `kid` when the token
    /// names one (or the only key of that algorithm when it does not).
    #[must_use]
    pub fn pick(&self, header: &Header) -> Option<Key> {
        let keys = self.read_lock().1.clone();
        let same_alg = keys.iter().filter(|k| k.alg == header.alg);
        match &header.kid {
            Some(kid) => same_alg
                .filter(|k| k.kid.as_deref() == Some(kid.as_str()) || k.kid.is_none())
                .min_by_key(|k| k.kid.is_none())
                .cloned(),
            None => {
                let all: Vec<&Key> = same_alg.collect();
                (all.len() == 1).then(|| all[0].clone())
            }
        }
    }

    fn read_lock(&self) -> std::sync::RwLockReadGuard<'_, (Option<SystemTime>, Arc<Vec<Key>>)> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn modified(source: &KeySource) -> Option<SystemTime> {
    match source {
        KeySource::PemFile(p) | KeySource::JwksFile(p) => {
            std::fs::metadata(p).and_then(|m| m.modified()).ok()
        }
        KeySource::Secret(_) | KeySource::Pem(_) => None,
    }
}

fn read(source: &KeySource) -> Result<Vec<Key>, String> {
    match source {
        KeySource::Secret(s) => {
            if s.is_empty() {
                return Err("the HS256 secret is empty".into());
            }
            Ok(vec![Key {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(s),
            }])
        }
        KeySource::Pem(pem) => pem_key(pem).map(|k| vec![k]),
        KeySource::PemFile(p) => {
            let pem = std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
            pem_key(&pem).map(|k| vec![k])
        }
        KeySource::JwksFile(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
            jwks_keys(&text).map_err(|e| format!("{}: {e}", p.display()))
        }
    }
}

/// A PEM public key: RSA (RS256) or P-256 (ES256).
fn pem_key(pem: &[u8]) -> Result<Key, String> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok(Key {
            kid: None,
            alg: Algorithm::RS256,
            key,
        });
    }
    DecodingKey::from_ec_pem(pem)
        .map(|key| Key {
            kid: None,
            alg: Algorithm::ES256,
            key,
        })
        .map_err(|e| format!("not an RSA or EC public key in PEM: {e}"))
}

/// The RS256 and ES256 keys of a JWKS; any other key is refused, so that a set cannot bring
/// in a shared secret or a weaker algorithm.
fn jwks_keys(text: &str) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                if ec.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            _ => {
                return Err(format!(
                    "key {i}: only RS256 and ES256 (P-256) keys are accepted"
                ));
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {i}: {e}"))?;
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    if keys.is_empty() {
        return Err("the set has no keys".into());
    }
    Ok(keys)
}
