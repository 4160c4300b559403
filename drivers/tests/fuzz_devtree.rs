//! Fuzzing of the device-tree property parsers: arbitrary bytes into every parser, and
//! pseries-shaped trees whose properties hold arbitrary bytes into [`Platform::from_fdt`].
//! Nothing may panic; what parses must be consistent (no range past 2^64, counts matching
//! lengths). `FUZZ_CASES` sets the number of executions per target (default 2000; the closing
//! note's million-execution run is `./run.sh fuzz`).

use drivers::devtree::cells::CellCounts;
use drivers::devtree::dma_window::{parse_ddw_applicable, parse_dma_window, DdwExtensions};
use drivers::devtree::hotplug::{
    dynamic_memory_v1_end, dynamic_memory_v2_end, parse_lmb_size, parse_lrdr_capacity,
};
use drivers::devtree::memory::parse_reg;
use drivers::devtree::pci_node::parse_bus_device_function;
use drivers::devtree::phb::{parse_buid, parse_ranges};
use drivers::devtree::platform::Platform;
use drivers::devtree::writer::FdtWriter;
use drivers::devtree::{cpu, rtas};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, TestRng, TestRunner};

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

/// A deterministic runner (fixed seed) so CI failures reproduce; `FUZZ_SEED` varies it.
fn runner() -> TestRunner {
    let seed: u64 = std::env::var("FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x05ee_d0d7);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    // Every failing case's seed is appended to the regression file, which every later run
    // (`./run.sh test` included) replays first.
    let persistence = FileFailurePersistence::Direct("tests/regressions/fuzz_devtree.txt");
    let config =
        Config { cases: cases(), failure_persistence: Some(Box::new(persistence)), ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// Property bytes: mostly whole cells with edge values, sometimes any length.
fn prop_bytes() -> impl Strategy<Value = Vec<u8>> {
    let cell =
        prop_oneof![Just(0u32), Just(1), Just(2), Just(3), Just(u32::MAX), Just(0x8000_0000), any::<u32>()];
    prop_oneof![
        3 => vec(cell, 0..24).prop_map(|cells| cells.iter().flat_map(|c| c.to_be_bytes()).collect()),
        1 => vec(any::<u8>(), 0..100),
    ]
}

#[test]
fn property_parsers_never_panic_and_stay_consistent() {
    let strategy = (prop_bytes(), 0u32..6, 0u32..6, any::<u64>());
    runner()
        .run(&strategy, |(bytes, a, s, lmb)| {
            if let Ok(ranges) = parse_reg(&bytes, CellCounts { address: a, size: s }) {
                prop_assert!(ranges.iter().all(|r| r.base.get().checked_add(r.size).is_some()));
                if a + s > 0 {
                    prop_assert!(ranges.len() * (a + s) as usize * 4 <= bytes.len());
                }
            }
            if let Ok(window) = parse_dma_window(&bytes, a, s) {
                prop_assert!(window.bus_addr.get().checked_add(window.size).is_some() || window.size == 0);
            }
            let _ = parse_ddw_applicable(&bytes);
            if let Ok(ext) = DdwExtensions::parse(&bytes) {
                let _ = (ext.reset_token(), ext.query_outputs_64bit());
            }
            let _ = parse_lmb_size(&bytes);
            let _ = parse_lrdr_capacity(&bytes);
            let _ = dynamic_memory_v1_end(&bytes, lmb);
            let _ = dynamic_memory_v2_end(&bytes, lmb);
            let _ = parse_bus_device_function(&bytes);
            let _ = parse_buid(&bytes);
            if let Ok(ranges) = parse_ranges(&bytes, a, s) {
                prop_assert!(ranges.len() * (3 + a + s) as usize * 4 <= bytes.len());
            }
            let _ = cpu::parse_pvr(&bytes);
            let _ = cpu::parse_frequency("clock-frequency", &bytes);
            let _ = rtas::is_token_property("ibm,fuzz", &bytes);
            Ok(())
        })
        .unwrap();
    println!("property parsers: {} executions, no panic", cases());
}

/// The properties of a pseries tree the fuzzer fills with arbitrary bytes.
#[derive(Debug, Clone)]
struct Tree {
    root_cells: Vec<u8>,
    memory_reg: Vec<u8>,
    lrdr: Vec<u8>,
    drconf: Option<(Vec<u8>, Vec<u8>)>,
    phb_reg: Vec<u8>,
    phb_ranges: Vec<u8>,
    dma_window: Vec<u8>,
    dma_cells: Vec<u8>,
    ddw_applicable: Vec<u8>,
    ddw_extensions: Vec<u8>,
    child_reg: Vec<u8>,
    cpu_version: Vec<u8>,
    vty_reg: Vec<u8>,
    hypertas: Vec<u8>,
}

fn tree() -> impl Strategy<Value = Tree> {
    (
        (prop_bytes(), prop_bytes(), prop_bytes(), proptest::option::of((prop_bytes(), prop_bytes()))),
        (prop_bytes(), prop_bytes(), prop_bytes(), prop_bytes(), prop_bytes(), prop_bytes()),
        (prop_bytes(), prop_bytes(), prop_bytes(), vec(any::<u8>(), 0..40)),
    )
        .prop_map(|(a, b, c)| Tree {
            root_cells: a.0,
            memory_reg: a.1,
            lrdr: a.2,
            drconf: a.3,
            phb_reg: b.0,
            phb_ranges: b.1,
            dma_window: b.2,
            dma_cells: b.3,
            ddw_applicable: b.4,
            ddw_extensions: b.5,
            child_reg: c.0,
            cpu_version: c.1,
            vty_reg: c.2,
            hypertas: c.3,
        })
}

fn build(t: &Tree) -> Vec<u8> {
    let mut w = FdtWriter::new();
    let result = (|| {
        w.begin_node("")?;
        w.property("#address-cells", &t.root_cells)?;
        w.property_u32("#size-cells", 2)?;
        w.begin_node("cpus")?;
        w.begin_node("PowerPC,POWER9@0")?;
        w.property_string("device_type", "cpu")?;
        w.property("cpu-version", &t.cpu_version)?;
        w.property("timebase-frequency", &t.cpu_version)?;
        w.end_node()?;
        w.end_node()?;
        w.begin_node("memory@0")?;
        w.property_string("device_type", "memory")?;
        w.property("reg", &t.memory_reg)?;
        w.end_node()?;
        if let Some((lmb, dynamic)) = &t.drconf {
            w.begin_node("ibm,dynamic-reconfiguration-memory")?;
            w.property("ibm,lmb-size", lmb)?;
            w.property("ibm,dynamic-memory-v2", dynamic)?;
            w.end_node()?;
        }
        w.begin_node("rtas")?;
        w.property("ibm,lrdr-capacity", &t.lrdr)?;
        w.property("ibm,read-pci-config", &t.vty_reg)?;
        w.property("ibm,hypertas-functions", &t.hypertas)?;
        w.end_node()?;
        w.begin_node("vdevice")?;
        w.property_u32("#address-cells", 1)?;
        w.property_u32("#size-cells", 0)?;
        w.begin_node("vty@71000000")?;
        w.property_string("compatible", "hvterm1")?;
        w.property("reg", &t.vty_reg)?;
        w.end_node()?;
        w.end_node()?;
        w.begin_node("pci@800000020000000")?;
        w.property_string("device_type", "pci")?;
        w.property_u32("#address-cells", 3)?;
        w.property_u32("#size-cells", 2)?;
        w.property("reg", &t.phb_reg)?;
        w.property("ranges", &t.phb_ranges)?;
        w.property("ibm,#dma-address-cells", &t.dma_cells)?;
        w.property("ibm,dma-window", &t.dma_window)?;
        w.property("ibm,ddw-applicable", &t.ddw_applicable)?;
        w.property("ibm,ddw-extensions", &t.ddw_extensions)?;
        w.begin_node("ethernet@1")?;
        w.property("reg", &t.child_reg)?;
        w.property("vendor-id", &t.cpu_version)?;
        w.end_node()?;
        w.end_node()?;
        w.begin_node("chosen")?;
        w.property("bootargs", &t.hypertas)?;
        w.end_node()?;
        w.end_node()
    })();
    result.expect("the writer accepts any property bytes");
    w.finish(0).expect("a complete tree")
}

#[test]
fn platform_from_fdt_never_panics_on_malformed_properties() {
    runner()
        .run(&tree(), |t| {
            let blob = build(&t);
            let fdt = fdt::Fdt::new(&blob).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            let platform = Platform::from_fdt(&fdt);
            let hotplug_end = platform.max_possible_ram_addr();
            prop_assert!(platform.memory.iter().all(|r| r.base.get().checked_add(r.size).is_some()));
            prop_assert!(
                platform.memory.iter().all(|r| r.end() <= hotplug_end),
                "{hotplug_end:#x} below RAM"
            );
            Ok(())
        })
        .unwrap();
    println!("Platform::from_fdt: {} executions, no panic", cases());
}

/// A QEMU-shaped 116-byte hot-plug log (hw/ppc/spapr_events.c layout) to mutate.
fn hotplug_log() -> Vec<u8> {
    let mut log = vec![0u8; 116];
    log[..8].copy_from_slice(&[6, 0x34, 0x60, 0xe5, 0, 0, 0, 108]);
    log[0x14..0x18].copy_from_slice(b"IBM\0");
    for (at, id, len) in [(0x18, b"PH", 0x30u16), (0x48, b"UH", 0x18), (0x60, b"HP", 0x14)] {
        log[at..at + 2].copy_from_slice(id);
        log[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    log[0x68..0x74].copy_from_slice(&[2, 1, 4, 0, 0, 0, 0, 4, 0x80, 0, 0, 8]);
    log
}

#[test]
fn event_logs_never_panic() {
    use drivers::dlpar::event::parse_event;
    let strategy = (vec((0usize..116, any::<u8>()), 0..8), 0usize..=116, vec(any::<u8>(), 0..64));
    runner()
        .run(&strategy, |(mutations, keep, tail)| {
            let mut log = hotplug_log();
            for (at, value) in mutations {
                log[at] = value;
            }
            log.truncate(keep);
            log.extend(tail);
            let _ = parse_event(&log);
            Ok(())
        })
        .unwrap();
    println!("event logs: {} executions, no panic", cases());
}
