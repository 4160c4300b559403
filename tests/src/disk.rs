//! Disk images for the DMA self-tests, and what the kernel must report and leave behind.
//!
//! The kernel reads the first `min(size, 64 MiB)` of every virtio-blk disk and prints the zlib
//! CRC-32 of each MiB (`blk.N.crc.K`, the last one over a partial MiB). On a *scratch* disk
//! (sector 0 starts with [`SCRATCH_LABEL`]) it then copies sectors `[1, N/2)` onto
//! `[N/2 + 1, N)`, sector `s` to `s + N/2`, leaving sectors `0..=N/2` as they were; any other
//! disk is never written. The images here are pseudo-random (xorshift) so that a misplaced,
//! repeated or missing sector changes a CRC.

/// Bytes per sector.
pub const SECTOR: usize = 512;
/// The span of one `blk.N.crc.K` value.
pub const MIB: usize = 1 << 20;
/// How much of a disk the kernel reads and checksums.
pub const READ_LIMIT: usize = 64 * MIB;
/// What marks a disk the kernel may write.
pub const SCRATCH_LABEL: &[u8] = b"PSERIES-DDW-SCRATCH";

/// xorshift64: a small, deterministic pseudo-random generator.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator; a zero seed (a fixed point of xorshift) is replaced.
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// The next 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Fills `buf` with pseudo-random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// `bytes` of pseudo-random data from `seed` (a multiple of the sector size), never starting
/// with [`SCRATCH_LABEL`]: a read-only disk.
pub fn random_image(bytes: usize, seed: u64) -> Vec<u8> {
    assert!(bytes.is_multiple_of(SECTOR) && bytes > 0, "a disk of {bytes} bytes is not whole sectors");
    let mut image = vec![0; bytes];
    XorShift::new(seed).fill(&mut image);
    if image.starts_with(SCRATCH_LABEL) {
        image[0] ^= 0xff;
    }
    image
}

/// A scratch disk: [`random_image`] with sector 0 starting with [`SCRATCH_LABEL`] and a NUL.
pub fn scratch_image(bytes: usize, seed: u64) -> Vec<u8> {
    let mut image = random_image(bytes, seed);
    image[..SCRATCH_LABEL.len()].copy_from_slice(SCRATCH_LABEL);
    image[SCRATCH_LABEL.len()] = 0;
    image
}

/// Whether the kernel may write this disk.
pub fn is_scratch(image: &[u8]) -> bool {
    image.starts_with(SCRATCH_LABEL)
}

/// zlib's CRC-32 of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// The CRC-32 of each MiB of the first `min(len, 64 MiB)` bytes, the last one over what is
/// left: what the kernel prints as `blk.N.crc.K`.
pub fn mib_crcs(image: &[u8]) -> Vec<u32> {
    image[..image.len().min(READ_LIMIT)].chunks(MIB).map(crc32).collect()
}

/// How the kernel prints a CRC: 8 lowercase hex digits.
pub fn crc_text(crc: u32) -> String {
    format!("{crc:08x}")
}

/// Sectors the kernel copies on a scratch disk of `sectors` sectors: `N/2 - 1` (none below 4).
pub fn copied_sectors(sectors: u64) -> u64 {
    (sectors / 2).saturating_sub(1)
}

/// The image the kernel's copy must leave: sector `s` of `original` at `s + N/2` for
/// `s` in `[1, N/2)`, everything else unchanged.
pub fn expected_after_copy(original: &[u8]) -> Vec<u8> {
    assert!(original.len().is_multiple_of(SECTOR), "not whole sectors");
    let sectors = original.len() / SECTOR;
    let half = sectors / 2;
    let mut after = original.to_vec();
    if half > 1 {
        after[(half + 1) * SECTOR..(2 * half) * SECTOR].copy_from_slice(&original[SECTOR..half * SECTOR]);
    }
    after
}

/// Describes the first difference between two images of equal length, by sector, or `None`.
pub fn first_difference(expected: &[u8], actual: &[u8]) -> Option<String> {
    if expected.len() != actual.len() {
        return Some(format!("the image is {} bytes, expected {}", actual.len(), expected.len()));
    }
    let sector = expected.chunks(SECTOR).zip(actual.chunks(SECTOR)).position(|(e, a)| e != a)?;
    let differing = expected.chunks(SECTOR).zip(actual.chunks(SECTOR)).filter(|(e, a)| e != a).count();
    let half = expected.len() / SECTOR / 2;
    let found = actual[sector * SECTOR..(sector + 1) * SECTOR].to_vec();
    // Where did the sector that landed here come from, if it is a copy of another one?
    let source = expected
        .chunks(SECTOR)
        .position(|s| s == found.as_slice())
        .map_or_else(|| "no sector of the expected image".to_string(), |s| format!("sector {s}"));
    Some(format!(
        "{differing} sectors differ; the first is sector {sector} (N/2 = {half}), which holds \
         what the expected image has at {source}"
    ))
}

/// Checks a scratch disk after the run: sectors `[N/2 + 1, N)` hold `[1, N/2)` of the
/// original and everything else is unchanged.
pub fn check_scratch_copy(original: &[u8], after: &[u8]) -> Result<(), String> {
    match first_difference(&expected_after_copy(original), after) {
        None => Ok(()),
        Some(diff) => Err(format!("the scratch copy is wrong: {diff}")),
    }
}

/// Checks a disk the kernel must not have written.
pub fn check_unchanged(original: &[u8], after: &[u8]) -> Result<(), String> {
    match first_difference(original, after) {
        None => Ok(()),
        Some(diff) => Err(format!("a read-only disk was written: {diff}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926, "the standard check value");
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc_text(0x0012_abcd), "0012abcd");
    }

    #[test]
    fn images_are_deterministic_and_labelled() {
        let a = scratch_image(8 * SECTOR, 7);
        assert_eq!(a, scratch_image(8 * SECTOR, 7));
        assert_ne!(a, scratch_image(8 * SECTOR, 8));
        assert!(is_scratch(&a));
        assert_eq!(a[SCRATCH_LABEL.len()], 0);
        let plain = random_image(8 * SECTOR, 7);
        assert!(!is_scratch(&plain));
        assert_eq!(plain[SECTOR..], a[SECTOR..], "only sector 0's label differs");
        let sectors: std::collections::BTreeSet<&[u8]> = plain.chunks(SECTOR).collect();
        assert_eq!(sectors.len(), 8, "every sector is distinct");
        assert_ne!(XorShift::new(0).next_u64(), 0);
    }

    #[test]
    fn crcs_cover_whole_and_partial_mibs_up_to_64() {
        let image = random_image(2 * MIB + 4 * SECTOR, 1);
        let crcs = mib_crcs(&image);
        assert_eq!(crcs.len(), 3);
        assert_eq!(crcs[0], crc32(&image[..MIB]));
        assert_eq!(crcs[2], crc32(&image[2 * MIB..]), "the last over the partial MiB");
        assert_eq!(mib_crcs(&vec![0; READ_LIMIT + MIB]).len(), 64, "nothing past 64 MiB");
    }

    #[test]
    fn copy_moves_the_first_half_up_by_half() {
        let n = 10;
        let original = random_image(n * SECTOR, 3);
        let after = expected_after_copy(&original);
        let sector = |img: &[u8], s: usize| img[s * SECTOR..(s + 1) * SECTOR].to_vec();
        for s in 0..=n / 2 {
            assert_eq!(sector(&after, s), sector(&original, s), "sector {s} is kept");
        }
        for s in 1..n / 2 {
            assert_eq!(sector(&after, s + n / 2), sector(&original, s), "sector {s} moved up");
        }
        assert_eq!(copied_sectors(n as u64), 4);
        assert_eq!(copied_sectors(131072), 65535);
        assert_eq!(copied_sectors(1), 0);
        assert!(check_scratch_copy(&original, &after).is_ok());
    }

    #[test]
    fn wrong_copies_are_described() {
        let n = 10;
        let original = random_image(n * SECTOR, 4);
        let untouched = check_scratch_copy(&original, &original).unwrap_err();
        assert!(untouched.contains("4 sectors differ; the first is sector 6"), "{untouched}");
        assert!(untouched.contains("no sector of the expected image"), "{untouched}");
        // Off by one: sector s copied to s + N/2 - 1 overwrites N/2.
        let mut shifted = original.clone();
        shifted.copy_within(SECTOR..5 * SECTOR, 5 * SECTOR);
        let err = check_scratch_copy(&original, &shifted).unwrap_err();
        assert!(err.contains("the first is sector 5 (N/2 = 5)"), "{err}");
        assert!(err.contains("at sector 1"), "{err}");
        assert!(check_unchanged(&original, &original).is_ok());
        let short = check_unchanged(&original, &original[SECTOR..]).unwrap_err();
        assert!(short.contains("bytes"), "{short}");
    }
}
