//! Tokens, keys and areas.

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
