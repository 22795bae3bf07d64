//! What the shop's nouns' JSON Schemas need beyond their derive attributes: the patterns that say
//! exactly what checkout accepts in a customer field and what an order number looks like, and a
//! field that serde fills in when absent but the API requires. The API's OpenAPI document is built
//! from these schemas; tests prove each pattern agrees with the code it describes.

use schemars::Schema;
use serde_json::{Value, json};

use super::order::{ORDER_ID_ALPHABET, ORDER_ID_LEN};

/// Characters `str::trim` removes (Unicode `White_Space`, as `char::is_whitespace`), as the body
/// of a regular-expression character class.
const WHITESPACE: &str = r"\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Characters checkout refuses inside a field (Unicode `Cc`, as `char::is_control`).
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";

/// A customer text field as checkout validates it: surrounding whitespace is trimmed, and what is
/// left must be 1 to `max` characters with no control characters. The pattern says exactly that,
/// length included (a `maxLength` would count the trimmed whitespace too).
pub fn text_pattern(max: usize) -> String {
    let ends = format!("[^{WHITESPACE}{CONTROL}]");
    format!(
        "^[{WHITESPACE}]*(?:{ends}|{ends}[^{CONTROL}]{{0,{inner}}}{ends})[{WHITESPACE}]*$",
        inner = max - 2
    )
}

/// The email field: as [`text_pattern`], and shaped like `name@example.com` (one `@`, something
/// before it, a dotted domain after it that neither starts nor ends with a dot, no whitespace).
/// Its length is left to a `maxLength`, which also counts surrounding whitespace; checkout counts
/// only what is left after trimming, so it accepts a few padded values the schema does not.
pub fn email_pattern() -> String {
    let atom = format!("[^@{WHITESPACE}{CONTROL}]");
    let edge = format!("[^@.{WHITESPACE}{CONTROL}]");
    format!("^[{WHITESPACE}]*{atom}+@{edge}{atom}*\\.{atom}*{edge}[{WHITESPACE}]*$")
}

/// An order number: [`ORDER_ID_LEN`] characters of [`ORDER_ID_ALPHABET`].
pub fn order_id_pattern() -> String {
    format!(
        "^[{}]{{{ORDER_ID_LEN}}}$",
        String::from_utf8_lossy(ORDER_ID_ALPHABET)
    )
}

/// A schema transform for an object whose `field` serde fills in when it is absent
/// (`#[serde(default)]`) although a request without it is refused all the same: the field is
/// listed as required and its default, which would not be accepted, is dropped.
pub fn required(field: &'static str) -> impl Fn(&mut Schema) {
    move |schema: &mut Schema| {
        let Some(object) = schema.as_object_mut() else {
            return;
        };
        if let Some(Value::Object(property)) = object
            .get_mut("properties")
            .and_then(|properties| properties.get_mut(field))
        {
            property.remove("default");
        }
        let required = object.entry("required").or_insert_with(|| json!([]));
        if let Value::Array(names) = required
            && !names.iter().any(|name| name == field)
        {
            names.push(field.into());
        }
    }
}
