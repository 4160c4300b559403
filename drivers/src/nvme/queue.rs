//! One submission/completion queue pair, polled (Base Specification 2.0 §3.3.1 "Memory-based
//! Transport Queue Model", §4.6 completion entries and the phase tag): the host writes an entry
//! at the submission queue's tail and writes the new tail to the queue's doorbell; the
//! controller posts a completion at the completion queue's head with the phase tag inverted on
//! every pass, and the host writes the new head to the completion doorbell. Command
//! identifiers are the slot numbers of outstanding commands, so at most `depth - 1` are
//! outstanding and the tail never catches the controller's head.

use alloc::vec;
use alloc::vec::Vec;

use super::prp::{Prp2, PrpPlan};
use super::spec::{Command, Completion, CQE_BYTES, PAGE, REG_DOORBELLS, SQE_BYTES};
use super::{DeviceMemory, NvmeRegs};

/// A queue pair and its PRP list pages (one per command slot).
pub struct QueuePair<M> {
    /// Queue identifier (0: the admin queues).
    pub id: u16,
    depth: u16,
    sq: M,
    cq: M,
    lists: Option<M>,
    sq_tail: u16,
    cq_head: u16,
    phase: bool,
    busy: Vec<bool>,
    outstanding: u16,
    sq_doorbell: usize,
    cq_doorbell: usize,
}

/// Bytes of queue memory for `depth` entries of `entry` bytes, in whole pages.
pub fn queue_bytes(depth: u16, entry: usize) -> usize {
    (usize::from(depth) * entry).next_multiple_of(PAGE as usize)
}

impl<M: DeviceMemory> QueuePair<M> {
    /// A pair over `sq` and `cq` (zeroed, at least [`queue_bytes`] each) with `depth` entries;
    /// `lists` holds `depth` PRP list pages when commands may need them.
    pub fn new(id: u16, depth: u16, sq: M, cq: M, lists: Option<M>, stride: usize) -> Self {
        let id_slot = 2 * usize::from(id);
        Self {
            id,
            depth,
            sq,
            cq,
            lists,
            sq_tail: 0,
            cq_head: 0,
            phase: true,
            busy: vec![false; usize::from(depth)],
            outstanding: 0,
            sq_doorbell: REG_DOORBELLS + id_slot * stride,
            cq_doorbell: REG_DOORBELLS + (id_slot + 1) * stride,
        }
    }

    /// Entries in each queue.
    pub fn depth(&self) -> u16 {
        self.depth
    }

    /// Commands submitted and not yet completed.
    pub fn outstanding(&self) -> u16 {
        self.outstanding
    }

    /// Whether another command can be submitted.
    pub fn has_room(&self) -> bool {
        self.outstanding + 1 < self.depth
    }

    /// The submission queue's bus address.
    pub fn sq_bus(&self) -> u64 {
        self.sq.bus().get()
    }

    /// The completion queue's bus address.
    pub fn cq_bus(&self) -> u64 {
        self.cq.bus().get()
    }

    /// Writes `command` with `prp` (its CID set to a free slot) and rings the doorbell;
    /// returns the CID, or `None` when the queue is full or a list is needed and there is none.
    pub fn submit(&mut self, regs: &mut impl NvmeRegs, mut command: Command, prp: &PrpPlan) -> Option<u16> {
        if !self.has_room() {
            return None;
        }
        let cid = self.busy.iter().position(|b| !b)? as u16;
        command.prp1 = prp.prp1;
        command.prp2 = match &prp.prp2 {
            Prp2::Unused => 0,
            Prp2::Page(page) => *page,
            Prp2::List(entries) => {
                let lists = self.lists.as_mut()?;
                let at = usize::from(cid) * PAGE as usize;
                for (k, entry) in entries.iter().enumerate() {
                    lists.write_u32(at + 8 * k, *entry as u32);
                    lists.write_u32(at + 8 * k + 4, (*entry >> 32) as u32);
                }
                lists.bus().get() + at as u64
            }
        };
        command.cid = cid;
        let at = usize::from(self.sq_tail) * SQE_BYTES;
        for (k, dword) in command.dwords().iter().enumerate() {
            self.sq.write_u32(at + 4 * k, *dword);
        }
        self.busy[usize::from(cid)] = true;
        self.outstanding += 1;
        self.sq_tail = (self.sq_tail + 1) % self.depth;
        // The doorbell write is ordered after the entry's stores (the MMIO write's barrier).
        regs.write32(self.sq_doorbell, u32::from(self.sq_tail));
        Some(cid)
    }

    /// Takes every completion the controller has posted (in order) and tells it the new head.
    pub fn drain(&mut self, regs: &mut impl NvmeRegs, done: &mut Vec<Completion>) {
        let before = done.len();
        loop {
            let at = usize::from(self.cq_head) * CQE_BYTES;
            // Dword 3 first: the phase tag says whether the rest is the new entry.
            let dw3 = self.cq.read_u32(at + 12);
            if ((dw3 >> 16) & 1 == 1) != self.phase {
                break;
            }
            let completion = Completion::parse(self.cq.read_u32(at), self.cq.read_u32(at + 8), dw3);
            if let Some(slot) = self.busy.get_mut(usize::from(completion.cid)).filter(|b| **b) {
                *slot = false;
                self.outstanding -= 1;
            }
            done.push(completion);
            self.cq_head += 1;
            if self.cq_head == self.depth {
                self.cq_head = 0;
                self.phase = !self.phase;
            }
        }
        if done.len() > before {
            regs.write32(self.cq_doorbell, u32::from(self.cq_head));
        }
    }

    /// The queue's memory, for freeing once the controller no longer uses it.
    pub fn into_memory(self) -> impl Iterator<Item = M> {
        [Some(self.sq), Some(self.cq), self.lists].into_iter().flatten()
    }
}
