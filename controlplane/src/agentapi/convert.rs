//! JSON on the wire and Kubernetes errors as gRPC statuses.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Code, Status};

use crate::api::ApiError;

/// The gRPC code of a Kubernetes error (by HTTP code and reason).
pub fn code_of(e: &ApiError) -> Code {
    match (e.code, e.reason) {
        (404, _) => Code::NotFound,
        (409, "AlreadyExists") => Code::AlreadyExists,
        (409, _) => Code::Aborted,
        (410, _) => Code::OutOfRange,
        (400 | 422, _) => Code::InvalidArgument,
        (401, _) => Code::Unauthenticated,
        (403, _) => Code::PermissionDenied,
        (405 | 406 | 415, _) => Code::Unimplemented,
        (429, _) => Code::ResourceExhausted,
        (503, _) => Code::Unavailable,
        (504, _) => Code::DeadlineExceeded,
        (500, _) => Code::Internal,
        _ => Code::Unknown,
    }
}

/// A Kubernetes error as a status carrying the Kubernetes message (which names the object
/// and, for validation, every field path).
pub fn status(e: ApiError) -> Status {
    Status::new(code_of(&e), e.message)
}

/// Decode `what` (e.g. "the Node") from request JSON.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Status> {
    serde_json::from_slice(bytes)
        .map_err(|e| Status::invalid_argument(format!("decoding {what} from JSON: {e}")))
}

/// Encode an object for a reply.
pub fn encode<T: Serialize>(obj: &T) -> Result<Vec<u8>, Status> {
    serde_json::to_vec(obj).map_err(|e| Status::internal(format!("encoding a reply: {e}")))
}

/// A required string field of a request.
pub fn required<'a>(value: &'a str, field: &str) -> Result<&'a str, Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!("{field}: Required value")))
    } else {
        Ok(value)
    }
}

/// A resourceVersion from a request (`""`: none).
pub fn resource_version(rv: &str) -> Result<Option<u64>, Status> {
    match rv {
        "" => Ok(None),
        rv => rv.parse().map(Some).map_err(|_| {
            Status::invalid_argument(format!("invalid resourceVersion {rv:?}: not a number"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_errors_map_to_grpc_codes() {
        let cases = [
            (ApiError::new(404, "NotFound", "x"), Code::NotFound),
            (
                ApiError::new(409, "AlreadyExists", "x"),
                Code::AlreadyExists,
            ),
            (ApiError::new(409, "Conflict", "x"), Code::Aborted),
            (
                ApiError::expired("too old resource version"),
                Code::OutOfRange,
            ),
            (ApiError::new(422, "Invalid", "x"), Code::InvalidArgument),
            (ApiError::bad_request("x"), Code::InvalidArgument),
            (ApiError::unavailable("x"), Code::Unavailable),
            (ApiError::internal("x"), Code::Internal),
        ];
        for (e, want) in cases {
            let msg = e.message.clone();
            let s = status(e);
            assert_eq!((s.code(), s.message()), (want, msg.as_str()));
        }
    }

    #[test]
    fn resource_versions_parse_or_are_rejected() {
        assert_eq!(resource_version("").unwrap(), None);
        assert_eq!(resource_version("42").unwrap(), Some(42));
        let e = resource_version("x1").unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("\"x1\""), "{}", e.message());
    }

    #[test]
    fn bad_json_is_invalid_argument_naming_the_object() {
        let e = decode::<serde_json::Value>(b"{", "the Node").unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(
            e.message().starts_with("decoding the Node"),
            "{}",
            e.message()
        );
    }
}
