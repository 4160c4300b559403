//! Host-test helpers shared by the crate's unit tests: a TCE table that records what is
//! written, and memory that pretends to live at a chosen physical address.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::vec::Vec;

use crate::addr::{BusAddr, Liobn, PhysAddr};
use crate::dma::DmaMemory;
use crate::iommu::hcall::{HcallError, TceCalls};
use crate::iommu::tce::{ReadTce, Tce};

/// Records every entry written, by (LIOBN, IOBA); every call succeeds unless `fail_all`.
#[derive(Default)]
pub struct FakeTce {
    pub entries: BTreeMap<(u32, u64), u64>,
    pub page_size: u64,
    pub calls: usize,
    pub fail_all: bool,
}

impl FakeTce {
    pub fn new(page_size: u64) -> Self {
        Self { page_size, ..Self::default() }
    }

    /// Live (non-clear) entries.
    pub fn live(&self) -> usize {
        self.entries.values().filter(|&&v| v & 3 != 0).count()
    }

    fn result(&mut self, call: crate::iommu::hcall::TceHcall) -> Result<(), HcallError> {
        self.calls += 1;
        match self.fail_all {
            true => Err(HcallError { call, status: -1 }),
            false => Ok(()),
        }
    }
}

impl TceCalls for FakeTce {
    fn put_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce) -> Result<(), HcallError> {
        self.result(crate::iommu::hcall::TceHcall::PutTce { liobn, ioba, tce })?;
        self.entries.insert((liobn.0, ioba.get()), tce.raw());
        Ok(())
    }

    fn put_tce_indirect(&mut self, liobn: Liobn, ioba: BusAddr, tces: &[Tce]) -> Result<(), HcallError> {
        self.result(crate::iommu::hcall::TceHcall::PutTceIndirect { liobn, ioba, count: tces.len() })?;
        for (i, tce) in tces.iter().enumerate() {
            self.entries.insert((liobn.0, ioba.get() + i as u64 * self.page_size), tce.raw());
        }
        Ok(())
    }

    fn stuff_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce, count: u32) -> Result<(), HcallError> {
        self.result(crate::iommu::hcall::TceHcall::StuffTce { liobn, ioba, tce, count })?;
        for i in 0..u64::from(count) {
            self.entries.insert((liobn.0, ioba.get() + i * self.page_size), tce.raw());
        }
        Ok(())
    }

    fn get_tce(&mut self, liobn: Liobn, ioba: BusAddr) -> Result<ReadTce, HcallError> {
        Ok(ReadTce(self.entries.get(&(liobn.0, ioba.get())).copied().unwrap_or(0)))
    }

    fn sync(&mut self) {}
}

/// Host memory standing in for guest-physical memory at `phys`.
#[derive(Debug, PartialEq, Eq)]
pub struct TestMemory {
    pub phys: PhysAddr,
    pub bytes: Vec<u8>,
}

impl TestMemory {
    pub fn new(phys: u64, len: usize) -> Self {
        Self { phys: PhysAddr(phys), bytes: vec![0; len] }
    }
}

// SAFETY: no device ever reaches host test memory; the pretend address and length never
// change.
unsafe impl DmaMemory for TestMemory {
    fn phys(&self) -> PhysAddr {
        self.phys
    }

    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
}

impl AsMut<[u8]> for TestMemory {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}
