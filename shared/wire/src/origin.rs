//! Where a message on a stream came from: what a dead letter keeps of it,
//! whichever consumer gave it up.

/// A stream message's place and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub stream: String,
    pub consumer: String,
    pub stream_seq: u64,
    pub subject: String,
    pub payload: Vec<u8>,
    /// How often it was delivered.
    pub deliveries: u32,
}
