//! Helpers for rkyv-archived payloads. The engine derives its record types
//! with `#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]`
//! (through this crate's re-export, so both agree on the version), encodes
//! them with [`encode`] and, after recovery, reads them in place with
//! [`access`]: recovered payloads are 16-byte aligned in the segment map.

pub use rkyv;

use rkyv::api::high::{HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;

use crate::error::{Error, Result};

/// An encoded payload, aligned so that it can also be accessed in place.
#[derive(Debug, Default, Clone)]
pub struct Aligned(AlignedVec);

impl PartialEq for Aligned {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Aligned {}

impl Aligned {
    pub(crate) fn from_vec(bytes: AlignedVec) -> Self {
        Aligned(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl std::ops::Deref for Aligned {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// Archives `value` into bytes to pass as a record payload.
pub fn encode<T>(value: &T) -> Result<Aligned>
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    rkyv::to_bytes::<rancor::Error>(value)
        .map(Aligned)
        .map_err(|e| Error::Payload(e.to_string()))
}

/// Validates `bytes` and returns the archived value inside, without copying.
/// `bytes` must be aligned for the archive (recovered payloads are).
pub fn access<T>(bytes: &[u8]) -> Result<&T::Archived>
where
    T: rkyv::Archive,
    T::Archived: rkyv::Portable + for<'a> CheckBytes<HighValidator<'a, rancor::Error>>,
{
    rkyv::access::<T::Archived, rancor::Error>(bytes).map_err(|e| Error::Payload(e.to_string()))
}
