//! On-disk byte layout. `wal/FORMAT.md` describes the same layout in prose;
//! keep the two in step. All integers are little-endian.
//!
//! ```text
//! segment file  = header(64) | frame* | (seal | unwritten bytes)
//! header        = magic "PRGNWAL\0" (8) | version u16 (=2) | header_len u16 (=64)
//!               | reserved u32 | base_lsn u64 | capacity u64 | created_ms u64
//!               | segment_bytes u64 | reserved (12) | crc32c(header[0..60]) u32
//! record frame  = len u32 | crc u32 | kind u16 | flags u8 | space u8
//!               | time_secs u32 | id u128 | payload (len) | zero pad to 16
//!                 crc = crc32c(seed, frame[8..32] ++ payload)
//! commit marker = 0xFFFF_FFFF u32 | crc u32 | first_lsn u64 | count u32
//!               | records_crc u32 | durable_lsn u64
//!                 crc = crc32c(seed, marker[0..4] ++ marker[8..32])
//!                 records_crc = crc32c(seed, crc of each record of the batch, in order)
//! seal          = 0xFFFF_FFFE u32 | crc u32 | next_lsn u64 | zero (16)
//!                 crc = crc32c(seed, seal[0..4] ++ seal[8..32])
//! seed          = crc32c(base_lsn as u64 le)
//! ```
//!
//! Format 1 left the tag out of the marker's and the seal's checksums, so
//! that one flipped bit of a marker's tag made a valid seal; `check` still
//! reads format 1 that way.
//!
//! ```text
//! ```
//!
//! What the segment files cannot say about themselves (which LSN ranges
//! truncation removed on purpose, which LSNs were durable when the log was
//! last opened or closed) is in the directory's manifest (`manifest.rs`).
//!
//! Every frame starts at a multiple of 16, so an rkyv payload (alignment up to
//! 16) can be read in place from the map. Seeding every checksum with the
//! segment's base LSN makes bytes left over from a recycled file's earlier
//! life fail their checksum instead of passing for new records.

/// Magic at the start of every segment file.
pub(crate) const MAGIC: [u8; 8] = *b"PRGNWAL\0";
/// Format version written by this build. Version 2 segments are laid out as
/// version 1 ones; what changed is the directory: version 2 keeps a manifest
/// (`manifest.rs`) that every open, close and truncation updates, so that a
/// missing segment can be told from one truncation removed. A build of
/// version 1 would remove segments without saying so, hence the bump.
///
/// Version 3 adds terminal records that span frames ([`FLAG_CONTINUES`]):
/// a build of version 2 would read each part as a terminal record of its
/// own. Version 2 segments have none, and are read as they are.
pub(crate) const VERSION: u16 = 3;
/// The format before spanning terminal records: read as it is.
pub(crate) const VERSION_2: u16 = 2;
/// The format of the first builds: read (never written) by `check`, so that
/// an operator can still export what an older data folder holds.
pub(crate) const VERSION_1: u16 = 1;
/// Size of the segment header; the first frame starts here.
pub(crate) const HEADER_LEN: u64 = 64;
/// Size of a record frame's header; the payload starts here.
pub(crate) const FRAME_HEADER_LEN: u64 = 32;
/// Size of a commit marker and of a seal.
pub(crate) const MARKER_LEN: u64 = 32;
/// Frames start at multiples of this.
pub(crate) const ALIGN: u64 = 16;
/// First word of a commit marker. Record lengths never reach it.
pub(crate) const MARKER_TAG: u32 = 0xFFFF_FFFF;
/// First word of a seal.
pub(crate) const SEAL_TAG: u32 = 0xFFFF_FFFE;
/// Largest payload the format can express; `Config::max_record_bytes` is lower.
pub(crate) const MAX_PAYLOAD: u32 = 0xFFFF_0000;

/// Frame flag: the record is terminal for its key.
pub(crate) const FLAG_TERMINAL: u8 = 1;
/// Frame flag: truncation copied this record forward from an older segment.
pub(crate) const FLAG_COPIED: u8 = 2;
/// Frame flag (format 3): this terminal record continues in the next frame.
/// A terminal record larger than `Config::max_record_bytes` is written as a
/// span of frames, in one batch, one after the other: all of its key, kind
/// and time, all terminal, all of `max_record_bytes` but the last, all but
/// the last flagged. Its payload is theirs, joined; its LSN the last one's.
pub(crate) const FLAG_CONTINUES: u8 = 4;

/// Frame lengths of a span of `total` payload bytes cut into parts of
/// `part` bytes (the last one shorter): what a terminal record takes.
pub(crate) fn span_parts(total: usize, part: usize) -> impl Iterator<Item = usize> {
    let part = part.max(1);
    let parts = total.div_ceil(part).max(1);
    (0..parts).map(move |i| part.min(total - i * part))
}

/// Framed bytes of a span of `total` payload bytes in parts of `part`.
pub(crate) fn span_len(total: usize, part: usize) -> u64 {
    span_parts(total, part).map(frame_len).sum()
}

/// Reads the terminal record whose first frame starts `bytes` (of a
/// segment seeded `seed`), spanning frames or not: its first header (with
/// the flags of its first frame) and its payload, joined. `Err` says what
/// does not verify.
pub(crate) fn read_span(
    bytes: &[u8],
    seed: u32,
    space: u8,
    id: u128,
) -> Result<(FrameHeader, rkyv::util::AlignedVec<16>), &'static str> {
    let mut at = 0usize;
    let mut first: Option<FrameHeader> = None;
    let mut payload = rkyv::util::AlignedVec::<16>::new();
    loop {
        let Frame::Record { header, .. } = parse_frame(bytes, at, seed) else {
            return Err("a frame of the terminal record does not verify");
        };
        if header.space != space
            || header.id != id
            || header.flags & FLAG_TERMINAL == 0
            || first.is_some_and(|f| f.kind != header.kind || f.time_secs != header.time_secs)
        {
            return Err("a frame of the terminal record belongs to another record");
        }
        let start = at + FRAME_HEADER_LEN as usize;
        payload.extend_from_slice(&bytes[start..start + header.len as usize]);
        at += frame_len(header.len as usize) as usize;
        first.get_or_insert(header);
        if header.flags & FLAG_CONTINUES == 0 {
            break;
        }
    }
    let mut header = first.ok_or("no frame")?;
    header.len = u32::try_from(payload.len()).map_err(|_| "span too long")?;
    Ok((header, payload))
}

/// Bytes a record with `payload_len` payload bytes occupies, padding included.
pub(crate) fn frame_len(payload_len: usize) -> u64 {
    align_up(FRAME_HEADER_LEN + payload_len as u64)
}

pub(crate) fn align_up(n: u64) -> u64 {
    n.div_ceil(ALIGN) * ALIGN
}

pub(crate) fn seed(base_lsn: u64) -> u32 {
    crc32c::crc32c(&base_lsn.to_le_bytes())
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut w = [0u8; 2];
    w.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(w)
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}
fn u128_at(b: &[u8], at: usize) -> u128 {
    let mut w = [0u8; 16];
    w.copy_from_slice(&b[at..at + 16]);
    u128::from_le_bytes(w)
}

/// The segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// [`VERSION`], [`VERSION_2`] or [`VERSION_1`]; `encode` always writes
    /// [`VERSION`].
    pub version: u16,
    pub base_lsn: u64,
    pub capacity: u64,
    pub created_ms: u64,
    /// The WAL's largest segment size (`Config::segment_bytes`) when the
    /// segment was started: segments grow up to it, so `capacity` may be
    /// less. 0 in files written before segments grew (then: `capacity`).
    pub segment_bytes: u64,
}

/// Why a header did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderError {
    Short,
    Magic,
    Checksum,
    Version(u16),
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut b = [0u8; HEADER_LEN as usize];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&VERSION.to_le_bytes());
        b[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        b[16..24].copy_from_slice(&self.base_lsn.to_le_bytes());
        b[24..32].copy_from_slice(&self.capacity.to_le_bytes());
        b[32..40].copy_from_slice(&self.created_ms.to_le_bytes());
        b[40..48].copy_from_slice(&self.segment_bytes.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, HeaderError> {
        let Some(b) = b.get(..HEADER_LEN as usize) else {
            return Err(HeaderError::Short);
        };
        if b[0..8] != MAGIC {
            return Err(HeaderError::Magic);
        }
        if crc32c::crc32c(&b[0..60]) != u32_at(b, 60) {
            return Err(HeaderError::Checksum);
        }
        let version = u16_at(b, 8);
        if version != VERSION && version != VERSION_2 && version != VERSION_1 {
            return Err(HeaderError::Version(version));
        }
        Ok(SegmentHeader {
            version,
            base_lsn: u64_at(b, 16),
            capacity: u64_at(b, 24),
            created_ms: u64_at(b, 32),
            segment_bytes: u64_at(b, 40),
        })
    }

    /// The WAL's largest segment size when this segment was started.
    pub(crate) fn largest(&self) -> u64 {
        if self.segment_bytes == 0 {
            self.capacity
        } else {
            self.segment_bytes.max(self.capacity)
        }
    }
}

/// The fixed part of a record frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub len: u32,
    pub kind: u16,
    pub flags: u8,
    pub space: u8,
    pub time_secs: u32,
    pub id: u128,
}

impl FrameHeader {
    /// Encodes the header and returns it with the frame's checksum filled in.
    pub(crate) fn encode(
        &self,
        seed: u32,
        payload: &[u8],
    ) -> ([u8; FRAME_HEADER_LEN as usize], u32) {
        let mut b = [0u8; FRAME_HEADER_LEN as usize];
        b[0..4].copy_from_slice(&self.len.to_le_bytes());
        b[8..10].copy_from_slice(&self.kind.to_le_bytes());
        b[10] = self.flags;
        b[11] = self.space;
        b[12..16].copy_from_slice(&self.time_secs.to_le_bytes());
        b[16..32].copy_from_slice(&self.id.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c_append(seed, &b[8..32]), payload);
        b[4..8].copy_from_slice(&crc.to_le_bytes());
        (b, crc)
    }
}

/// The commit marker that closes a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    pub first_lsn: u64,
    pub count: u32,
    pub records_crc: u32,
    pub durable_lsn: u64,
}

impl Marker {
    pub(crate) fn encode(&self, seed: u32) -> [u8; MARKER_LEN as usize] {
        let mut b = [0u8; MARKER_LEN as usize];
        b[0..4].copy_from_slice(&MARKER_TAG.to_le_bytes());
        b[8..16].copy_from_slice(&self.first_lsn.to_le_bytes());
        b[16..20].copy_from_slice(&self.count.to_le_bytes());
        b[20..24].copy_from_slice(&self.records_crc.to_le_bytes());
        b[24..32].copy_from_slice(&self.durable_lsn.to_le_bytes());
        let crc = control_crc(seed, &b, VERSION);
        b[4..8].copy_from_slice(&crc.to_le_bytes());
        b
    }
}

/// The checksum of a commit marker or a seal (`b` is its 32 bytes): its
/// tag, then bytes 8..32 (format 1: bytes 8..32 only).
fn control_crc(seed: u32, b: &[u8], version: u16) -> u32 {
    let tagged = if version == VERSION_1 {
        seed
    } else {
        crc32c::crc32c_append(seed, &b[0..4])
    };
    crc32c::crc32c_append(tagged, &b[8..32])
}

/// What a 16-byte-aligned position in a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A record whose checksum verified. `crc` feeds the batch checksum.
    Record { header: FrameHeader, crc: u32 },
    /// A commit marker whose checksum verified.
    Marker(Marker),
    /// A seal whose checksum verified: the segment ends here.
    Seal { next_lsn: u64 },
    /// Thirty-two zero bytes: never written.
    Zero,
    /// Anything else: torn, stale or damaged bytes.
    Bad(&'static str),
}

/// Parses the frame at `at` in `seg` (the whole segment image) of this
/// build's format. Never reads outside `seg`, whatever the bytes say.
pub(crate) fn parse_frame(seg: &[u8], at: usize, seed: u32) -> Frame {
    parse_frame_of(seg, at, seed, VERSION)
}

/// [`parse_frame`] for a segment of format `version`.
pub(crate) fn parse_frame_of(seg: &[u8], at: usize, seed: u32, version: u16) -> Frame {
    let Some(h) = seg.get(at..at.saturating_add(FRAME_HEADER_LEN as usize)) else {
        return Frame::Bad("frame header runs past the end of the file");
    };
    let tag = u32_at(h, 0);
    let crc = u32_at(h, 4);
    match tag {
        MARKER_TAG => {
            if control_crc(seed, h, version) != crc {
                return Frame::Bad("commit marker checksum mismatch");
            }
            Frame::Marker(Marker {
                first_lsn: u64_at(h, 8),
                count: u32_at(h, 16),
                records_crc: u32_at(h, 20),
                durable_lsn: u64_at(h, 24),
            })
        }
        SEAL_TAG => {
            if control_crc(seed, h, version) != crc {
                return Frame::Bad("seal checksum mismatch");
            }
            Frame::Seal {
                next_lsn: u64_at(h, 8),
            }
        }
        len => {
            if len == 0 && h.iter().all(|&b| b == 0) {
                return Frame::Zero;
            }
            if len > MAX_PAYLOAD {
                return Frame::Bad("record length out of range");
            }
            let start = at + FRAME_HEADER_LEN as usize;
            let Some(payload) = seg.get(start..start.saturating_add(len as usize)) else {
                return Frame::Bad("record runs past the end of the file");
            };
            let computed = crc32c::crc32c_append(crc32c::crc32c_append(seed, &h[8..32]), payload);
            if computed != crc {
                return Frame::Bad("record checksum mismatch");
            }
            Frame::Record {
                header: FrameHeader {
                    len,
                    kind: u16_at(h, 8),
                    flags: h[10],
                    space: h[11],
                    time_secs: u32_at(h, 12),
                    id: u128_at(h, 16),
                },
                crc,
            }
        }
    }
}

pub(crate) fn encode_seal(seed: u32, next_lsn: u64) -> [u8; MARKER_LEN as usize] {
    let mut b = [0u8; MARKER_LEN as usize];
    b[0..4].copy_from_slice(&SEAL_TAG.to_le_bytes());
    b[8..16].copy_from_slice(&next_lsn.to_le_bytes());
    let crc = control_crc(seed, &b, VERSION);
    b[4..8].copy_from_slice(&crc.to_le_bytes());
    b
}

/// File name of the segment whose first LSN is `base`: zero-padded so that
/// names sort in LSN order.
pub(crate) fn segment_name(base: u64) -> String {
    format!("{base:020}.wal")
}

/// The base LSN encoded in a segment file name, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Spare (pre-created or recycled) files wait under these names.
pub(crate) fn spare_name(n: u64) -> String {
    format!("spare-{n:020}.tmp")
}

pub(crate) fn parse_spare_name(name: &str) -> Option<u64> {
    name.strip_prefix("spare-")?
        .strip_suffix(".tmp")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = SegmentHeader {
            version: VERSION,
            base_lsn: 42,
            capacity: 1 << 20,
            created_ms: 7,
            segment_bytes: 64 << 20,
        };
        let mut b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        b[17] ^= 1;
        assert_eq!(SegmentHeader::decode(&b), Err(HeaderError::Checksum));
        assert_eq!(SegmentHeader::decode(&b[..10]), Err(HeaderError::Short));
    }

    #[test]
    fn record_frame_verifies_only_with_its_segment_seed() {
        let payload = b"hello";
        let fh = FrameHeader {
            len: 5,
            kind: 3,
            flags: FLAG_TERMINAL,
            space: 0,
            time_secs: 9,
            id: 0xABCD,
        };
        let (h, crc) = fh.encode(seed(1), payload);
        let mut seg = h.to_vec();
        seg.extend_from_slice(payload);
        assert_eq!(
            parse_frame(&seg, 0, seed(1)),
            Frame::Record { header: fh, crc }
        );
        assert!(matches!(parse_frame(&seg, 0, seed(2)), Frame::Bad(_)));
        // A length that points past the end is refused, not followed.
        seg[0..4].copy_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(parse_frame(&seg, 0, seed(1)), Frame::Bad(_)));
        assert!(matches!(parse_frame(&seg, 30, seed(1)), Frame::Bad(_)));
    }

    #[test]
    fn a_flipped_tag_never_turns_a_marker_into_a_seal() {
        let m = Marker {
            first_lsn: 5,
            count: 1,
            records_crc: 7,
            durable_lsn: 4,
        };
        let mut b = m.encode(seed(1));
        assert_eq!(parse_frame(&b, 0, seed(1)), Frame::Marker(m));
        b[0] ^= 1; // 0xFFFF_FFFF -> 0xFFFF_FFFE, the seal's tag
        assert!(matches!(parse_frame(&b, 0, seed(1)), Frame::Bad(_)));
        // Format 1 could not tell.
        let v1 = {
            let mut b = [0u8; MARKER_LEN as usize];
            b[0..4].copy_from_slice(&SEAL_TAG.to_le_bytes());
            b[8..16].copy_from_slice(&5u64.to_le_bytes());
            let crc = control_crc(seed(1), &b, VERSION_1);
            b[4..8].copy_from_slice(&crc.to_le_bytes());
            b
        };
        assert_eq!(
            parse_frame_of(&v1, 0, seed(1), VERSION_1),
            Frame::Seal { next_lsn: 5 }
        );
        assert!(matches!(parse_frame(&v1, 0, seed(1)), Frame::Bad(_)));
    }

    #[test]
    fn names_sort_in_lsn_order() {
        assert_eq!(parse_segment_name(&segment_name(123)), Some(123));
        assert!(segment_name(9) < segment_name(10));
        assert_eq!(parse_segment_name("123.wal"), None);
        assert_eq!(parse_spare_name(&spare_name(5)), Some(5));
    }
}
