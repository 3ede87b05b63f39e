//! The one place messages become bytes and bytes become messages.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A message that could not be read as the type its subject promises.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what}: {source}")]
pub struct DecodeError {
    pub what: &'static str,
    #[source]
    pub source: serde_json::Error,
}

/// Serializes a message. Our types always serialize; a failure would be a bug
/// in a hand-written `Serialize`, so it degrades to an empty JSON object rather
/// than a panic on the hot path.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    serde_json::to_vec(message).unwrap_or_else(|_| b"{}".to_vec())
}

/// Parses a message of type `T`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(bytes).map_err(|source| DecodeError {
        what: short_type_name::<T>(),
        source,
    })
}

fn short_type_name<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    name.rsplit("::").next().unwrap_or(name)
}
