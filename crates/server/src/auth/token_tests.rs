//! Every way a token can be wrong is UNAUTHENTICATED; keys come from PEM and JWKS files and
//! rotate without a restart.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::keys::KeySource;
use super::*;

const SECRET: &[u8] = b"token-tests-secret";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> serde_json::Value {
    json!({"sub": "w1", "role": "grid_worker", "unit": "360102001001001", "exp": now() + 600})
}

fn with(extra: serde_json::Value) -> serde_json::Value {
    let mut c = claims();
    if let serde_json::Value::Object(m) = extra {
        for (k, v) in m {
            c[k] = v;
        }
    }
    c
}

fn hs(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn refused(v: &Verifier, token: &str) -> String {
    match v.verify(Some(&format!("Bearer {token}"))) {
        Err(ApiError::Unauthenticated(m)) => m,
        other => panic!("expected UNAUTHENTICATED, got {other:?}"),
    }
}

/// base64url without padding, for hand-made tokens and JWKS members.
fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let d = std::env::temp_dir().join(format!("gd-keys-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}");
    out.stdout
}

/// A key pair: (private PEM, public PEM), RSA 2048 or P-256.
fn pair(dir: &Path, name: &str, ec: bool) -> (Vec<u8>, Vec<u8>) {
    let private = dir.join(format!("{name}.key"));
    let p = private.to_str().unwrap();
    if ec {
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            p,
        ]);
    } else {
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            p,
        ]);
    }
    let public = openssl(&["pkey", "-in", p, "-pubout"]);
    (std::fs::read(&private).unwrap(), public)
}

/// The JWK of an RSA public key, from openssl's modulus.
fn rsa_jwk(private_pem_path: &Path, kid: &str) -> serde_json::Value {
    let out = openssl(&[
        "rsa",
        "-in",
        private_pem_path.to_str().unwrap(),
        "-modulus",
        "-noout",
    ]);
    let hex = String::from_utf8(out).unwrap();
    let hex = hex.trim().trim_start_matches("Modulus=");
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64(&n), "e": "AQAB"})
}

fn signed(alg: Algorithm, kid: Option<&str>, private: &[u8], claims: &serde_json::Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(private).unwrap(),
        _ => EncodingKey::from_rsa_pem(private).unwrap(),
    };
    jsonwebtoken::encode(&h, claims, &key).unwrap()
}

#[test]
fn every_malformed_token_is_unauthenticated() {
    let v = Verifier::hs256(SECRET);
    assert!(v.verify(Some(&format!("Bearer {}", hs(&claims())))).is_ok());
    // missing, and not a bearer token
    assert!(matches!(v.verify(None), Err(ApiError::Unauthenticated(_))));
    assert!(matches!(
        v.verify(Some("Basic dzE6cHc=")),
        Err(ApiError::Unauthenticated(_))
    ));
    // expired beyond the minute of leeway
    let m = refused(&v, &hs(&with(json!({"exp": now() - 600}))));
    assert!(m.contains("xpired"), "{m}");
    // not valid before ten minutes from now
    let m = refused(&v, &hs(&with(json!({"nbf": now() + 600}))));
    assert!(m.contains("mmature") || m.contains("nbf"), "{m}");
    // without an expiry or a subject
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    refused(&v, &hs(&no_exp));
    let mut no_sub = claims();
    no_sub.as_object_mut().unwrap().remove("sub");
    refused(&v, &hs(&no_sub));
    // signed with another secret
    let other = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"another"),
    )
    .unwrap();
    refused(&v, &other);
    // `alg: none`, unsigned
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims().to_string().as_bytes())
    );
    refused(&v, &none);
    // a valid token with its payload changed after signing
    let good = hs(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let admin = with(json!({"role": "admin", "unit": ""}));
    refused(
        &v,
        &format!(
            "{}.{}.{}",
            parts[0],
            b64(admin.to_string().as_bytes()),
            parts[2]
        ),
    );
    // oversized: refused before it is parsed
    let big = hs(&with(json!({"pad": "x".repeat(MAX_TOKEN_BYTES)})));
    let m = refused(&v, &big);
    assert!(m.contains("longer than"), "{m}");
    // garbage
    refused(&v, "not.a.token");
    refused(&v, "");
}

#[test]
fn issuer_and_audience_are_checked_when_configured() {
    let v = Verifier::from_source(
        KeySource::Secret(SECRET.to_vec()),
        Some("https://auth.gov.example".into()),
        Some("griddispatch".into()),
    )
    .unwrap();
    let right = json!({"iss": "https://auth.gov.example", "aud": "griddispatch"});
    assert!(
        v.verify(Some(&format!("Bearer {}", hs(&with(right)))))
            .is_ok()
    );
    let m = refused(
        &v,
        &hs(&with(
            json!({"iss": "https://evil.example", "aud": "griddispatch"}),
        )),
    );
    assert!(m.contains("ssuer"), "{m}");
    let m = refused(
        &v,
        &hs(&with(
            json!({"iss": "https://auth.gov.example", "aud": "another-system"}),
        )),
    );
    assert!(m.contains("udience"), "{m}");
    // missing either
    refused(&v, &hs(&with(json!({"aud": "griddispatch"}))));
    refused(&v, &hs(&with(json!({"iss": "https://auth.gov.example"}))));
}

#[test]
fn rsa_and_ec_keys_come_from_files_and_rotate_without_a_restart() {
    let dir = Dir::new();
    let (rsa_private, rsa_public) = pair(&dir.0, "rsa", false);
    let (ec_private, ec_public) = pair(&dir.0, "ec", true);
    let key_file = dir.0.join("gridd.pem");
    std::fs::write(&key_file, &rsa_public).unwrap();
    let v = Verifier::from_source(KeySource::PemFile(key_file.clone()), None, None).unwrap();
    let rs = signed(Algorithm::RS256, None, &rsa_private, &claims());
    let es = signed(Algorithm::ES256, None, &ec_private, &claims());
    assert!(v.verify(Some(&format!("Bearer {rs}"))).is_ok());
    refused(&v, &es);
    // HS/RS confusion: an HS256 token whose secret is the public key
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(&rsa_public),
    )
    .unwrap();
    let m = refused(&v, &confused);
    assert!(m.contains("no key for algorithm HS256"), "{m}");

    // the operator replaces the file: the EC key is in use, the RSA key no longer
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&key_file, &ec_public).unwrap();
    bump_mtime(&key_file);
    assert!(v.reload_keys().unwrap());
    assert!(v.verify(Some(&format!("Bearer {es}"))).is_ok());
    refused(&v, &rs);
    // a broken file leaves the keys in use as they were
    std::fs::write(&key_file, b"-----BEGIN PUBLIC KEY-----\nnope\n").unwrap();
    bump_mtime(&key_file);
    assert!(v.reload_keys().is_err());
    assert!(v.verify(Some(&format!("Bearer {es}"))).is_ok());
    // unchanged: nothing read
    assert!(!Verifier::hs256(SECRET).reload_keys().unwrap());
}

#[test]
fn jwks_keys_are_picked_by_key_id() {
    let dir = Dir::new();
    let (a_private, _) = pair(&dir.0, "a", false);
    let (b_private, _) = pair(&dir.0, "b", false);
    let (c_private, _) = pair(&dir.0, "c", false);
    let jwks = dir.0.join("keys.json");
    let set = |kids: &[(&str, &str)]| {
        let keys: Vec<serde_json::Value> = kids
            .iter()
            .map(|(file, kid)| rsa_jwk(&dir.0.join(format!("{file}.key")), kid))
            .collect();
        json!({ "keys": keys }).to_string()
    };
    std::fs::write(&jwks, set(&[("a", "2026-a"), ("b", "2026-b")])).unwrap();
    let v = Verifier::from_source(KeySource::JwksFile(jwks.clone()), None, None).unwrap();
    let a = signed(Algorithm::RS256, Some("2026-a"), &a_private, &claims());
    let b = signed(Algorithm::RS256, Some("2026-b"), &b_private, &claims());
    assert!(v.verify(Some(&format!("Bearer {a}"))).is_ok());
    assert!(v.verify(Some(&format!("Bearer {b}"))).is_ok());
    // a key id the set does not hold, a token signed by the wrong key of the set, and no key
    // id when the set holds two keys of the algorithm
    refused(
        &v,
        &signed(Algorithm::RS256, Some("2025-z"), &a_private, &claims()),
    );
    refused(
        &v,
        &signed(Algorithm::RS256, Some("2026-b"), &a_private, &claims()),
    );
    refused(&v, &signed(Algorithm::RS256, None, &a_private, &claims()));
    // rotation: a retired, c added
    std::fs::write(&jwks, set(&[("b", "2026-b"), ("c", "2027-c")])).unwrap();
    bump_mtime(&jwks);
    assert!(v.reload_keys().unwrap());
    refused(&v, &a);
    assert!(v.verify(Some(&format!("Bearer {b}"))).is_ok());
    let c = signed(Algorithm::RS256, Some("2027-c"), &c_private, &claims());
    assert!(v.verify(Some(&format!("Bearer {c}"))).is_ok());
    // a set that brings in a shared secret is refused whole
    let oct = json!({"keys": [{"kty": "oct", "kid": "s", "k": b64(b"secret")}]}).to_string();
    std::fs::write(&jwks, oct).unwrap();
    bump_mtime(&jwks);
    assert!(v.reload_keys().is_err());
    assert!(v.verify(Some(&format!("Bearer {b}"))).is_ok());
}

/// File times can be coarse: move the modification time on so that a rewrite is seen.
fn bump_mtime(path: &Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    let later = SystemTime::now() + std::time::Duration::from_secs(1);
    f.set_modified(later).unwrap();
}
