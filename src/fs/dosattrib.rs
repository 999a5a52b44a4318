//! Samba's `user.DOSATTRIB` blob: just enough of it to show cold files as
//! offline to SMB clients.
//!
//! Samba (`store dos attributes = yes`, the default) keeps a file's DOS
//! attributes in the xattr `user.DOSATTRIB`, an NDR encoding of
//! `xattr_DOSATTRIB` (Samba's `librpc/idl/xattr.idl`, `ndr_xattr.c`):
//!
//! ```text
//! attrib_hex   ASCII, NUL-terminated ("" from Samba 4.9 on, "0x20" before)
//! (pad to 2)
//! version      u16 LE: 1..=5; absent = "compat": attrib_hex is all there is
//! level        u16 LE, equal to version (the union's discriminant)
//! (pad to 4)
//! info         v1: attrib u32, ...
//!              v2: flags u32, attrib u32, ...
//!              v3, v4, v5: valid_flags u32, attrib u32, ... (attrib counts
//!              only if valid_flags has XATTR_DOSINFO_ATTRIB = 1)
//! ```
//!
//! Samba 4.17 writes version 5 (24 bytes):
//! `00 00 | 05 00 | 05 00 | 00 00 | valid_flags | attrib | create_time`.
//!
//! The mount shows a stub's blob with [`COLD_BITS`] merged in
//! ([`with_cold_bits`]) and never stores them ([`without_cold_bits`]). A blob
//! this module cannot read is passed through unchanged: Samba could not read
//! it either, and it is the user's data.

use std::borrow::Cow;

/// The xattr Samba reads DOS attributes from.
pub const NAME: &str = "user.DOSATTRIB";

/// `FILE_ATTRIBUTE_OFFLINE`: the data is not available locally.
pub const FILE_ATTRIBUTE_OFFLINE: u32 = 0x1000;
/// `FILE_ATTRIBUTE_RECALL_ON_DATA_ACCESS`: reading the data fetches it from
/// remote storage (Samba 4.17 drops it, Windows honours it).
pub const FILE_ATTRIBUTE_RECALL_ON_DATA_ACCESS: u32 = 0x0040_0000;
/// What a cold file adds to its attributes, and what is never stored.
pub const COLD_BITS: u32 = FILE_ATTRIBUTE_OFFLINE | FILE_ATTRIBUTE_RECALL_ON_DATA_ACCESS;

/// `XATTR_DOSINFO_ATTRIB` in `valid_flags` (versions 3 to 5).
const VALID_ATTRIB: u32 = 0x1;

/// A blob read far enough to change its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Blob {
    /// `attrib_hex` without its NUL.
    hex: Vec<u8>,
    /// Absent for the compat form (the hex string alone).
    body: Option<Body>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Body {
    version: u16,
    /// The union arm, from its 4-aligned start to the end of the blob
    /// (trailing bytes included, kept as they are).
    info: Vec<u8>,
}

fn align(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Parses `attrib_hex` as Samba's compat reader does (`sscanf("%x")`),
/// strictly: an optional `0x`, then 1 to 8 hex digits.
fn parse_hex(hex: &[u8]) -> Option<u32> {
    let digits = hex
        .strip_prefix(b"0x")
        .or_else(|| hex.strip_prefix(b"0X"))
        .unwrap_or(hex);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

impl Body {
    /// Where `attrib` sits in the arm, and the arm's minimum length.
    fn layout(version: u16) -> Option<(usize, usize)> {
        match version {
            // attrib, ea_size, size, alloc_size, create_time, change_time
            1 => Some((0, 40)),
            // flags, attrib, ea_size, size, alloc_size, 3 times, name
            2 => Some((4, 53)),
            // valid_flags, attrib, ea_size, size, alloc_size, create_time
            3 => Some((4, 36)),
            // valid_flags, attrib, itime, create_time
            4 => Some((4, 24)),
            // valid_flags, attrib, create_time
            5 => Some((4, 16)),
            _ => None,
        }
    }

    fn has_valid_flags(&self) -> bool {
        self.version >= 3
    }

    /// The attributes, or `None` if the blob says they are not set.
    fn attrib(&self) -> Option<u32> {
        let (at, _) = Self::layout(self.version)?;
        if self.has_valid_flags() && u32_at(&self.info, 0)? & VALID_ATTRIB == 0 {
            return None;
        }
        u32_at(&self.info, at)
    }

    fn set_attrib(&mut self, attrib: u32) {
        let (at, _) = Self::layout(self.version).expect("parsed bodies have a layout");
        if self.has_valid_flags() {
            let flags = u32_at(&self.info, 0).expect("parsed bodies are long enough");
            put_u32(&mut self.info, 0, flags | VALID_ATTRIB);
        }
        put_u32(&mut self.info, at, attrib);
    }
}

impl Blob {
    fn parse(raw: &[u8]) -> Option<Blob> {
        let nul = raw.iter().position(|&b| b == 0)?;
        let hex = &raw[..nul];
        if !hex.is_ascii() {
            return None;
        }
        let hex_end = nul + 1;
        if hex_end == raw.len() {
            parse_hex(hex)?;
            return Some(Blob {
                hex: hex.to_vec(),
                body: None,
            });
        }
        let at = align(hex_end, 2);
        let version = u16_at(raw, at)?;
        let level = u16_at(raw, at + 2)?;
        if level != version {
            return None;
        }
        let (_, min_len) = Body::layout(version)?;
        let info = raw.get(align(at + 4, 4)..)?;
        if info.len() < min_len {
            return None;
        }
        Some(Blob {
            hex: hex.to_vec(),
            body: Some(Body {
                version,
                info: info.to_vec(),
            }),
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = self.hex.clone();
        out.push(0);
        if let Some(body) = &self.body {
            out.resize(align(out.len(), 2), 0);
            out.extend_from_slice(&body.version.to_le_bytes());
            out.extend_from_slice(&body.version.to_le_bytes());
            out.resize(align(out.len(), 4), 0);
            out.extend_from_slice(&body.info);
        }
        out
    }

    /// The attributes, or `None` if the blob holds none.
    fn attrib(&self) -> Option<u32> {
        match &self.body {
            Some(body) => body.attrib(),
            None => parse_hex(&self.hex),
        }
    }

    fn set_attrib(&mut self, attrib: u32) {
        // Samba mirrors the attributes into a non-empty hex string (versions
        // 1 to 3, and the compat form); keep the mirror true.
        if self.body.is_none() || !self.hex.is_empty() {
            self.hex = format!("0x{attrib:x}").into_bytes();
        }
        if let Some(body) = &mut self.body {
            body.set_attrib(attrib);
        }
    }
}

/// A version 5 blob holding only `attrib` (no creation time: Samba then
/// takes it from the file).
fn minimal(attrib: u32) -> Vec<u8> {
    let mut info = vec![0u8; 16];
    put_u32(&mut info, 0, VALID_ATTRIB);
    put_u32(&mut info, 4, attrib);
    Blob {
        hex: Vec::new(),
        body: Some(Body { version: 5, info }),
    }
    .encode()
}

/// What a cold file shows: `stored` (the file's own blob, if it has one)
/// with [`COLD_BITS`] set, or a minimal blob with just them. A stored blob
/// that cannot be read is returned unchanged.
pub fn with_cold_bits(stored: Option<&[u8]>) -> Cow<'_, [u8]> {
    let Some(stored) = stored else {
        return Cow::Owned(minimal(COLD_BITS));
    };
    let Some(mut blob) = Blob::parse(stored) else {
        return Cow::Borrowed(stored);
    };
    match blob.attrib() {
        Some(a) if a & COLD_BITS == COLD_BITS => Cow::Borrowed(stored),
        a => {
            blob.set_attrib(a.unwrap_or(0) | COLD_BITS);
            Cow::Owned(blob.encode())
        }
    }
}

/// What is stored when a client writes `value`: the same blob without
/// [`COLD_BITS`] (a value that cannot be read is stored unchanged).
pub fn without_cold_bits(value: &[u8]) -> Cow<'_, [u8]> {
    let Some(mut blob) = Blob::parse(value) else {
        return Cow::Borrowed(value);
    };
    match blob.attrib() {
        Some(a) if a & COLD_BITS != 0 => {
            blob.set_attrib(a & !COLD_BITS);
            Cow::Owned(blob.encode())
        }
        _ => Cow::Borrowed(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The blob measured in `test-infra.md` 6.3: v5, ARCHIVE | OFFLINE |
    /// RECALL_ON_DATA_ACCESS, with a creation time.
    const MEASURED: &str = "000005000500000011000000201040005bfd0e14ef85dd01";
    /// The same as Samba writes it for a plain archived file (0x20).
    const ARCHIVE_V5: &str = "000005000500000011000000200000005bfd0e14ef85dd01";

    fn attrib_of(raw: &[u8]) -> Option<u32> {
        Blob::parse(raw).and_then(|b| b.attrib())
    }

    #[test]
    fn reads_the_blob_samba_writes() {
        let b = Blob::parse(&unhex(MEASURED)).unwrap();
        assert_eq!(b.hex, b"");
        assert_eq!(b.body.as_ref().unwrap().version, 5);
        assert_eq!(b.attrib(), Some(0x0040_1020));
        assert_eq!(b.encode(), unhex(MEASURED), "re-encodes byte for byte");
    }

    #[test]
    fn merging_into_a_v5_blob_gives_the_measured_blob() {
        let stored = unhex(ARCHIVE_V5);
        assert_eq!(with_cold_bits(Some(&stored)).into_owned(), unhex(MEASURED));
        // Already cold: the very bytes.
        let measured = unhex(MEASURED);
        assert!(matches!(
            with_cold_bits(Some(&measured)),
            Cow::Borrowed(b) if b == measured.as_slice()
        ));
    }

    #[test]
    fn stripping_undoes_merging() {
        let stored = unhex(ARCHIVE_V5);
        let shown = with_cold_bits(Some(&stored)).into_owned();
        assert_eq!(without_cold_bits(&shown).into_owned(), stored);
        // OFFLINE alone is stripped too; other bits stay.
        let mut offline = stored.clone();
        offline[13] |= 0x10;
        assert_eq!(attrib_of(&offline), Some(0x1020));
        assert_eq!(without_cold_bits(&offline).into_owned(), stored);
        // Nothing to strip: the same bytes.
        assert!(matches!(without_cold_bits(&stored), Cow::Borrowed(_)));
    }

    #[test]
    fn a_file_without_a_blob_gets_a_minimal_v5_one() {
        let b = with_cold_bits(None).into_owned();
        assert_eq!(b, unhex("000005000500000001000000001040000000000000000000"));
        assert_eq!(attrib_of(&b), Some(COLD_BITS));
        // Stripped, it is a valid blob with no attributes set.
        assert_eq!(attrib_of(&without_cold_bits(&b)), Some(0));
    }

    #[test]
    fn an_attrib_not_marked_valid_is_replaced() {
        // v5 whose valid_flags lack ATTRIB (only CREATE_TIME): its attrib
        // field means nothing, so the merged one is just the cold bits.
        let raw = unhex("000005000500000010000000ffffffff5bfd0e14ef85dd01");
        assert_eq!(attrib_of(&raw), None);
        let merged = with_cold_bits(Some(&raw)).into_owned();
        assert_eq!(
            merged,
            unhex("000005000500000011000000001040005bfd0e14ef85dd01")
        );
        // Stripping a blob without valid attributes changes nothing.
        assert!(matches!(without_cold_bits(&raw), Cow::Borrowed(_)));
    }

    #[test]
    fn older_versions_keep_their_hex_mirror_true() {
        // v3 as Samba 4.0-4.8 wrote it: "0x20" then version 3 (the arm at
        // offset 12: hex 5 bytes, pad 1, version, level, pad 2).
        let mut raw = b"0x20\0".to_vec();
        raw.push(0);
        raw.extend_from_slice(&[3, 0, 3, 0, 0, 0]);
        raw.extend_from_slice(&1u32.to_le_bytes()); // valid_flags
        raw.extend_from_slice(&0x20u32.to_le_bytes()); // attrib
        raw.extend_from_slice(&[0u8; 28]); // ea_size, size, alloc, ctime
        assert_eq!(attrib_of(&raw), Some(0x20));
        let merged = with_cold_bits(Some(&raw)).into_owned();
        assert!(merged.starts_with(b"0x401020\0"), "{merged:?}");
        // "0x401020\0" is 9 bytes: pad 1, version at 10, level at 12, pad 2,
        // arm at 16.
        assert_eq!(&merged[9..16], &[0, 3, 0, 3, 0, 0, 0]);
        assert_eq!(attrib_of(&merged), Some(0x0040_1020));
        assert_eq!(without_cold_bits(&merged).into_owned(), raw);

        // v1: attrib first in the arm.
        let mut v1 = b"0x10\0".to_vec();
        v1.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0]);
        v1.extend_from_slice(&0x10u32.to_le_bytes());
        v1.extend_from_slice(&[0u8; 36]);
        assert_eq!(attrib_of(&v1), Some(0x10));
        let merged = with_cold_bits(Some(&v1)).into_owned();
        assert_eq!(attrib_of(&merged), Some(0x1010 | COLD_BITS));
        assert!(merged.starts_with(b"0x401010\0"));
    }

    #[test]
    fn the_compat_hex_form_is_merged_as_hex() {
        assert_eq!(attrib_of(b"0x20\0"), Some(0x20));
        assert_eq!(
            with_cold_bits(Some(b"0x20\0")).into_owned(),
            b"0x401020\0".to_vec()
        );
        assert_eq!(
            without_cold_bits(b"0x401020\0").into_owned(),
            b"0x20\0".to_vec()
        );
    }

    #[test]
    fn malformed_blobs_pass_unchanged_and_never_panic() {
        let bad: Vec<Vec<u8>> = vec![
            vec![],
            b"no nul".to_vec(),
            b"zz\0".to_vec(),                          // compat, not hex
            b"0x123456789\0".to_vec(),                 // compat, too long
            unhex("0000"),                             // hex, then one byte short of a version
            unhex("00000500"),                         // version without level
            unhex("0000050006000000"),                 // level differs from version
            unhex("000009000900000011000000"),         // unknown version
            unhex("00000500050000001100000020104000"), // v5 arm too short
            unhex("0000ffffffff0000"),                 // 0xFFFF is not a stored version
            vec![0xff, 0x00, 5, 0, 5, 0, 0, 0],        // non-ASCII hex string
        ];
        for raw in &bad {
            assert_eq!(Blob::parse(raw), None, "{raw:?}");
            assert_eq!(with_cold_bits(Some(raw)).as_ref(), raw.as_slice());
            assert_eq!(without_cold_bits(raw).as_ref(), raw.as_slice());
        }
        // Every truncation and every single-byte change of a good blob:
        // no panic, and a parse that succeeds re-encodes to a readable blob.
        let good = unhex(MEASURED);
        for len in 0..good.len() {
            let _ = with_cold_bits(Some(&good[..len]));
            let _ = without_cold_bits(&good[..len]);
        }
        for i in 0..good.len() {
            for v in [0u8, 1, 0x30, 0x78, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                let merged = with_cold_bits(Some(&b)).into_owned();
                if Blob::parse(&b).is_some() {
                    assert_eq!(attrib_of(&merged).map(|a| a & COLD_BITS), Some(COLD_BITS));
                }
                let _ = without_cold_bits(&b);
            }
        }
    }

    #[test]
    fn trailing_bytes_are_kept() {
        let mut raw = unhex(ARCHIVE_V5);
        raw.extend_from_slice(b"extra");
        let merged = with_cold_bits(Some(&raw)).into_owned();
        assert!(merged.ends_with(b"extra"));
        assert_eq!(merged.len(), raw.len());
        assert_eq!(without_cold_bits(&merged).into_owned(), raw);
    }
}
