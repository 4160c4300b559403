//! The disk self-test's plan: which bytes are checksummed and which sectors a scratch disk
//! copies, kept apart from the I/O so it can be checked on the host.
//!
//! Every disk: CRC-32 (zlib's polynomial, `crc32fast`) of each MiB of its first 64 MiB. Only a
//! disk whose sector 0 begins with [`SCRATCH_LABEL`] is written: sectors `[1, N/2)` are copied
//! onto `[N/2 + 1, N)` (sector `s` to `s + N/2`), so sector `N/2` and the first half are never
//! written and the label stays unique.

use alloc::vec::Vec;

/// Bytes per virtio-blk sector.
pub const SECTOR: u64 = 512;
/// The label that marks a disk the self-test may write.
pub const SCRATCH_LABEL: &[u8] = b"PSERIES-DDW-SCRATCH";
/// Bytes per checksummed chunk.
pub const CRC_CHUNK: u64 = 1 << 20;
/// How much of each disk is checksummed at most.
pub const CRC_SPAN: u64 = 64 << 20;

/// True when sector 0 marks a scratch disk.
pub fn is_scratch(sector0: &[u8]) -> bool {
    sector0.starts_with(SCRATCH_LABEL)
}

/// `(index, first sector, sectors)` of each checksummed chunk of a disk of `sectors` sectors;
/// the last chunk may be partial (a trailing partial sector is not readable and is left out).
pub fn crc_chunks(sectors: u64) -> Vec<(u64, u64, u64)> {
    crc_chunks_of(sectors, SECTOR)
}

/// [`crc_chunks`] for a disk of `blocks` blocks of `block_bytes` bytes (an NVMe namespace's
/// logical blocks): `(index, first block, blocks)`.
pub fn crc_chunks_of(blocks: u64, block_bytes: u64) -> Vec<(u64, u64, u64)> {
    let per_chunk = (CRC_CHUNK / block_bytes.max(1)).max(1);
    let span = blocks.min(CRC_SPAN / block_bytes.max(1));
    (0..span.div_ceil(per_chunk))
        .map(|k| {
            let first = k * per_chunk;
            (k, first, per_chunk.min(span - first))
        })
        .collect()
}

/// `(source, destination, sectors)` steps of the scratch copy in chunks of at most
/// `max_sectors`; empty for disks of fewer than 4 sectors.
pub fn copy_steps(sectors: u64, max_sectors: u64) -> Vec<(u64, u64, u64)> {
    let half = sectors / 2;
    let mut steps = Vec::new();
    if sectors < 4 || max_sectors == 0 {
        return steps;
    }
    let mut src = 1;
    while src < half {
        let count = max_sectors.min(half - src);
        steps.push((src, src + half, count));
        src += count;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label() {
        assert!(is_scratch(b"PSERIES-DDW-SCRATCH v1\0\0"));
        assert!(!is_scratch(b"PSERIES-DDW-SCRATC"));
        assert!(!is_scratch(&[0; 512]));
    }

    #[test]
    fn chunks_cover_the_first_64_mib() {
        let big = crc_chunks(1 << 30 >> 9);
        assert_eq!(big.len(), 64);
        assert_eq!(big[63], (63, 63 * 2048, 2048));
        // 1.5 MiB disk: one full and one half chunk.
        assert_eq!(crc_chunks(3072), [(0, 0, 2048), (1, 2048, 1024)]);
        assert!(crc_chunks(0).is_empty());
        // 4 KiB blocks: 256 per MiB, still 64 chunks at most.
        let four_k = crc_chunks_of(1 << 20, 4096);
        assert_eq!((four_k.len(), four_k[1]), (64, (1, 256, 256)));
    }

    #[test]
    fn copy_moves_sectors_by_half_and_never_touches_the_first_half() {
        // 64 MiB disk = 131072 sectors; 2048-sector chunks.
        let steps = copy_steps(131072, 2048);
        assert_eq!(steps.first(), Some(&(1, 65537, 2048)));
        assert_eq!(steps.last(), Some(&(63489, 129025, 2047)));
        let copied: u64 = steps.iter().map(|s| s.2).sum();
        assert_eq!(copied, 65535);
        assert!(steps.iter().all(|&(src, dst, n)| dst == src + 65536 && dst > 65536 && dst + n <= 131072));
        // Odd sizes: the last sector of an odd disk is never a destination.
        let odd = copy_steps(11, 100);
        assert_eq!(odd, [(1, 6, 4)]);
        assert!(copy_steps(3, 10).is_empty());
        assert!(copy_steps(100, 0).is_empty());
    }
}
