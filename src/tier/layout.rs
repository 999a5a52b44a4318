//! Where a file's holes are: the data layout a stub answers for.
//!
//! A cold file has no local blocks, so the backing stub would tell
//! `lseek(SEEK_DATA)` that it is all hole and `cp`, `tar --sparse` and
//! `copy_file_range` would copy zeros. Instead a stub answers from the layout
//! the original file had when it was migrated: the holes the file system
//! reported *and* that read back as zeros in the same pass that hashed the
//! content (so a hole can never hide data). A dense file has no holes: it is
//! all data. A recall skips the holes, so a sparse file stays sparse.
//!
//! Stored in the catalog beside the chunk hashes as pairs of little-endian
//! `u64` (start, end) of each hole, sorted and disjoint; empty = dense.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Holes narrower than this are not recorded (ext4 and xfs allocate in
/// 4 KiB blocks; smaller "holes" are zero bytes inside a block).
const MIN_HOLE: u64 = 4096;

/// The holes of one file: sorted, disjoint `[start, end)` ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holes {
    ranges: Vec<(u64, u64)>,
}

impl Holes {
    /// A file with no holes.
    pub fn dense() -> Holes {
        Holes::default()
    }

    /// Whether there is no hole.
    pub fn is_dense(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The hole ranges.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// The catalog encoding (see the module doc); `None` for a dense file.
    pub fn encode(&self) -> Option<Vec<u8>> {
        if self.ranges.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(self.ranges.len() * 16);
        for (s, e) in &self.ranges {
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&e.to_le_bytes());
        }
        Some(out)
    }

    /// Decodes the catalog encoding for a file of `size` bytes. Anything
    /// malformed (odd length, unsorted, overlapping, past the end) reads as
    /// dense: reporting data where a hole was is always safe.
    pub fn decode(bytes: Option<&[u8]>, size: u64) -> Holes {
        let Some(bytes) = bytes else {
            return Holes::dense();
        };
        if bytes.len() % 16 != 0 {
            return Holes::dense();
        }
        let mut ranges = Vec::with_capacity(bytes.len() / 16);
        let mut prev_end = 0u64;
        for pair in bytes.chunks_exact(16) {
            let mut s = [0u8; 8];
            let mut e = [0u8; 8];
            s.copy_from_slice(&pair[..8]);
            e.copy_from_slice(&pair[8..]);
            let (s, e) = (u64::from_le_bytes(s), u64::from_le_bytes(e));
            if s >= e || s < prev_end || e > size {
                return Holes::dense();
            }
            ranges.push((s, e));
            prev_end = e;
        }
        Holes { ranges }
    }

    /// The holes the file system reports for `file` (`size` bytes), by
    /// `SEEK_HOLE`/`SEEK_DATA`. File systems without hole reporting say the
    /// whole file is data.
    pub fn of_file(file: &File, size: u64) -> io::Result<Holes> {
        let fd = file.as_raw_fd();
        let seek = |off: u64, whence: i32| -> io::Result<Option<u64>> {
            let off = libc::off_t::try_from(off)
                .map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
            // SAFETY: lseek on a descriptor we borrow; no memory is passed.
            let r = unsafe { libc::lseek(fd, off, whence) };
            if r < 0 {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::ENXIO) => Ok(None),
                    _ => Err(e),
                };
            }
            Ok(Some(r as u64))
        };
        let mut ranges = Vec::new();
        let mut pos = 0u64;
        while pos < size {
            let Some(hole) = seek(pos, libc::SEEK_HOLE)? else {
                break;
            };
            if hole >= size {
                break;
            }
            let data = seek(hole, libc::SEEK_DATA)?.unwrap_or(size).min(size);
            if data - hole >= MIN_HOLE {
                ranges.push((hole, data));
            }
            if data <= pos {
                break; // no progress: a file system answering oddly
            }
            pos = data;
        }
        Ok(Holes { ranges })
    }

    /// `lseek(SEEK_DATA)` from `offset` in a file of `size` bytes: the first
    /// data byte at or after `offset`, or `None` (ENXIO).
    pub fn seek_data(&self, offset: u64, size: u64) -> Option<u64> {
        if offset >= size {
            return None;
        }
        match self.ranges.iter().find(|(_, e)| *e > offset) {
            Some(&(s, e)) if s <= offset => (e < size).then_some(e),
            _ => Some(offset),
        }
    }

    /// `lseek(SEEK_HOLE)` from `offset` in a file of `size` bytes: the first
    /// hole byte at or after `offset` (the end of the file counts as a
    /// hole), or `None` (ENXIO) at or past the end.
    pub fn seek_hole(&self, offset: u64, size: u64) -> Option<u64> {
        if offset >= size {
            return None;
        }
        match self.ranges.iter().find(|(_, e)| *e > offset) {
            Some(&(s, _)) => Some(s.max(offset)),
            None => Some(size),
        }
    }

    /// The data parts of `[start, end)`: the ranges a recall writes.
    pub fn data_within(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut pos = start;
        for &(s, e) in &self.ranges {
            if e <= pos {
                continue;
            }
            if s >= end {
                break;
            }
            if s > pos {
                out.push((pos, s));
            }
            pos = e.min(end);
        }
        if pos < end {
            out.push((pos, end));
        }
        out
    }
}

/// Checks, during a hash pass that reads a file front to back, that every
/// hole the file system reported reads as zeros: only then are the holes
/// recorded ([`HoleCheck::finish`]).
#[derive(Debug)]
pub struct HoleCheck {
    holes: Holes,
    offset: u64,
    ok: bool,
}

impl HoleCheck {
    /// Starts checking `holes`.
    pub fn new(holes: Holes) -> HoleCheck {
        HoleCheck {
            holes,
            offset: 0,
            ok: true,
        }
    }

    /// Feeds the next bytes read.
    pub fn update(&mut self, data: &[u8]) {
        let start = self.offset;
        let end = start + data.len() as u64;
        self.offset = end;
        if !self.ok || self.holes.is_dense() {
            return;
        }
        for &(s, e) in &self.holes.ranges {
            if e <= start {
                continue;
            }
            if s >= end {
                break;
            }
            let from = (s.max(start) - start) as usize;
            let to = (e.min(end) - start) as usize;
            if data[from..to].iter().any(|&b| b != 0) {
                self.ok = false;
                return;
            }
        }
    }

    /// The holes, if every one read as zeros and the pass read `size`
    /// bytes; otherwise dense.
    pub fn finish(self, size: u64) -> Holes {
        if self.ok && self.offset == size {
            self.holes
        } else {
            Holes::dense()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holes(r: &[(u64, u64)]) -> Holes {
        Holes { ranges: r.to_vec() }
    }

    #[test]
    fn a_dense_file_is_all_data() {
        let h = Holes::dense();
        assert_eq!(h.seek_data(0, 100), Some(0));
        assert_eq!(h.seek_data(99, 100), Some(99));
        assert_eq!(h.seek_data(100, 100), None);
        assert_eq!(h.seek_hole(0, 100), Some(100));
        assert_eq!(h.seek_hole(100, 100), None);
        assert_eq!(h.data_within(0, 100), vec![(0, 100)]);
    }

    #[test]
    fn seeks_answer_like_the_original_sparse_file() {
        // data [0,10) hole [10,50) data [50,60) hole [60,100) (EOF hole)
        let h = holes(&[(10, 50), (60, 100)]);
        assert_eq!(h.seek_data(0, 100), Some(0));
        assert_eq!(h.seek_data(10, 100), Some(50));
        assert_eq!(h.seek_data(49, 100), Some(50));
        assert_eq!(h.seek_data(55, 100), Some(55));
        assert_eq!(h.seek_data(60, 100), None, "only a hole up to EOF");
        assert_eq!(h.seek_hole(0, 100), Some(10));
        assert_eq!(h.seek_hole(20, 100), Some(20));
        assert_eq!(h.seek_hole(50, 100), Some(60));
        assert_eq!(h.seek_hole(99, 100), Some(99));
        assert_eq!(h.data_within(0, 100), vec![(0, 10), (50, 60)]);
        assert_eq!(h.data_within(20, 55), vec![(50, 55)]);
        assert_eq!(h.data_within(12, 40), vec![]);
    }

    #[test]
    fn encoding_round_trips_and_malformed_input_reads_as_dense() {
        let h = holes(&[(4096, 8192), (16384, 20000)]);
        let bytes = h.encode().unwrap();
        assert_eq!(Holes::decode(Some(&bytes), 20000), h);
        assert_eq!(Holes::decode(Some(&bytes), 19999), Holes::dense());
        assert_eq!(Holes::decode(Some(&bytes[1..]), 20000), Holes::dense());
        let backwards = holes(&[(16384, 20000), (4096, 8192)]).encode().unwrap();
        assert_eq!(Holes::decode(Some(&backwards), 20000), Holes::dense());
        assert_eq!(Holes::dense().encode(), None);
        assert_eq!(Holes::decode(None, 5), Holes::dense());
    }

    #[test]
    fn a_hole_that_reads_as_data_is_not_recorded() {
        let mut check = HoleCheck::new(holes(&[(4, 8)]));
        check.update(&[1, 2, 3, 4, 0, 0]);
        check.update(&[0, 0, 9, 9]);
        assert_eq!(check.finish(10), holes(&[(4, 8)]));
        let mut check = HoleCheck::new(holes(&[(4, 8)]));
        check.update(&[1, 2, 3, 4, 0, 7, 0, 0, 9, 9]);
        assert_eq!(check.finish(10), Holes::dense());
        let mut short = HoleCheck::new(holes(&[(4, 8)]));
        short.update(&[0; 6]);
        assert_eq!(short.finish(10), Holes::dense(), "the file changed size");
    }

    #[test]
    fn holes_of_a_real_sparse_file() {
        use std::os::unix::fs::FileExt;
        let dir = std::env::temp_dir().join(format!("tierfs-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sparse");
        let f = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        f.write_all_at(&[7u8; 4096], 0).unwrap();
        f.write_all_at(&[8u8; 4096], 6 << 20).unwrap();
        f.set_len(8 << 20).unwrap();
        let h = Holes::of_file(&f, 8 << 20).unwrap();
        assert_eq!(h.ranges(), &[(4096, 6 << 20), ((6 << 20) + 4096, 8 << 20)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
