//! The default self-test: every virtio-blk disk and every `edu` device, after the DMA windows
//! are set up; prints `selftest.status`.

use alloc::format;
use alloc::vec::Vec;
use arch_ppc64::println;
use arch_ppc64::rtas::Rtas;
use drivers::devtree::platform::Platform;
use drivers::pci::Function;

use crate::kv;
use crate::pci_config::RtasConfigSpace;
use crate::phys::Reserved;

/// Bytes per self-test buffer.
const BUFFER_BYTES: u64 = 1 << 20;

/// Runs every device test; returns the number of failures.
pub fn run(
    platform: &Platform,
    rtas: Rtas,
    functions: &[Vec<Function>],
    reserved: &Reserved,
    hz: u64,
) -> usize {
    println!("== self-test");
    let mut buffers = crate::blk::buffers(&platform.memory, reserved, BUFFER_BYTES);
    let tokens = platform.rtas.as_ref();
    let read = tokens.and_then(|t| t.token("ibm,read-pci-config"));
    let write = tokens.and_then(|t| t.token("ibm,write-pci-config"));
    let (mut disks, mut edus, mut failures) = (0, 0, 0);
    for (pe, (phb, list)) in platform.phbs.iter().zip(functions).enumerate() {
        for function in list {
            if crate::blk::is_virtio_blk(function) {
                let (Some(read), Some(write)) = (read, write) else { continue };
                let cfg = RtasConfigSpace::new(rtas, read, write, phb.buid);
                let test =
                    crate::blk::DiskTest { n: disks, pe, phb, function, cfg, buffers: &mut buffers, hz };
                failures += report(&format!("blk.{disks}.status"), crate::blk::run(test));
                disks += 1;
            } else if crate::edu_test::is_edu(function) {
                let result = match buffers.as_mut_slice() {
                    [] => Err("no RAM buffer could be placed".into()),
                    [only] => {
                        let phys = only.phys();
                        let (out, back) = only.bytes().split_at_mut(BUFFER_BYTES as usize / 2);
                        let back_phys = drivers::addr::PhysAddr(phys.get() + BUFFER_BYTES / 2);
                        crate::edu_test::run(edus, pe, phb, function, (phys, out), (back_phys, back), hz)
                    }
                    [first, .., last] => {
                        // Out of the highest buffer, back into the lowest.
                        let (out_phys, back_phys) = (last.phys(), first.phys());
                        let out = (out_phys, last.bytes());
                        let back = (back_phys, first.bytes());
                        crate::edu_test::run(edus, pe, phb, function, out, back, hz)
                    }
                };
                failures += report(&format!("edu.{edus}.status"), result);
                edus += 1;
            }
        }
    }
    kv!("selftest.disks", "{disks}");
    kv!("selftest.edus", "{edus}");
    kv!("selftest.failures", "{failures}");
    kv!("pci.config_calls_total", "{}", crate::pci_config::total_calls());
    kv!("selftest.status", "{}", if failures == 0 { "ok" } else { "fail" });
    failures
}

fn report(key: &str, result: Result<(), alloc::string::String>) -> usize {
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
