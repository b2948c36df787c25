//! Where a report came from (群眾訴求一鍵回應): a grid worker's phone, a resident, a transfer
//! from the 12345 hotline or another system, with the source's own reference; and the
//! reporter's contact, which is personal data (DESIGN invariant 10): checked here, masked
//! wherever it is shown to someone who does not call the reporter back, and never written
//! anywhere in clear (the server seals it before the store sees it).

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::report::FieldViolation;

/// The longest source reference kept (a hotline ticket number, another system's id).
pub const SOURCE_REF_MAX: usize = 64;
pub const NAME_MAX: usize = 50;
pub const EMAIL_MAX: usize = 254;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SourceKind {
    /// A grid worker's phone (網格發現): the only source before intake opened.
    #[default]
    GridWorker,
    /// A resident, through an app or the Open311 facade.
    Resident,
    /// A transfer from the 12345 government service hotline, with its ticket number.
    Hotline12345,
    /// Another system (a department's platform, a sensor network), with its own reference.
    OtherSystem,
}

impl SourceKind {
    pub const ALL: [SourceKind; 4] = [
        SourceKind::GridWorker,
        SourceKind::Resident,
        SourceKind::Hotline12345,
        SourceKind::OtherSystem,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SourceKind::GridWorker => "GRID_WORKER",
            SourceKind::Resident => "RESIDENT",
            SourceKind::Hotline12345 => "HOTLINE_12345",
            SourceKind::OtherSystem => "OTHER_SYSTEM",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<SourceKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The sources whose reference is the report's identity: the same ticket sent twice is
    /// one case, whatever key the sending system put on each try.
    #[must_use]
    pub const fn reference_is_identity(self) -> bool {
        matches!(self, SourceKind::Hotline12345 | SourceKind::OtherSystem)
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A report's source and the source's own reference (empty for a grid worker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Source {
    pub kind: SourceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// Names the idempotency keys made from source references.
const REFERENCE_NAMESPACE: Uuid = Uuid::from_u128(0x6a1d_5e0c_31f4_4f7e_9b5d_1c2a_7e3f_0d42);

impl Source {
    #[must_use]
    pub fn is_grid_worker(&self) -> bool {
        *self == Source::default()
    }

    /// Checks a source as it arrived: the reference is required where it is the identity,
    /// at most [`SOURCE_REF_MAX`] printable characters.
    pub fn parse(kind: SourceKind, reference: &str) -> Result<Source, FieldViolation> {
        let r = reference.trim();
        if r.chars().count() > SOURCE_REF_MAX {
            return Err(FieldViolation::new(
                "source_ref",
                format!("at most {SOURCE_REF_MAX} characters"),
            ));
        }
        if r.chars().any(char::is_control) {
            return Err(FieldViolation::new(
                "source_ref",
                "must not hold control characters",
            ));
        }
        if r.is_empty() && kind.reference_is_identity() {
            return Err(FieldViolation::new(
                "source_ref",
                format!("required for {kind}: the ticket or record number"),
            ));
        }
        Ok(Source {
            kind,
            reference: (!r.is_empty()).then(|| r.to_owned()),
        })
    }

    /// The idempotency key a hotline ticket or another system's record stands for: the same
    /// reference always names the same case.
    #[must_use]
    pub fn identity_key(&self) -> Option<Uuid> {
        let r = self.reference.as_deref()?;
        self.kind.reference_is_identity().then(|| {
            Uuid::new_v5(
                &REFERENCE_NAMESPACE,
                format!("{}:{r}", self.kind.as_str()).as_bytes(),
            )
        })
    }
}

/// A reporter's contact, as the reporter gave it. Its `Debug` shows the masked form only, so
/// that no log line or error can print it by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phone: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id_number: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.masked();
        f.debug_struct("Contact")
            .field("name", &m.name)
            .field("phone", &m.phone)
            .field("id_number", &m.id_number)
            .field("email", &m.email)
            .finish()
    }
}

impl Contact {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.name.is_empty()
            && self.phone.is_empty()
            && self.id_number.is_empty()
            && self.email.is_empty()
    }

    /// Checks and normalises each field (spaces and dashes out of numbers, `x` to `X`); `None`
    /// when nothing was given. A violation never repeats the value it refuses.
    pub fn parse(raw: &Contact) -> Result<Option<Contact>, Vec<FieldViolation>> {
        let mut v = Vec::new();
        let name = raw.name.trim().to_owned();
        if name.chars().count() > NAME_MAX {
            v.push(FieldViolation::new(
                "reporter.name",
                format!("at most {NAME_MAX} characters"),
            ));
        }
        if name.chars().any(char::is_control) {
            v.push(FieldViolation::new(
                "reporter.name",
                "must not hold control characters",
            ));
        }
        let phone: String = raw
            .phone
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .collect();
        let phone = phone.strip_prefix("+86").unwrap_or(&phone).to_owned();
        if !phone.is_empty() && !is_phone(&phone) {
            v.push(FieldViolation::new(
                "reporter.phone",
                "not a mainland mobile (11 digits from 13..19) or landline (0, area code, number) number",
            ));
        }
        let id_number = raw.id_number.trim().to_ascii_uppercase();
        if !id_number.is_empty() && !is_id_number(&id_number) {
            v.push(FieldViolation::new(
                "reporter.id_number",
                "not a resident ID number (18 characters with a valid check digit)",
            ));
        }
        let email = raw.email.trim().to_owned();
        if !email.is_empty() && !is_email(&email) {
            v.push(FieldViolation::new(
                "reporter.email",
                format!("not an address of the form name@domain, at most {EMAIL_MAX} characters"),
            ));
        }
        if !v.is_empty() {
            return Err(v);
        }
        let c = Contact {
            name,
            phone,
            id_number,
            email,
        };
        Ok((!c.is_empty()).then_some(c))
    }

    /// The contact as shown to those who do not call the reporter back: a name keeps its
    /// first character, numbers their first three and last two ([`crate::pii::mask_number`], as
    /// in free text), an address its first character and domain.
    #[must_use]
    pub fn masked(&self) -> Contact {
        Contact {
            name: mask_name(&self.name),
            phone: crate::pii::mask_number(&self.phone),
            id_number: crate::pii::mask_number(&self.id_number),
            email: mask_email(&self.email),
        }
    }
}

fn is_phone(p: &str) -> bool {
    let b = p.as_bytes();
    if !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mobile = b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]);
    let landline = (10..=12).contains(&b.len()) && b[0] == b'0' && b[1] != b'0';
    mobile || landline
}

/// GB 11643: 17 digits and a check character from the weighted sum mod 11.
fn is_id_number(id: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    b[17] == CHECK[(sum % 11) as usize]
}

fn is_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    e.len() <= EMAIL_MAX
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

fn mask_name(n: &str) -> String {
    let mut chars = n.chars();
    match chars.next() {
        None => String::new(),
        Some(first) => {
            let rest = chars.count().max(1);
            std::iter::once(first)
                .chain(std::iter::repeat_n('*', rest))
                .collect()
        }
    }
}

fn mask_email(e: &str) -> String {
    match e.split_once('@') {
        None if e.is_empty() => String::new(),
        None => "***".into(),
        Some((local, domain)) => {
            let first = local.chars().next().map(String::from).unwrap_or_default();
            format!("{first}***@{domain}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic resident ID with a valid check digit (not a real person's).
    fn synthetic_id() -> String {
        let body = "36010219900307001";
        (0..=10)
            .map(|i| {
                let c = b"10X98765432"[i] as char;
                format!("{body}{c}")
            })
            .find(|id| is_id_number(id))
            .unwrap()
    }

    #[test]
    fn contacts_are_checked_without_repeating_the_value() {
        let bad = Contact {
            name: String::new(),
            phone: "12345".into(),
            id_number: "360102199003070010".into(),
            email: "nobody".into(),
        };
        let v = Contact::parse(&bad).unwrap_err();
        let fields: Vec<_> = v.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            ["reporter.phone", "reporter.id_number", "reporter.email"]
        );
        for f in &v {
            assert!(!f.description.contains("12345"));
            assert!(!f.description.contains("3601021990"));
            assert!(!f.description.contains("nobody"));
        }
        assert_eq!(Contact::parse(&Contact::default()).unwrap(), None);
    }

    #[test]
    fn numbers_are_normalised_and_masked() {
        let id = synthetic_id();
        let c = Contact::parse(&Contact {
            name: " 王小明 ".into(),
            phone: "+86 139-0000-1111".into(),
            id_number: id.to_lowercase(),
            email: "resident@example.org".into(),
        })
        .unwrap()
        .unwrap();
        assert_eq!(c.phone, "13900001111");
        assert_eq!(c.id_number, id);
        assert_eq!(c.name, "王小明");
        let m = c.masked();
        assert_eq!(m.name, "王**");
        assert_eq!(m.phone, "139******11");
        assert_eq!(m.phone, crate::pii::mask("13900001111"));
        assert_eq!(m.id_number.len(), 18);
        assert!(m.id_number.starts_with("360") && m.id_number.contains("*******"));
        assert_eq!(m.email, "r***@example.org");
        let debug = format!("{c:?}");
        assert!(!debug.contains("13900001111") && !debug.contains(&id) && !debug.contains("小明"));
        assert!(is_phone("079186001234") && !is_phone("0012345678"));
    }

    #[test]
    fn hotline_tickets_are_their_own_identity() {
        let a = Source::parse(SourceKind::Hotline12345, "NC12345-20261202-0001").unwrap();
        let b = Source::parse(SourceKind::Hotline12345, " NC12345-20261202-0001 ").unwrap();
        assert_eq!(a.identity_key(), b.identity_key());
        assert!(a.identity_key().is_some());
        let other = Source::parse(SourceKind::OtherSystem, "NC12345-20261202-0001").unwrap();
        assert_ne!(a.identity_key(), other.identity_key());
        let resident = Source::parse(SourceKind::Resident, "app-77").unwrap();
        assert_eq!(resident.identity_key(), None);
        assert_eq!(
            Source::parse(SourceKind::Hotline12345, "")
                .unwrap_err()
                .field,
            "source_ref"
        );
        assert!(Source::parse(SourceKind::Resident, &"x".repeat(65)).is_err());
        for k in SourceKind::ALL {
            assert_eq!(SourceKind::parse(k.as_str()), Some(k));
        }
    }
}
