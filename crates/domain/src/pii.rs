//! Masking personal numbers in free text (PIPL; DOMAIN.md "Personal information"): mobile
//! phone numbers (`1[3-9]` and nine more digits) and 18-character resident ID numbers
//! (17 digits and a digit or `X`) keep their first three and last two characters. A number
//! counts only as a whole run of digits, so case numbers and codes are left alone.

use std::borrow::Cow;

/// `text` with every phone and ID number masked; borrowed when there was none.
#[must_use]
pub fn mask(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let digits = end - i;
        // an ID number may end in X
        let id_with_x = digits == 17 && end < b.len() && (b[end] == b'X' || b[end] == b'x');
        let run_end = if id_with_x { end + 1 } else { end };
        let followed_by_word = run_end < b.len() && b[run_end].is_ascii_alphanumeric();
        let phone = digits == 11 && b[i] == b'1' && (b'3'..=b'9').contains(&b[i + 1]);
        let id = digits == 18 || id_with_x;
        if (phone || id) && !followed_by_word {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[copied..i]);
            o.push_str(&mask_number(&text[i..run_end]));
            copied = run_end;
        }
        i = run_end;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
    }
}

/// A whole number (a phone or ID number) masked: its first three and last two characters
/// kept, every other one a `*`; a number of five characters or fewer all stars.
#[must_use]
pub fn mask_number(s: &str) -> String {
    let n = s.chars().count();
    if n <= 5 {
        return "*".repeat(n);
    }
    s.chars()
        .enumerate()
        .map(|(i, c)| if i < 3 || i >= n - 2 { c } else { '*' })
        .collect()
}

/// Masks every string inside a JSON value, in place.
pub fn mask_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if let Cow::Owned(m) = mask(s) {
                *s = m;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(mask_json),
        serde_json::Value::Object(o) => o.values_mut().for_each(mask_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_and_id_numbers_are_masked() {
        assert_eq!(
            mask("联系人电话13912345678，请回电"),
            "联系人电话139******78，请回电"
        );
        assert_eq!(mask("tel:+86 15800001111."), "tel:+86 158******11.");
        assert_eq!(
            mask("身份证36010219800101123X号"),
            "身份证360*************3X号"
        );
        assert_eq!(mask("id 360102198001011234"), "id 360*************34");
        assert_eq!(
            mask("13912345678 and 13812345678"),
            "139******78 and 138******78"
        );
    }

    #[test]
    fn other_numbers_are_left_alone() {
        for s in [
            "360102-20261126-000123",
            "grid 360102001001001",
            "12345678901",
            "139123456789",
            "1391234567",
            "3601021980010112345",
            "13912345678a",
            "",
        ] {
            assert!(matches!(mask(s), Cow::Borrowed(_)), "{s}");
        }
    }

    #[test]
    fn json_strings_are_masked_everywhere() {
        let mut v = serde_json::json!({"note": "找13912345678", "n": 13912345678_u64,
            "list": ["360102198001011234"]});
        mask_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"note": "找139******78", "n": 13912345678_u64,
                "list": ["360*************34"]})
        );
    }
}
