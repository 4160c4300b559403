//! The I/O benchmark's plan (`bench=io`, `./run.sh bench io`): which transfers are timed on a
//! disk-like device, shared by the kernel (which runs them) and the host (which runs the same
//! plan under Linux and judges both). Sequential reads from the start of the disk, and on a
//! scratch disk (sector 0 labelled `PSERIES-DDW-SCRATCH`) sequential writes in its second
//! half, each at 4 KiB, 128 KiB and 1 MiB requests, at queue depth 1 and at the deepest the
//! device's driver allows within the buffer memory.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The deepest NVMe stream: the buffer memory holds 64 requests of 1 MiB (QEMU's controller
/// takes 2047 entries per queue; the kernel's two queues of 128 hold 64 requests of two
/// MDTS-sized commands).
pub const NVME_DEEPEST: u64 = 64;
/// The deepest virtio-blk stream: `virtio-drivers`' block queue has 16 entries, one per
/// request with indirect descriptors (QEMU's virtqueue has 256).
pub const BLK_DEEPEST: u64 = 16;

/// Request sizes and their names.
pub const SIZES: [(u64, &str); 3] = [(4 << 10, "4k"), (128 << 10, "128k"), (1 << 20, "1m")];
/// Buffer memory for the requests in flight: the deepest queue times the request size.
pub const BUFFER_BYTES: u64 = 64 << 20;
/// Bytes read per phase at most (from offset 0): 32 MiB at 4 KiB requests, else 256 MiB, so
/// that even the fastest phase lasts long enough to time from the host.
pub fn read_span(size: u64) -> u64 {
    if size < 64 << 10 {
        32 << 20
    } else {
        256 << 20
    }
}

/// Bytes written per phase at most (from the middle of a scratch disk): a quarter of the read.
pub fn write_span(size: u64) -> u64 {
    read_span(size) / 4
}

/// One timed run of requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phase {
    /// Writes (else reads).
    pub write: bool,
    /// Bytes per request.
    pub size: u64,
    /// Requests in flight at most.
    pub depth: u64,
    /// Byte offset on the disk of the first request.
    pub offset: u64,
    /// Bytes moved (a whole number of requests).
    pub bytes: u64,
}

impl Phase {
    /// `read.4k.qd1`, `write.1m.qd64`.
    pub fn label(&self) -> String {
        let size = SIZES.iter().find(|s| s.0 == self.size).map_or("?", |s| s.1);
        format!("{}.{size}.qd{}", if self.write { "write" } else { "read" }, self.depth)
    }

    /// Requests in the phase.
    pub fn requests(&self) -> u64 {
        self.bytes / self.size
    }
}

/// The phases for a disk of `disk_bytes`, writable when `scratch`, whose driver keeps at most
/// `deepest` requests in flight.
pub fn phases(disk_bytes: u64, scratch: bool, deepest: u64) -> Vec<Phase> {
    let mut out = Vec::new();
    let write_offset = (disk_bytes / 2).next_multiple_of(1 << 20);
    for write in [false, true] {
        if write && !scratch {
            continue;
        }
        for (size, _) in SIZES {
            let (offset, span) = match write {
                false => (0, read_span(size).min(disk_bytes)),
                true => (write_offset, write_span(size).min(disk_bytes.saturating_sub(write_offset))),
            };
            let bytes = span / size * size;
            if bytes == 0 {
                continue;
            }
            let deep = deepest.min(BUFFER_BYTES / size).max(1);
            let mut depths = alloc::vec![1];
            if deep > 1 {
                depths.push(deep);
            }
            for depth in depths {
                out.push(Phase { write, size, depth, offset, bytes });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_everywhere_writes_only_on_scratch_disks() {
        let plan = phases(256 << 20, true, 64);
        let labels: Vec<String> = plan.iter().map(Phase::label).collect();
        assert_eq!(
            labels,
            [
                "read.4k.qd1",
                "read.4k.qd64",
                "read.128k.qd1",
                "read.128k.qd64",
                "read.1m.qd1",
                "read.1m.qd64",
                "write.4k.qd1",
                "write.4k.qd64",
                "write.128k.qd1",
                "write.128k.qd64",
                "write.1m.qd1",
                "write.1m.qd64"
            ]
        );
        assert_eq!((plan[0].offset, plan[0].bytes, plan[0].requests()), (0, 32 << 20, 8192));
        assert_eq!((plan[4].bytes, plan[4].requests()), (256 << 20, 256));
        assert_eq!((plan[6].offset, plan[6].bytes), (128 << 20, 8 << 20), "writes in the second half");
        assert_eq!(plan[10].bytes, 64 << 20);
        assert!(plan.iter().all(|p| p.depth * p.size <= BUFFER_BYTES));
        assert_eq!(phases(64 << 20, false, 16).len(), 6);
        assert_eq!(phases(64 << 20, false, 16)[4].bytes, 64 << 20, "no more than the disk");
        // A shallow driver and a small disk.
        let small = phases(3 << 20, true, 1);
        assert!(small.iter().all(|p| p.depth == 1));
        assert_eq!(small.iter().filter(|p| p.write).map(|p| p.bytes).collect::<Vec<_>>(), [1 << 20; 3]);
    }
}
