//! Reporters' contacts at rest (DESIGN invariant 10, ADR 0031): sealed with AES-256-GCM under
//! a key from configuration before the store sees them, opened only for the roles that call
//! reporters back, purged after the retention period, and resealed under the current key when
//! keys rotate.
//!
//! The key file (`GRIDD_CONTACT_KEYS_FILE`) holds one key per line, `<id> <64 hex digits>`;
//! the first line is the current key, which seals; the others only open what they sealed
//! until the sweep has moved it to the current key. `gridctl contact-key` prints a new line.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use domain::source::Contact;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use store::{SealedContact, Store};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::SharedClock;

/// The associated data of every seal: binds the bytes to this use and to the key's id.
const AAD_PREFIX: &str = "griddispatch.contact/v1|";

#[derive(Debug, thiserror::Error)]
pub enum ContactKeyError {
    #[error("contact keys line {line}: {why}")]
    Line { line: usize, why: &'static str },
    #[error("the contact key file names no key")]
    Empty,
    #[error("contact key {0} appears twice")]
    Duplicate(String),
    #[error("reading the contact key file: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("sealed under key {0}, which this server does not hold")]
    UnknownKey(String),
    #[error("the sealed contact does not open: wrong key or altered bytes")]
    Altered,
}

/// The contact keys: the first seals, every one opens.
pub struct ContactKeys {
    keys: Vec<(String, LessSafeKey)>,
    rng: SystemRandom,
}

impl std::fmt::Debug for ContactKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("ContactKeys").field("ids", &ids).finish()
    }
}

impl ContactKeys {
    /// Keys from the text of a key file. Blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<ContactKeys, ContactKeyError> {
        let mut keys: Vec<(String, LessSafeKey)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why| ContactKeyError::Line { line: i + 1, why };
            let (id, hex_key) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad("expected `<id> <64 hex digits>`"))?;
            if id.is_empty()
                || id.len() > 32
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(bad("the id is 1..32 letters, digits, `-`, `_` or `.`"));
            }
            let bytes = hex::decode(hex_key.trim()).map_err(|_| bad("the key is not hex"))?;
            let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| bad("the key is not 32 bytes (64 hex digits)"))?;
            if keys.iter().any(|(k, _)| k == id) {
                return Err(ContactKeyError::Duplicate(id.to_owned()));
            }
            keys.push((id.to_owned(), LessSafeKey::new(unbound)));
        }
        if keys.is_empty() {
            return Err(ContactKeyError::Empty);
        }
        Ok(ContactKeys {
            keys,
            rng: SystemRandom::new(),
        })
    }

    pub fn from_file(path: &Path) -> Result<ContactKeys, ContactKeyError> {
        Self::parse(&std::fs::read_to_string(path)?)
    }

    /// A new key file line: a fresh random key under `id`.
    #[must_use]
    pub fn new_line(id: &str) -> String {
        let mut key = [0_u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .expect("the system's random source works");
        format!("{id} {}", hex::encode(key))
    }

    /// The id of the key that seals.
    #[must_use]
    pub fn current(&self) -> &str {
        &self.keys[0].0
    }

    /// Seals `c` under the current key; the masked form travels beside it in clear.
    #[must_use]
    pub fn seal(&self, c: &Contact) -> SealedContact {
        let (id, key) = &self.keys[0];
        let mut nonce = [0_u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut buf = serde_json::to_vec(c).expect("a contact serialises");
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(format!("{AAD_PREFIX}{id}").as_bytes()),
            &mut buf,
        )
        .expect("a contact fits one seal");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&buf);
        SealedContact {
            key_id: id.clone(),
            sealed,
            masked: c.masked(),
        }
    }

    /// Opens a sealed contact with the key that sealed it.
    pub fn open(&self, s: &SealedContact) -> Result<Contact, OpenError> {
        let (_, key) = self
            .keys
            .iter()
            .find(|(id, _)| *id == s.key_id)
            .ok_or_else(|| OpenError::UnknownKey(s.key_id.clone()))?;
        if s.sealed.len() < NONCE_LEN {
            return Err(OpenError::Altered);
        }
        let (nonce, body) = s.sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Altered)?;
        let mut buf = body.to_vec();
        let clear = key
            .open_in_place(
                nonce,
                Aad::from(format!("{AAD_PREFIX}{}", s.key_id).as_bytes()),
                &mut buf,
            )
            .map_err(|_| OpenError::Altered)?;
        serde_json::from_slice(clear).map_err(|_| OpenError::Altered)
    }
}

/// How this server keeps contacts.
#[derive(Debug, Clone)]
pub struct ContactPolicy {
    /// `None`: no key configured; a report that carries a contact is refused.
    pub keys: Option<Arc<ContactKeys>>,
    /// A closed case's contact is purged this long after the case last changed.
    pub retention: chrono::Duration,
    /// How often the sweep purges and reseals.
    pub sweep: Duration,
}

impl Default for ContactPolicy {
    fn default() -> Self {
        ContactPolicy {
            keys: None,
            retention: chrono::Duration::days(DEFAULT_RETENTION_DAYS),
            sweep: Duration::from_secs(600),
        }
    }
}

/// 180 days: the six months network logs must be kept is the longest any contact is needed
/// for a case's follow-up (差評回訪) after it closed.
pub const DEFAULT_RETENTION_DAYS: i64 = 180;

/// Rows one sweep statement handles.
const SWEEP_BATCH: i64 = 500;

/// The retention and rotation sweep (runs with the reconciler role).
pub struct Sweeper {
    pub store: Store,
    pub clock: SharedClock,
    pub policy: ContactPolicy,
}

impl Sweeper {
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.sweep_once().await {
                warn!(error = %e, "contact sweep failed; trying again at the next interval");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.policy.sweep) => {}
            }
        }
    }

    /// One pass: purge what is past retention, then reseal what an older key sealed.
    /// Returns (purged, resealed).
    pub async fn sweep_once(&self) -> Result<(u64, u64), store::StoreError> {
        let cutoff = self.clock.now() - self.policy.retention;
        let mut purged = 0;
        loop {
            let n = self.store.purge_contacts(cutoff, SWEEP_BATCH).await?;
            purged += n;
            if n < SWEEP_BATCH as u64 {
                break;
            }
        }
        let mut resealed = 0;
        if let Some(keys) = &self.policy.keys {
            loop {
                let batch = self
                    .store
                    .contacts_not_under(keys.current(), SWEEP_BATCH)
                    .await?;
                let full = batch.len() as i64 == SWEEP_BATCH;
                let mut moved = 0;
                for row in batch {
                    match keys.open(&row.contact) {
                        Ok(clear) => {
                            if self
                                .store
                                .reseal_contact(
                                    row.case_id,
                                    &row.contact.key_id,
                                    &keys.seal(&clear),
                                )
                                .await?
                            {
                                moved += 1;
                            }
                        }
                        // left as it is: an operator must restore the retired key
                        Err(e) => warn!(case_id = %row.case_id, error = %e, "contact not resealed"),
                    }
                }
                resealed += moved;
                if !full || moved == 0 {
                    break;
                }
            }
        }
        if purged > 0 || resealed > 0 {
            info!(purged, resealed, "contact sweep");
        }
        Ok((purged, resealed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact() -> Contact {
        Contact {
            name: "测试".into(),
            phone: "13900001111".into(),
            id_number: String::new(),
            email: "r@example.org".into(),
        }
    }

    #[test]
    fn a_contact_opens_with_its_key_only_and_not_when_altered() {
        let k1 = ContactKeys::parse(&ContactKeys::new_line("k1")).unwrap();
        let s = k1.seal(&contact());
        assert_eq!(s.key_id, "k1");
        assert!(
            !String::from_utf8_lossy(&s.sealed).contains("13900001111"),
            "sealed bytes hold the number in clear"
        );
        assert_eq!(k1.open(&s).unwrap(), contact());
        assert_ne!(
            k1.seal(&contact()).sealed,
            s.sealed,
            "a fresh nonce per seal"
        );

        // rotation: a new current key, the old one still opens
        let both = ContactKeys::parse(&format!(
            "# rotated\n{}\n\n{}\n",
            ContactKeys::new_line("k2"),
            ContactKeys::new_line("k1")
        ))
        .unwrap();
        assert_eq!(both.current(), "k2");
        assert!(
            matches!(both.open(&s), Err(OpenError::Altered)),
            "another k1"
        );
        let k2_only = ContactKeys::parse(&ContactKeys::new_line("k2")).unwrap();
        assert!(matches!(k2_only.open(&s), Err(OpenError::UnknownKey(_))));

        let mut altered = s.clone();
        *altered.sealed.last_mut().unwrap() ^= 1;
        assert!(matches!(k1.open(&altered), Err(OpenError::Altered)));
        let mut relabelled = s;
        relabelled.key_id = "k2".into();
        assert!(k2_only.open(&relabelled).is_err());
    }

    #[test]
    fn bad_key_files_are_refused_with_the_line() {
        for (text, want) in [
            ("", "names no key"),
            ("k1", "line 1"),
            ("k1 abcd", "32 bytes"),
            ("k1 zz", "not hex"),
            ("bad id! 00", "line 1"),
        ] {
            let e = ContactKeys::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let line = ContactKeys::new_line("k1");
        let e = ContactKeys::parse(&format!("{line}\n{line}")).unwrap_err();
        assert!(matches!(e, ContactKeyError::Duplicate(_)));
        // the key never shows in the Debug form
        let keys = ContactKeys::parse(&line).unwrap();
        let hex_part = line.split_once(' ').unwrap().1;
        assert!(!format!("{keys:?}").contains(hex_part));
    }
}
