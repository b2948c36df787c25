//! Parsing Redis replies by hand, where the client's typed replies do not fit (XAUTOCLAIM's
//! third element, entries deleted while pending).

use redis::Value;

use crate::{DATA_FIELD, DeadLetter, QueueError};

/// One raw stream entry; `fields` is `None` for an entry deleted from the stream while it
/// was still pending.
pub(crate) struct RawEntry {
    pub(crate) id: String,
    pub(crate) fields: Option<Vec<(String, String)>>,
}

pub(crate) fn malformed(what: &str, v: &Value) -> QueueError {
    QueueError::Malformed(format!("{what}: unexpected {v:?}"))
}

pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".to_owned()),
        _ => None,
    }
}

pub(crate) fn field(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

pub(crate) fn dead_letter_from(id: String, fields: &[(String, String)]) -> DeadLetter {
    DeadLetter {
        id,
        payload: field(fields, DATA_FIELD).unwrap_or_default(),
        source_key: field(fields, "source_key").unwrap_or_default(),
        reason: field(fields, "reason").unwrap_or_default(),
        deliveries: field(fields, "deliveries")
            .and_then(|d| d.parse().ok())
            .unwrap_or(0),
    }
}

/// Splits an XREAD / XREADGROUP reply into `(stream key, entries)`. Nil (timeout) is empty.
/// Accepts both the RESP2 array form and the RESP3 map form, so a `?protocol=resp3` URL
/// does not break reading.
pub(crate) fn parse_read_reply(reply: Value) -> Result<Vec<(String, Value)>, QueueError> {
    match reply {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|s| match s {
                Value::Array(mut pair) if pair.len() == 2 => {
                    let entries = pair.pop().unwrap_or(Value::Nil);
                    let key = text(&pair[0]).ok_or_else(|| malformed("stream key", &pair[0]))?;
                    Ok((key, entries))
                }
                other => Err(malformed("stream of XREAD reply", &other)),
            })
            .collect(),
        Value::Map(streams) => streams
            .into_iter()
            .map(|(k, entries)| {
                let key = text(&k).ok_or_else(|| malformed("stream key", &k))?;
                Ok((key, entries))
            })
            .collect(),
        other => Err(malformed("XREAD reply", &other)),
    }
}

/// Parses `[[id, [field, value, ...] | nil], ...]`, as XRANGE, XREAD and XAUTOCLAIM send it.
pub(crate) fn parse_entries(entries: Value) -> Result<Vec<RawEntry>, QueueError> {
    let items = match entries {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(malformed("entry list", &other)),
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Array(mut parts) = item else {
                return Err(malformed("entry", &item));
            };
            if parts.len() != 2 {
                return Err(QueueError::Malformed(format!(
                    "entry with {} elements",
                    parts.len()
                )));
            }
            let fields = parts.pop().unwrap_or(Value::Nil);
            let id = text(&parts[0]).ok_or_else(|| malformed("entry id", &parts[0]))?;
            let fields = parse_fields(fields)?;
            Ok(RawEntry { id, fields })
        })
        .collect()
}

pub(crate) fn parse_fields(fields: Value) -> Result<Option<Vec<(String, String)>>, QueueError> {
    match fields {
        Value::Nil => Ok(None),
        Value::Array(flat) => {
            if flat.len() % 2 != 0 {
                return Err(QueueError::Malformed(format!(
                    "odd field list of {} items",
                    flat.len()
                )));
            }
            flat.chunks_exact(2)
                .map(|kv| {
                    let k = text(&kv[0]).ok_or_else(|| malformed("field name", &kv[0]))?;
                    let v = text(&kv[1]).ok_or_else(|| malformed("field value", &kv[1]))?;
                    Ok((k, v))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        }
        Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| {
                let k = text(k).ok_or_else(|| malformed("field name", k))?;
                let v = text(v).ok_or_else(|| malformed("field value", v))?;
                Ok((k, v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(malformed("field list", &other)),
    }
}

/// Delivery count from an extended XPENDING reply `[[id, consumer, idle_ms, deliveries]]`;
/// `None` when the entry is no longer pending.
pub(crate) fn parse_pending_deliveries(reply: &Value) -> Result<Option<u64>, QueueError> {
    let Value::Array(rows) = reply else {
        return Err(malformed("XPENDING reply", reply));
    };
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    match row {
        Value::Array(cols) if cols.len() == 4 => match &cols[3] {
            Value::Int(n) => Ok(Some(u64::try_from(*n).unwrap_or(0))),
            other => text(other)
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(|| malformed("XPENDING delivery count", other)),
        },
        other => Err(malformed("XPENDING row", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn autoclaim_style_entries_skip_nil_fields() {
        let entries = Value::Array(vec![
            Value::Array(vec![
                bulk("1-0"),
                Value::Array(vec![bulk("data"), bulk("x")]),
            ]),
            Value::Array(vec![bulk("2-0"), Value::Nil]),
        ]);
        let parsed = parse_entries(entries).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].id, "1-0");
        assert_eq!(
            parsed[0].fields.as_deref(),
            Some(&[("data".to_owned(), "x".to_owned())][..])
        );
        assert!(parsed[1].fields.is_none());
    }

    #[test]
    fn read_reply_accepts_resp2_and_resp3_shapes() {
        let entries = || {
            Value::Array(vec![Value::Array(vec![
                bulk("1-0"),
                Value::Array(vec![bulk("data"), bulk("p")]),
            ])])
        };
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("k"), entries()])]);
        let resp3 = Value::Map(vec![(bulk("k"), entries())]);
        for reply in [resp2, resp3] {
            let streams = parse_read_reply(reply).unwrap();
            assert_eq!(streams.len(), 1);
            assert_eq!(streams[0].0, "k");
        }
        assert!(parse_read_reply(Value::Nil).unwrap().is_empty());
    }

    #[test]
    fn pending_row_gives_the_delivery_count() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("1-0"),
            bulk("c"),
            Value::Int(12),
            Value::Int(3),
        ])]);
        assert_eq!(parse_pending_deliveries(&reply).unwrap(), Some(3));
        assert_eq!(
            parse_pending_deliveries(&Value::Array(vec![])).unwrap(),
            None
        );
    }
}
