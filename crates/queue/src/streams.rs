//! The streams between tiers and what they carry: each stream's name, its Redis key (with the
//! hash tag that keeps a county's streams in one slot), its capping, and the messages, as
//! types. No other crate formats or parses a key, an outbox name or a payload.
//!
//! | stream | key | outbox name | capped |
//! |---|---|---|---|
//! | [`Stream::Intake`] | `{prefix}:intake:{<county>}` | `intake/<county>` | never: entries may still be pending in the router's group |
//! | [`Stream::Inbox`] | `{prefix}:inbox:{<tag>}:<unit>` | `inbox/<tag>/<unit>` | `MAXLEN ~ 10000`: live fan-out only |
//! | [`Stream::Dead`] | `{prefix}:dead:{<county>}` | — | never |
//!
//! An inbox's tag is its unit's county, or the unit's own region above counties (a city's
//! command centre), so that publisher and console always agree on the key.

use std::collections::BTreeMap;
use std::fmt;

use domain::CaseId;
use domain::effects::ItemKind;
use domain::region::{RegionCode, UnitCode};
use serde::{Deserialize, Serialize};

/// Inboxes are live fan-out only (a console takes its snapshot from Postgres), so an
/// approximate cap keeps a unit nobody watches from growing without bound.
pub const INBOX_MAXLEN: usize = 10_000;

/// One of the pipeline's streams.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// New work for a county's router, read with a consumer group.
    Intake(RegionCode),
    /// A unit's live inbox, read with plain XREAD.
    Inbox(UnitCode),
    /// Entries a county's router gave up on, with the reason.
    Dead(RegionCode),
}

impl Stream {
    /// The hash tag: the county (or, for an inbox above counties, the unit's own region).
    #[must_use]
    pub fn tag(&self) -> RegionCode {
        match self {
            Stream::Intake(c) | Stream::Dead(c) => c.clone(),
            Stream::Inbox(unit) => unit.county().unwrap_or_else(|| unit.region()),
        }
    }

    /// Where entries of this stream go when the router gives up on them.
    #[must_use]
    pub fn dead_letters(&self) -> Stream {
        Stream::Dead(self.tag())
    }

    /// `MAXLEN ~` for XADD, if the stream is capped.
    #[must_use]
    pub fn cap(&self) -> Option<usize> {
        match self {
            Stream::Inbox(_) => Some(INBOX_MAXLEN),
            Stream::Intake(_) | Stream::Dead(_) => None,
        }
    }

    /// The Redis key under `prefix`.
    #[must_use]
    pub fn key(&self, prefix: &str) -> String {
        let tag = self.tag();
        match self {
            Stream::Intake(_) => format!("{prefix}:intake:{{{tag}}}"),
            Stream::Inbox(unit) => format!("{prefix}:inbox:{{{tag}}}:{unit}"),
            Stream::Dead(_) => format!("{prefix}:dead:{{{tag}}}"),
        }
    }

    /// The stream a key under `prefix` names, if it names one.
    #[must_use]
    pub fn from_key(prefix: &str, key: &str) -> Option<Stream> {
        let rest = key.strip_prefix(prefix)?.strip_prefix(':')?;
        let (kind, rest) = rest.split_once(':')?;
        let (tag, rest) = rest.strip_prefix('{')?.split_once('}')?;
        let tag = RegionCode::parse(tag).ok()?;
        let stream = match (kind, rest) {
            ("intake", "") => Stream::Intake(tag.clone()),
            ("dead", "") => Stream::Dead(tag.clone()),
            ("inbox", unit) => Stream::Inbox(UnitCode::parse(unit.strip_prefix(':')?).ok()?),
            _ => return None,
        };
        (stream.tag() == tag).then_some(stream)
    }

    /// The name an outbox row gives the stream, if the relay publishes to it.
    #[must_use]
    pub fn outbox_name(&self) -> Option<String> {
        match self {
            Stream::Intake(c) => Some(format!("intake/{c}")),
            Stream::Inbox(unit) => Some(format!("inbox/{}/{unit}", self.tag())),
            Stream::Dead(_) => None,
        }
    }

    /// The stream an outbox row names.
    #[must_use]
    pub fn from_outbox_name(name: &str) -> Option<Stream> {
        let mut parts = name.split('/');
        let stream = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("intake"), Some(county), None, None) => {
                Stream::Intake(RegionCode::parse(county).ok()?)
            }
            (Some("inbox"), Some(tag), Some(unit), None) => {
                let stream = Stream::Inbox(UnitCode::parse(unit).ok()?);
                if stream.tag().as_str() != tag {
                    return None;
                }
                stream
            }
            _ => return None,
        };
        Some(stream)
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stream::Intake(c) => write!(f, "intake of {c}"),
            Stream::Inbox(unit) => write!(f, "inbox of {unit}"),
            Stream::Dead(c) => write!(f, "dead letters of {c}"),
        }
    }
}

/// A new case for its county's router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeMsg {
    pub case_id: CaseId,
    pub version: u64,
    pub county: RegionCode,
    /// The report's trace context, so that routing joins the report's trace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub trace: BTreeMap<String, String>,
}

/// An item for a unit's inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxMsg {
    pub kind: ItemKind,
    pub case_id: CaseId,
    /// The case version the item was made for.
    pub version: u64,
    pub unit: UnitCode,
}

/// What the relay publishes: the message says which stream it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Intake(IntakeMsg),
    Inbox(InboxMsg),
}

impl Message {
    /// The stream the message goes to.
    #[must_use]
    pub fn stream(&self) -> Stream {
        match self {
            Message::Intake(m) => Stream::Intake(m.county.clone()),
            Message::Inbox(m) => Stream::Inbox(m.unit.clone()),
        }
    }

    /// The payload, as JSON.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let v = match self {
            Message::Intake(m) => serde_json::to_value(m),
            Message::Inbox(m) => serde_json::to_value(m),
        };
        // plain structs of strings and numbers always serialise
        v.unwrap_or_default()
    }

    /// The message an outbox row holds: its stream name and its payload.
    pub fn from_outbox(name: &str, payload: &serde_json::Value) -> Result<Message, String> {
        let bad = |e: serde_json::Error| format!("{name}: {e}");
        match Stream::from_outbox_name(name) {
            Some(Stream::Intake(_)) => Ok(Message::Intake(
                IntakeMsg::deserialize(payload).map_err(bad)?,
            )),
            Some(Stream::Inbox(_)) => {
                Ok(Message::Inbox(InboxMsg::deserialize(payload).map_err(bad)?))
            }
            _ => Err(format!("{name}: no such outbox stream")),
        }
    }
}

impl From<IntakeMsg> for Message {
    fn from(m: IntakeMsg) -> Self {
        Message::Intake(m)
    }
}

impl From<InboxMsg> for Message {
    fn from(m: InboxMsg) -> Self {
        Message::Inbox(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(s: &str) -> UnitCode {
        UnitCode::parse(s).unwrap()
    }

    #[test]
    fn keys_and_outbox_names_round_trip() {
        let county = RegionCode::parse("360102").unwrap();
        for s in [
            Stream::Intake(county.clone()),
            Stream::Dead(county.clone()),
            Stream::Inbox(unit("360102001")),
            Stream::Inbox(unit("360102001001001")),
            Stream::Inbox(unit("360102-CGJ")),
            Stream::Inbox(unit("3601")),
        ] {
            assert_eq!(Stream::from_key("gd", &s.key("gd")), Some(s.clone()), "{s}");
            if let Some(name) = s.outbox_name() {
                assert_eq!(Stream::from_outbox_name(&name), Some(s.clone()), "{s}");
            }
        }
        assert_eq!(
            Stream::Intake(county.clone()).key("gd"),
            "gd:intake:{360102}"
        );
        assert_eq!(
            Stream::Inbox(unit("360102001")).key("gd"),
            "gd:inbox:{360102}:360102001"
        );
        assert_eq!(
            Stream::Inbox(unit("360102-CGJ")).key("gd"),
            "gd:inbox:{360102}:360102-CGJ"
        );
        // a city's command centre has no county: its own code keeps publisher and console on
        // the same key
        assert_eq!(
            Stream::Inbox(unit("3601")).key("gd"),
            "gd:inbox:{3601}:3601"
        );
        assert_eq!(
            Stream::Inbox(unit("3601")).outbox_name().unwrap(),
            "inbox/3601/3601"
        );
        assert_eq!(Stream::Dead(county).key("gd"), "gd:dead:{360102}");
    }

    #[test]
    fn foreign_keys_and_names_are_not_streams() {
        for key in [
            "other:intake:{360102}",
            "gd:intake:360102",
            "gd:inbox:{360102}:360103001",
            "gd:inbox:{360102}",
            "gd:rebuilt",
        ] {
            assert_eq!(Stream::from_key("gd", key), None, "{key}");
        }
        for name in [
            "intake",
            "inbox/360102",
            "inbox/360103/360102001",
            "dead/360102",
        ] {
            assert_eq!(Stream::from_outbox_name(name), None, "{name}");
        }
    }

    #[test]
    fn only_inboxes_are_capped() {
        assert_eq!(Stream::Inbox(unit("360102001")).cap(), Some(INBOX_MAXLEN));
        assert_eq!(
            Stream::Intake(RegionCode::parse("360102").unwrap()).cap(),
            None
        );
    }

    #[test]
    fn payloads_keep_their_wire_shape() {
        let id = CaseId::nil();
        let inbox = Message::Inbox(InboxMsg {
            kind: ItemKind::ToAccept,
            case_id: id,
            version: 3,
            unit: unit("360102001"),
        });
        assert_eq!(
            inbox.to_json(),
            serde_json::json!({"kind": "TO_ACCEPT", "case_id": id, "version": 3, "unit": "360102001"})
        );
        let intake = Message::Intake(IntakeMsg {
            case_id: id,
            version: 1,
            county: RegionCode::parse("360102").unwrap(),
            trace: BTreeMap::new(),
        });
        assert_eq!(
            intake.to_json(),
            serde_json::json!({"case_id": id, "version": 1, "county": "360102"})
        );
        for m in [inbox, intake] {
            let name = m.stream().outbox_name().unwrap();
            assert_eq!(Message::from_outbox(&name, &m.to_json()), Ok(m));
        }
    }
}
