//! The default self-test: every virtio-blk disk and every `edu` device, after the DMA windows
//! are set up, each through its own DMA handle on its PE; prints `selftest.status`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use arch_ppc64::println;
use drivers::devices::{driver_for_function, DeviceKind};
use drivers::devtree::platform::Platform;

use crate::boundary::memory::{place_buffers, PhysBuffer, Reserved};
use crate::kv;
use crate::system::Phb;

pub mod bench;
pub mod blk;
mod edu;
pub mod nvme;

/// Bytes per self-test buffer (one CRC chunk).
const BUFFER_BYTES: u64 = drivers::selftest::disk::CRC_CHUNK;

/// Runs every device test; returns the number of failures.
pub fn run(platform: &Platform, phbs: &[Phb<'_>], reserved: &Reserved, hz: u64) -> usize {
    println!("== self-test");
    let mut buffers: Vec<PhysBuffer> = place_buffers(&platform.memory, reserved, BUFFER_BYTES)
        .into_iter()
        .map(|(spot, buffer)| {
            kv!(format!("selftest.buffer.{}", spot.name()), "{}", buffer.phys());
            buffer
        })
        .collect();
    let (mut disks, mut edus, mut nvmes, mut failures, mut stopped) = (0, 0, 0, 0, 0);
    for phb in phbs {
        let pe_has_window = phb.pe.as_ref().is_some_and(|pe| pe.state.lock().dma().has_window());
        for function in &phb.functions {
            let kind = driver_for_function(function).map(|d| d.kind);
            if kind.is_some() && !pe_has_window {
                // Its PE has no DMA window: the device was stopped, there is nothing to test.
                let (what, n) = match kind {
                    Some(DeviceKind::VirtioBlk) => ("blk", &mut disks),
                    Some(DeviceKind::Nvme) => ("nvme", &mut nvmes),
                    _ => ("edu", &mut edus),
                };
                kv!(
                    format!("{what}.{n}.status"),
                    "stopped: its PE has no DMA window (see pe.{}.*)",
                    phb.index
                );
                *n += 1;
                stopped += 1;
                continue;
            }
            match kind {
                Some(DeviceKind::VirtioBlk) => {
                    let result = blk::run(blk::DiskTest {
                        name: format!("blk.{disks}"),
                        phb,
                        function,
                        buffers: &mut buffers,
                        hz,
                    });
                    failures += report(&format!("blk.{disks}.status"), result);
                    disks += 1;
                }
                Some(DeviceKind::Nvme) => {
                    let test = nvme::NvmeTest { n: nvmes, phb, function, pool: &mut buffers, hz };
                    failures += report(&format!("nvme.{nvmes}.status"), nvme::run(test));
                    nvmes += 1;
                }
                Some(DeviceKind::Edu) => {
                    let result = edu::run(edus, phb, function, &mut buffers, hz);
                    failures += report(&format!("edu.{edus}.status"), result);
                    edus += 1;
                }
                None => {}
            }
        }
    }
    kv!("selftest.disks", "{disks}");
    kv!("selftest.edus", "{edus}");
    kv!("selftest.nvmes", "{nvmes}");
    kv!("selftest.failures", "{failures}");
    kv!("selftest.stopped", "{stopped}");
    let config_calls: u64 = phbs.iter().filter_map(|p| p.cfg.as_ref()).map(|c| c.calls()).sum();
    kv!("pci.config_calls_total", "{config_calls}");
    kv!("selftest.status", "{}", if failures == 0 { "ok" } else { "fail" });
    failures
}

fn report(key: &str, result: Result<(), String>) -> usize {
    match result {
        Ok(()) => {
            kv!(key, "ok");
            0
        }
        Err(why) => {
            println!("  {key}: {why}");
            kv!(key, "{why}");
            1
        }
    }
}
