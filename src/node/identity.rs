//! What a node's data directory remembers about the node itself, in `<data_dir>/identity`:
//!
//! * its **incarnation** (decision 0004 point 7): a random non-zero id created when the node
//!   starts on a data directory without one (a new or a replaced disk). A node joining through
//!   a seed presents it in its `Add`, so the roster can tell a member that forgot its votes
//!   from one that restarted.
//! * the **first configuration** of partition 0: the voters and learners its replica was
//!   opened with on this data directory, decided once, at the first join, and used by every
//!   later join. Partition 0's log governs above it; it matters for what precedes the log's
//!   first configuration entry. A node joining through a seed takes it from the roster the
//!   seed answered, with itself a learner; a restart must not open partition 0 from its
//!   static configuration instead (a joiner without peers would be the only voter of its own
//!   partition 0, and elect itself).
//! * the **admission's roster version** of a data directory admitted through a seed (the
//!   version that added this incarnation, `Member::joined_version`): its replicas withhold
//!   their votes until their partition committed a configuration of that version (decision
//!   0004, "A replaced disk's vote").
//!
//! The file is replaced whole and atomically (`durable_file.rs`). Its encoding
//! (little-endian), checked by a CRC32C:
//!
//! ```text
//! identity := magic "KMID" format:u8 (3) incarnation:u64 origin:u8 admitted? first? crc32c:u32
//! origin   := 0 no join yet | 1 the static configuration | 2 a seed's roster
//! admitted := the admission's roster version:u64 (when origin is 2)
//! first    := a configuration entry's payload (`Configuration::encode`; when origin is 1 or 2)
//! ```
//!
//! Format 2 (the previous version's) is read as well: it has no `admitted`, read as 0 (the
//! votes are not withheld, as that version did not).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use bytes::{Buf, BufMut, BytesMut};

use crate::core::Configuration;
use crate::node::durable_file;

/// The file's name in the data directory.
const FILE: &str = "identity";
const MAGIC: &[u8; 4] = b"KMID";
const FORMAT: u8 = 3;
/// The previous format: no admission's roster version.
const FORMAT_WITHOUT_ADMISSION: u8 = 2;

/// Where a node's first configuration of partition 0 came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The static configuration (`Raft::join_cluster`: this node and its peers, all voters).
    Static,
    /// The roster a seed answered (`Raft::join_cluster_with_seeds`): this node a learner.
    Seed,
}

/// The configuration partition 0 was first opened with on this data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FirstConfiguration {
    pub(crate) configuration: Configuration,
    pub(crate) origin: Origin,
    /// The roster version that admitted this data directory (a seed's roster; 0 for the
    /// static configuration, or when an earlier version did not record it).
    pub(crate) admitted_version: u64,
}

/// The node's identity file, read at start.
#[derive(Debug)]
pub(crate) struct Identity {
    file: PathBuf,
    incarnation: u64,
    first: Mutex<Option<FirstConfiguration>>,
}

impl Identity {
    /// The identity kept under `data_dir`; without one (a new or replaced disk), a new
    /// incarnation, made durable before this returns.
    ///
    /// # Errors
    ///
    /// The file cannot be read or written, or does not hold a valid identity (the error
    /// names the file): the node must not start with an identity it cannot trust.
    pub(crate) fn open(data_dir: &Path) -> std::io::Result<Self> {
        let file = data_dir.join(FILE);
        match std::fs::read(&file) {
            Ok(bytes) => {
                let (incarnation, first) = decode(&bytes).ok_or_else(|| {
                    std::io::Error::other(format!(
                        "{}: not a valid node identity (damaged, or not written by this \
                         version)",
                        file.display()
                    ))
                })?;
                Ok(Self {
                    file,
                    incarnation,
                    first: Mutex::new(first),
                })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let incarnation = getrandom::u64()
                    .map_err(|e| std::io::Error::other(format!("a random incarnation: {e}")))?
                    .max(1);
                durable_file::replace(&file, &encode(incarnation, None))?;
                Ok(Self {
                    file,
                    incarnation,
                    first: Mutex::new(None),
                })
            }
            Err(error) => Err(error),
        }
    }

    /// The incarnation: non-zero, the same for the life of this data directory.
    pub(crate) fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The first configuration of partition 0, once a join decided it.
    pub(crate) fn first(&self) -> Option<FirstConfiguration> {
        self.first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `first` the first configuration of partition 0, durably, unless one was decided
    /// already; returns the one in force (the earlier one wins).
    ///
    /// # Errors
    ///
    /// Writing the file failed: nothing was decided.
    pub(crate) fn decide_first(
        &self,
        first: FirstConfiguration,
    ) -> std::io::Result<FirstConfiguration> {
        let mut known = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = known.as_ref() {
            return Ok(known.clone());
        }
        durable_file::replace(&self.file, &encode(self.incarnation, Some(&first)))?;
        *known = Some(first.clone());
        Ok(first)
    }
}

fn encode(incarnation: u64, first: Option<&FirstConfiguration>) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_slice(MAGIC);
    out.put_u8(FORMAT);
    out.put_u64_le(incarnation);
    match first {
        None => out.put_u8(0),
        Some(first) => {
            match first.origin {
                Origin::Static => out.put_u8(1),
                Origin::Seed => {
                    out.put_u8(2);
                    out.put_u64_le(first.admitted_version);
                }
            }
            out.put_slice(&first.configuration.encode());
        }
    }
    let crc = crc32c::crc32c(&out);
    out.put_u32_le(crc);
    out.to_vec()
}

/// The inverse of [`encode`]; total: `None` for any bytes that are not an encoded identity.
fn decode(bytes: &[u8]) -> Option<(u64, Option<FirstConfiguration>)> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let mut body = body;
    if body.len() < MAGIC.len() + 1 + 8 + 1 || &body[..4] != MAGIC {
        return None;
    }
    body.advance(4);
    let format = body.get_u8();
    if format != FORMAT && format != FORMAT_WITHOUT_ADMISSION {
        return None;
    }
    let incarnation = body.get_u64_le();
    let (origin, admitted_version) = match body.get_u8() {
        0 => return (body.is_empty() && incarnation != 0).then_some((incarnation, None)),
        1 => (Origin::Static, 0),
        2 if format == FORMAT_WITHOUT_ADMISSION => (Origin::Seed, 0),
        2 => (Origin::Seed, body.try_get_u64_le().ok()?),
        _ => return None,
    };
    let configuration = Configuration::decode(body).ok()?;
    (incarnation != 0).then_some((
        incarnation,
        Some(FirstConfiguration {
            configuration,
            origin,
            admitted_version,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::NodeId;

    fn first(voters: &[u64], learners: &[u64], origin: Origin) -> FirstConfiguration {
        let ids = |list: &[u64]| list.iter().copied().map(NodeId).collect();
        FirstConfiguration {
            configuration: Configuration::new(ids(voters), ids(learners)).expect("valid"),
            origin,
            admitted_version: if origin == Origin::Seed { 7 } else { 0 },
        }
    }

    #[test]
    fn an_identity_is_created_once_and_its_first_configuration_decided_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let identity = Identity::open(dir.path()).expect("created");
        let incarnation = identity.incarnation();
        assert_ne!(incarnation, 0);
        assert_eq!(identity.first(), None);
        let seeded = first(&[1, 2], &[4], Origin::Seed);
        assert_eq!(identity.decide_first(seeded.clone()).expect("kept"), seeded);
        let other = first(&[4], &[], Origin::Static);
        assert_eq!(
            identity.decide_first(other).expect("kept"),
            seeded,
            "the first decision stands"
        );
        let again = Identity::open(dir.path()).expect("read back");
        assert_eq!(again.incarnation(), incarnation);
        assert_eq!(again.first(), Some(seeded));
        // A wiped data directory is another incarnation.
        let wiped = tempfile::tempdir().expect("temp dir");
        assert_ne!(
            Identity::open(wiped.path()).expect("new").incarnation(),
            incarnation
        );
    }

    #[test]
    fn every_damaged_identity_is_refused_not_a_panic() {
        let seeded = first(&[1, 2], &[3], Origin::Seed);
        let bytes = encode(42, Some(&seeded));
        assert_eq!(decode(&bytes), Some((42, Some(seeded))));
        assert_eq!(decode(&encode(42, None)), Some((42, None)));
        for len in 0..bytes.len() {
            assert_eq!(decode(&bytes[..len]), None, "cut at {len}");
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert_eq!(decode(&flipped), None, "byte {at} flipped");
        }
        // Well-formed bytes (a valid CRC) that break a rule: unsorted voters, an unknown
        // origin, incarnation 0.
        let sealed = |origin: u8, configuration: &[u8]| {
            let mut out = BytesMut::new();
            out.put_slice(MAGIC);
            out.put_u8(FORMAT);
            out.put_u64_le(42);
            out.put_u8(origin);
            if origin == 2 {
                out.put_u64_le(7);
            }
            out.put_slice(configuration);
            let crc = crc32c::crc32c(&out);
            out.put_u32_le(crc);
            out.to_vec()
        };
        let valid = first(&[1, 2], &[], Origin::Seed).configuration.encode();
        assert!(
            decode(&sealed(2, &valid)).is_some(),
            "the hand-made bytes decode"
        );
        let mut unsorted = valid.to_vec();
        unsorted[9..25].rotate_left(8); // the two voter ids, swapped
        assert_eq!(decode(&sealed(2, &unsorted)), None);
        assert_eq!(decode(&sealed(3, &valid)), None);
        assert_eq!(decode(&encode(0, None)), None);
        // The previous format: no admission's version, read as 0.
        let mut previous = BytesMut::new();
        previous.put_slice(MAGIC);
        previous.put_u8(FORMAT_WITHOUT_ADMISSION);
        previous.put_u64_le(42);
        previous.put_u8(2);
        previous.put_slice(&valid);
        let crc = crc32c::crc32c(&previous);
        previous.put_u32_le(crc);
        let read = decode(&previous).expect("the previous format is read");
        assert_eq!(
            read.1.map(|f| (f.origin, f.admitted_version)),
            Some((Origin::Seed, 0))
        );
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(FILE), b"garbage").expect("write");
        let error = Identity::open(dir.path()).expect_err("refused");
        assert!(error.to_string().contains("identity"), "{error}");
    }
}
