//! `/openapi/v2`: a Swagger 2.0 document with no definitions. kubectl reads it (always as
//! gnostic protobuf) to validate kinds the v3 documents do not list, such as a `v1/List`
//! of objects; a kind without a definition is left to the server's field validation, which
//! is where Skiff validates. JSON is served to clients that ask for it.

use serde_json::{json, Value};

use super::discovery::GIT_VERSION;

/// The media type of the protobuf answer (kubectl asks for the older `...spec.v2@v1.0+protobuf`,
/// which Go's media-type parser rejects in a response).
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

const TITLE: &str = "Kubernetes";

pub fn json() -> Value {
    json!({"swagger": "2.0", "info": {"title": TITLE, "version": GIT_VERSION},
           "paths": {}, "definitions": {}})
}

/// A length-delimited protobuf field.
fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
    out.push((number << 3) | 2);
    let mut len = bytes.len();
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(bytes);
}

/// The same document as gnostic's `openapi.v2.Document`: `swagger` (1) and `info` (2:
/// `title` 1, `version` 2).
pub fn protobuf() -> Vec<u8> {
    let mut info = Vec::new();
    field(&mut info, 1, TITLE.as_bytes());
    field(&mut info, 2, GIT_VERSION.as_bytes());
    let mut doc = Vec::new();
    field(&mut doc, 1, b"2.0");
    field(&mut doc, 2, &info);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_swagger_and_info() {
        let doc = protobuf();
        assert_eq!(&doc[..5], b"\x0a\x032.0");
        assert_eq!(doc[5], 0x12);
        assert_eq!(usize::from(doc[6]), doc.len() - 7);
        assert_eq!(&doc[7..9], b"\x0a\x0a");
        assert_eq!(&doc[9..19], TITLE.as_bytes());
        assert_eq!(json()["swagger"], "2.0");
    }
}
