//! A sequential stream of equal requests kept `depth` deep: each request's buffer is mapped
//! just before its commands are submitted and unmapped as soon as the last of them completes
//! (so with a TCE window every request costs its map and clear, as a streaming DMA mapping
//! does). A request longer than the controller's maximum transfer is split into commands
//! spread over the I/O queues in turn.

use alloc::vec;
use alloc::vec::Vec;

use super::controller::{Controller, IoOp, NvmeError, Pending, Spin};
use super::{NvmeEnv, NvmeRegs};
use crate::addr::BusAddr;

/// The buffers of the requests in flight, one per slot (`depth` slots).
pub trait RequestBuffers {
    /// Hands slot `slot`'s buffer to the controller; returns its bus address.
    fn map(&mut self, slot: usize) -> Result<BusAddr, alloc::string::String>;
    /// Takes slot `slot`'s buffer back once its request has completed.
    fn unmap(&mut self, slot: usize) -> Result<(), alloc::string::String>;
}

/// `requests` requests of `blocks` blocks each from `first_lba` on, at most `depth` in flight;
/// returns once every one has completed (or at the first error).
pub fn stream<R: NvmeRegs, E: NvmeEnv>(
    nvme: &mut Controller<R, E>,
    op: IoOp,
    (first_lba, blocks, requests): (u64, u64, u64),
    depth: usize,
    buffers: &mut impl RequestBuffers,
    timeout_us: u64,
) -> Result<(), NvmeError> {
    let block_bytes = u64::from(nvme.namespace().block_bytes);
    let per_command = (nvme.max_transfer() / block_bytes).max(1);
    let queues = nvme.io_queues().max(1);
    // Per slot: the request it carries and its commands still outstanding.
    let mut slots: Vec<Option<(u64, usize)>> = vec![None; depth.max(1)];
    let mut pending: Vec<(Pending, usize)> = Vec::new();
    let mut done = Vec::new();
    let (mut next, mut finished, mut turn) = (0u64, 0u64, 0usize);
    let mut last_progress = nvme.env().now_us();
    let mut spin = Spin::default();
    let mut moved = false;
    while finished < requests {
        // Fill every free slot.
        while next < requests {
            let Some(slot) = slots.iter().position(Option::is_none) else { break };
            let bus = buffers.map(slot).map_err(NvmeError::Memory)?;
            let lba = first_lba + next * blocks;
            let mut at = 0;
            let mut commands = 0;
            while at < blocks {
                let count = per_command.min(blocks - at);
                let address = BusAddr(bus.get() + at * block_bytes);
                // The queues hold more commands than the slots need (checked by the caller's
                // depth); a full queue is waited out below.
                let queue = turn % queues;
                match nvme.submit(queue, op, lba + at, count, address)? {
                    Some(p) => {
                        pending.push((p, slot));
                        commands += 1;
                        at += count;
                        turn += 1;
                    }
                    None => {
                        return Err(NvmeError::BadRequest(alloc::format!(
                            "I/O queue {} is full with {depth} requests in flight",
                            queue + 1
                        )))
                    }
                }
            }
            slots[slot] = Some((next, commands));
            next += 1;
        }
        let mut progressed = false;
        for queue in 0..queues {
            done.clear();
            nvme.poll(queue, &mut done);
            for &(cid, status) in &done {
                let Some(i) = pending.iter().position(|(p, _)| p.queue == queue && p.cid == cid) else {
                    continue;
                };
                let (_, slot) = pending.swap_remove(i);
                let Some((request, left)) = slots[slot] else { continue };
                if !status.is_success() {
                    return Err(NvmeError::Command {
                        command: alloc::format!(
                            "{} of request {request} (LBA {})",
                            op.name(),
                            first_lba + request * blocks
                        ),
                        status,
                    });
                }
                progressed = true;
                if left == 1 {
                    slots[slot] = None;
                    finished += 1;
                    buffers.unmap(slot).map_err(NvmeError::Memory)?;
                } else {
                    slots[slot] = Some((request, left - 1));
                }
            }
        }
        moved |= progressed;
        if !spin.due() {
            continue;
        }
        let now = nvme.env().now_us();
        if moved {
            last_progress = now;
            moved = false;
        } else if now.saturating_sub(last_progress) > timeout_us {
            return Err(NvmeError::Timeout {
                command: alloc::format!("{} stream ({finished} of {requests} requests done)", op.name()),
                queue: 1,
                waited_ms: timeout_us / 1000,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fake::{Bus, FakeEnv, FakeNvme};
    use super::super::{Config, Controller, IoOp};
    use super::*;

    struct Slots {
        bus: Vec<u64>,
        mapped: Vec<bool>,
        maps: usize,
        most: usize,
    }

    impl RequestBuffers for Slots {
        fn map(&mut self, slot: usize) -> Result<BusAddr, alloc::string::String> {
            assert!(!self.mapped[slot], "slot {slot} mapped twice");
            self.mapped[slot] = true;
            self.maps += 1;
            self.most = self.most.max(self.mapped.iter().filter(|m| **m).count());
            Ok(BusAddr(self.bus[slot]))
        }
        fn unmap(&mut self, slot: usize) -> Result<(), alloc::string::String> {
            assert!(self.mapped[slot]);
            self.mapped[slot] = false;
            Ok(())
        }
    }

    #[test]
    fn a_deep_stream_of_split_requests_reads_everything_in_order() {
        let bus = Bus::new(1 << 59, 16 << 20);
        let disk: Vec<u8> = (0..4 << 20).map(|i: usize| (i / 512) as u8 ^ (i as u8)).collect();
        let nvme = FakeNvme::new(&bus, disk.clone());
        let mut c = Controller::start(nvme.clone(), FakeEnv::new(&bus), Config::default()).unwrap();
        let depth = 4;
        let mut slots = Slots {
            bus: (0..depth).map(|_| bus.alloc(1 << 20).unwrap()).collect(),
            mapped: vec![false; depth],
            maps: 0,
            most: 0,
        };
        // 1 MiB requests: two 512 KiB commands each.
        stream(&mut c, IoOp::Read, (0, 2048, 4), depth, &mut slots, 1_000_000).unwrap();
        assert_eq!((slots.maps, slots.most), (4, 4));
        assert!(slots.mapped.iter().all(|m| !m), "every buffer given back");
        for (k, &at) in slots.bus.iter().enumerate() {
            let mut got = vec![0; 1 << 20];
            bus.read(at, &mut got);
            assert!(disk.chunks(1 << 20).any(|c| c == got.as_slice()), "slot {k} holds one MiB of the disk");
        }
        let reads: Vec<u16> =
            nvme.model().log.iter().filter(|(_, c)| c.opcode == 2).map(|(q, _)| *q).collect();
        assert_eq!(reads.len(), 8);
        assert!(reads.contains(&1) && reads.contains(&2), "both queues used");
        // Queue depth 1 of 4 KiB requests, many more than the queue's entries.
        let mut one = Slots { bus: vec![bus.alloc(4096).unwrap()], mapped: vec![false], maps: 0, most: 0 };
        stream(&mut c, IoOp::Write, (100, 8, 200), 1, &mut one, 1_000_000).unwrap();
        assert_eq!((one.maps, one.most), (200, 1));
    }
}
