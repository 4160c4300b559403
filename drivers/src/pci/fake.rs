//! A fake configuration space for host tests, emulating BAR sizing and absent functions.
//!
//! Each function has a 4 KiB byte array (little-endian, as real configuration space) and a
//! per-byte write mask: writes change only writable bits, so a BAR with writable address bits
//! `!(size - 1)` and read-only type bits reads back its size after all ones are written (PCI
//! Local Bus 3.0 §6.2.5.1). The Command register is writable. Absent functions answer like QEMU
//! (RTAS status −1), with `NoDevice`, or with all ones, as chosen; accesses beyond a function's
//! configuration size fail with −1 as in QEMU `spapr_pci.c : rtas_ibm_read_pci_config`.
//!
//! Functions sit on the root bus or behind a fake bridge, and an access to bus N is routed the
//! way a PCI-to-PCI bridge routes a type 1 configuration cycle (PCI-to-PCI Bridge Architecture
//! 1.2 §3.2.5.3–4; QEMU `hw/pci/pci.c : pci_find_bus_nr`): bus 0 is the root bus; otherwise a
//! bridge on the current bus whose secondary bus is N owns it, or one whose secondary..=
//! subordinate range holds N is descended into. So bus numbers the code under test programs
//! decide which function answers, and a function behind an unnumbered bridge is unreachable.

use alloc::{collections::BTreeMap, vec, vec::Vec};

use super::bar::BarKind;
use super::bdf::Bdf;
use super::bridge::Decode;
use super::config::{
    check_offset, ConfigAccess, ConfigError, Width, CONFIG_SPACE_SIZE, EXTENDED_CONFIG_SPACE_SIZE,
    RTAS_HARDWARE_ERROR,
};
use super::header::{
    bar_offset, Command, CAPABILITIES_POINTER, COMMAND, HEADER_TYPE, HEADER_TYPE_BRIDGE, IO_BASE, IO_LIMIT,
    MEMORY_BASE, MEMORY_LIMIT, PREFETCHABLE_BASE, PREFETCHABLE_BASE_UPPER, PREFETCHABLE_LIMIT,
    PREFETCHABLE_LIMIT_UPPER, PRIMARY_BUS, SECONDARY_BUS, STATUS, SUBORDINATE_BUS,
};

/// How accesses to a function that does not exist are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbsentResponse {
    /// RTAS status −1, as QEMU does.
    RtasHardwareError,
    /// [`ConfigError::NoDevice`].
    NoDevice,
    /// Success with all ones, as LoPAR specifies.
    AllOnes,
}

/// One fake function's configuration space.
pub struct FakeFunction {
    data: Vec<u8>,
    write_mask: Vec<u8>,
    config_size: u16,
    last_capability_link: u16,
    next_capability: u8,
    last_extended_header: Option<u16>,
    next_extended: u16,
}

impl FakeFunction {
    fn new(vendor_id: u16, device_id: u16, class_code: u32) -> Self {
        let mut function = Self {
            data: vec![0; usize::from(EXTENDED_CONFIG_SPACE_SIZE)],
            write_mask: vec![0; usize::from(EXTENDED_CONFIG_SPACE_SIZE)],
            config_size: CONFIG_SPACE_SIZE,
            last_capability_link: CAPABILITIES_POINTER,
            next_capability: 0x40,
            last_extended_header: None,
            next_extended: 0x100,
        };
        function.poke(0x00, u32::from(vendor_id) | (u32::from(device_id) << 16), Width::Dword);
        function.poke(0x08, class_code << 8 | 0x01, Width::Dword);
        function.set_mask(COMMAND, 0x07ff, Width::Word);
        function
    }

    /// Stores `value` at `offset` regardless of the write mask.
    pub fn poke(&mut self, offset: u16, value: u32, width: Width) {
        let start = usize::from(offset);
        for (i, byte) in value.to_le_bytes()[..usize::from(width.bytes())].iter().enumerate() {
            self.data[start + i] = *byte;
        }
    }

    /// Reads `width` bytes at `offset` regardless of the configuration size.
    pub fn peek(&self, offset: u16, width: Width) -> u32 {
        let start = usize::from(offset);
        let mut bytes = [0u8; 4];
        let len = usize::from(width.bytes());
        bytes[..len].copy_from_slice(&self.data[start..start + len]);
        u32::from_le_bytes(bytes)
    }

    /// Makes the bits of `mask` at `offset` writable.
    pub fn set_mask(&mut self, offset: u16, mask: u32, width: Width) {
        let start = usize::from(offset);
        for (i, byte) in mask.to_le_bytes()[..usize::from(width.bytes())].iter().enumerate() {
            self.write_mask[start + i] = *byte;
        }
    }

    /// Sets the header type byte (layout | 0x80 for multi-function).
    pub fn set_header_type(&mut self, header_type: u8) -> &mut Self {
        self.poke(HEADER_TYPE, u32::from(header_type), Width::Byte);
        self
    }

    /// Makes this a PCI-to-PCI bridge from `primary` to `secondary` (subordinate = secondary)
    /// with writable bus numbers and QEMU's windows: 16-bit I/O, memory, 64-bit prefetchable,
    /// all at reset values (QEMU `hw/pci/pci.c : pci_init_wmask_bridge`).
    pub fn make_bridge(&mut self, primary: u8, secondary: u8) -> &mut Self {
        self.set_header_type(HEADER_TYPE_BRIDGE);
        self.poke(0x08, 0x0604_0001, Width::Dword);
        self.poke(PRIMARY_BUS, u32::from(primary), Width::Byte);
        self.poke(SECONDARY_BUS, u32::from(secondary), Width::Byte);
        self.poke(SUBORDINATE_BUS, u32::from(secondary), Width::Byte);
        self.set_mask(PRIMARY_BUS, 0xff_ffff, Width::Dword);
        self.set_mask(MEMORY_BASE, 0xfff0, Width::Word);
        self.set_mask(MEMORY_LIMIT, 0xfff0, Width::Word);
        self.set_bridge_windows(Some(Decode::Bits16), Some(Decode::Bits64))
    }

    /// Chooses which optional bridge windows exist and their decode widths (`None`: the
    /// registers read 0 and ignore writes).
    pub fn set_bridge_windows(&mut self, io: Option<Decode>, prefetchable: Option<Decode>) -> &mut Self {
        let io_type = u32::from(io == Some(Decode::Bits32));
        let io_mask = if io.is_some() { 0xf0 } else { 0 };
        for register in [IO_BASE, IO_LIMIT] {
            self.poke(register, io_type, Width::Byte);
            self.set_mask(register, io_mask, Width::Byte);
        }
        let io_upper_mask = if io == Some(Decode::Bits32) { 0xffff } else { 0 };
        self.set_mask(super::header::IO_BASE_UPPER, io_upper_mask, Width::Word);
        self.set_mask(super::header::IO_LIMIT_UPPER, io_upper_mask, Width::Word);
        let prefetchable_type = u32::from(prefetchable == Some(Decode::Bits64));
        let prefetchable_mask = if prefetchable.is_some() { 0xfff0 } else { 0 };
        for register in [PREFETCHABLE_BASE, PREFETCHABLE_LIMIT] {
            self.poke(register, prefetchable_type, Width::Word);
            self.set_mask(register, prefetchable_mask, Width::Word);
        }
        let upper_mask = if prefetchable == Some(Decode::Bits64) { u32::MAX } else { 0 };
        self.set_mask(PREFETCHABLE_BASE_UPPER, upper_mask, Width::Dword);
        self.set_mask(PREFETCHABLE_LIMIT_UPPER, upper_mask, Width::Dword);
        self
    }

    /// True for a type 1 header.
    fn is_bridge(&self) -> bool {
        self.peek(HEADER_TYPE, Width::Byte) & 0x7f == u32::from(HEADER_TYPE_BRIDGE)
    }

    /// Secondary and subordinate bus numbers as programmed.
    fn secondary_range(&self) -> (u8, u8) {
        (self.peek(SECONDARY_BUS, Width::Byte) as u8, self.peek(SUBORDINATE_BUS, Width::Byte) as u8)
    }

    /// Number of BAR registers of this header layout.
    fn bar_registers(&self) -> u16 {
        if self.is_bridge() {
            2
        } else {
            6
        }
    }

    /// Implements BAR `index` of `kind` and `size` (a power of two) at address 0.
    pub fn set_bar(&mut self, index: u8, kind: BarKind, size: u64) -> &mut Self {
        let offset = bar_offset(index);
        let address_mask = !(size - 1);
        let (type_bits, low_mask) = match kind {
            BarKind::Io => (0x1, address_mask as u32 & !0x3),
            BarKind::Mem32 => (0x0, address_mask as u32 & !0xf),
            BarKind::Mem64 => (0x4, address_mask as u32 & !0xf),
        };
        self.poke(offset, type_bits, Width::Dword);
        self.set_mask(offset, low_mask, Width::Dword);
        if kind == BarKind::Mem64 {
            self.poke(offset + 4, 0, Width::Dword);
            self.set_mask(offset + 4, (address_mask >> 32) as u32, Width::Dword);
        }
        self
    }

    /// Marks memory BAR `index` prefetchable (bit 3).
    pub fn set_prefetchable(&mut self, index: u8) -> &mut Self {
        let offset = bar_offset(index);
        self.poke(offset, self.peek(offset, Width::Dword) | 0x8, Width::Dword);
        self
    }

    /// Programs BAR `index` with `address` as firmware would (type bits kept).
    pub fn set_bar_address(&mut self, index: u8, address: u64) -> &mut Self {
        let offset = bar_offset(index);
        let type_bits = self.peek(offset, Width::Dword) & 0xf;
        let low_bits = if type_bits & 1 != 0 { 0x3 } else { 0xf };
        let low = (address as u32 & !low_bits) | (type_bits & low_bits);
        self.poke(offset, low, Width::Dword);
        if type_bits & 0x7 == 0x4 {
            self.poke(offset + 4, (address >> 32) as u32, Width::Dword);
        }
        self
    }

    /// Sets the Command register value.
    pub fn set_command(&mut self, command: Command) -> &mut Self {
        self.poke(COMMAND, u32::from(command.bits()), Width::Word);
        self
    }

    /// Appends a standard capability with `body` after its 2-byte header; returns its offset.
    pub fn add_capability(&mut self, id: u8, body: &[u8]) -> u8 {
        let offset = self.next_capability;
        self.poke(STATUS, self.peek(STATUS, Width::Word) | 0x10, Width::Word);
        self.poke(self.last_capability_link, u32::from(offset), Width::Byte);
        self.poke(u16::from(offset), u32::from(id), Width::Word);
        for (i, byte) in body.iter().enumerate() {
            self.data[usize::from(offset) + 2 + i] = *byte;
        }
        self.last_capability_link = u16::from(offset) + 1;
        let length = (2 + body.len()).next_multiple_of(4);
        self.next_capability = offset + u8::try_from(length).expect("capability too long");
        offset
    }

    /// Appends an extended capability with `body` after its 4-byte header (and makes the
    /// function's configuration space 4 KiB); returns its offset.
    pub fn add_extended_capability(&mut self, id: u16, version: u8, body: &[u8]) -> u16 {
        self.config_size = EXTENDED_CONFIG_SPACE_SIZE;
        let offset = self.next_extended;
        if let Some(previous) = self.last_extended_header {
            let header = self.peek(previous, Width::Dword) | (u32::from(offset) << 20);
            self.poke(previous, header, Width::Dword);
        }
        self.poke(offset, u32::from(id) | (u32::from(version) << 16), Width::Dword);
        for (i, byte) in body.iter().enumerate() {
            self.data[usize::from(offset) + 4 + i] = *byte;
        }
        self.last_extended_header = Some(offset);
        self.next_extended = offset + u16::try_from((4 + body.len()).next_multiple_of(4)).unwrap();
        offset
    }

    /// Makes the 4 KiB extended configuration space accessible (PCI Express function).
    pub fn enable_extended_space(&mut self) -> &mut Self {
        self.config_size = EXTENDED_CONFIG_SPACE_SIZE;
        self
    }

    fn write_masked(&mut self, offset: u16, width: Width, value: u32) {
        let start = usize::from(offset);
        for (i, byte) in value.to_le_bytes()[..usize::from(width.bytes())].iter().enumerate() {
            let mask = self.write_mask[start + i];
            self.data[start + i] = (self.data[start + i] & !mask) | (byte & mask);
        }
    }
}

/// Where a fake function sits: behind which bridge (an index into the slot list; `None` for
/// the root bus), at which device and function number.
struct Slot {
    parent: Option<usize>,
    device: u8,
    function: u8,
    config: FakeFunction,
}

/// A handle to a fake function that stays valid whatever bus numbers it ends up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotId(usize);

/// A fake PHB: functions on a bus tree plus knobs for failure injection.
pub struct FakeConfigSpace {
    slots: Vec<Slot>,
    failing: BTreeMap<Bdf, i32>,
    /// How absent functions answer.
    pub absent: AbsentResponse,
    /// BAR writes made while the function had I/O or memory decode enabled.
    pub decode_violations: usize,
    /// Every successful write, in order.
    pub writes: Vec<(Bdf, u16, Width, u32)>,
}

impl FakeConfigSpace {
    /// An empty bus where absent functions answer like QEMU (status −1).
    pub fn new() -> Self {
        Self {
            slots: Vec::new(),
            failing: BTreeMap::new(),
            absent: AbsentResponse::RtasHardwareError,
            decode_violations: 0,
            writes: Vec::new(),
        }
    }

    /// Adds a type 0 function at `bdf` and returns it for further setup: on the root bus for
    /// bus 0, else behind the bridge that bus `bdf.bus` routes to now (panics if none does, or
    /// if the slot is taken: test setup errors).
    pub fn add_function(
        &mut self,
        bdf: Bdf,
        vendor_id: u16,
        device_id: u16,
        class_code: u32,
    ) -> &mut FakeFunction {
        let parent = self.route(bdf.bus).expect("no fake bridge routes to this bus");
        self.insert(parent, bdf.device, bdf.function, FakeFunction::new(vendor_id, device_id, class_code))
    }

    /// Adds a type 0 function at `device`.`function` on the root bus (`parent` `None`) or
    /// directly behind the fake bridge `parent`, whatever bus numbers that bridge holds (zero
    /// included); returns its handle. `ids` are vendor ID, device ID and class code.
    pub fn attach(
        &mut self,
        parent: Option<SlotId>,
        device: u8,
        function: u8,
        ids: (u16, u16, u32),
    ) -> SlotId {
        if let Some(SlotId(index)) = parent {
            assert!(self.slots[index].config.is_bridge(), "the parent slot is not a bridge");
        }
        self.insert(parent.map(|p| p.0), device, function, FakeFunction::new(ids.0, ids.1, ids.2));
        SlotId(self.slots.len() - 1)
    }

    /// The function behind handle `id`, wherever bus numbering put it.
    pub fn slot(&mut self, id: SlotId) -> &mut FakeFunction {
        &mut self.slots[id.0].config
    }

    /// The function behind handle `id`, read-only.
    pub fn slot_ref(&self, id: SlotId) -> &FakeFunction {
        &self.slots[id.0].config
    }

    fn insert(
        &mut self,
        parent: Option<usize>,
        device: u8,
        function: u8,
        config: FakeFunction,
    ) -> &mut FakeFunction {
        let taken =
            self.slots.iter().any(|s| s.parent == parent && s.device == device && s.function == function);
        assert!(!taken, "fake slot {device:02x}.{function} is taken");
        self.slots.push(Slot { parent, device, function, config });
        &mut self.slots.last_mut().expect("just pushed").config
    }

    /// The bridge slot owning bus `bus` (`Some(None)` for the root bus 0), `None` if no bridge
    /// routes there.
    fn route(&self, bus: u8) -> Option<Option<usize>> {
        if bus == 0 {
            return Some(None);
        }
        let mut at: Option<usize> = None;
        for _ in 0..=self.slots.len() {
            let mut descend = None;
            for (index, slot) in self.slots.iter().enumerate() {
                if slot.parent != at || !slot.config.is_bridge() {
                    continue;
                }
                let (secondary, subordinate) = slot.config.secondary_range();
                if secondary == bus {
                    return Some(Some(index));
                }
                if descend.is_none() && (secondary..=subordinate).contains(&bus) {
                    descend = Some(index);
                }
            }
            at = Some(descend?);
        }
        None
    }

    fn slot_index(&self, bdf: Bdf) -> Option<usize> {
        let parent = self.route(bdf.bus)?;
        self.slots
            .iter()
            .position(|s| s.parent == parent && s.device == bdf.device && s.function == bdf.function)
    }

    /// The function answering at `bdf` (panics if none: test setup error).
    pub fn function(&self, bdf: Bdf) -> &FakeFunction {
        let index = self.slot_index(bdf).expect("no such fake function");
        &self.slots[index].config
    }

    /// The function answering at `bdf`, mutably (panics if none: test setup error).
    pub fn function_mut(&mut self, bdf: Bdf) -> &mut FakeFunction {
        let index = self.slot_index(bdf).expect("no such fake function");
        &mut self.slots[index].config
    }

    /// Makes every access to `bdf` fail with RTAS `status`.
    pub fn fail_accesses(&mut self, bdf: Bdf, status: i32) {
        self.failing.insert(bdf, status);
    }

    fn check(&self, bdf: Bdf, offset: u16, width: Width) -> Result<Option<&FakeFunction>, ConfigError> {
        check_offset(offset, width)?;
        if let Some(&status) = self.failing.get(&bdf) {
            return Err(ConfigError::Failed { status });
        }
        let Some(function) = self.slot_index(bdf).map(|index| &self.slots[index].config) else {
            return match self.absent {
                AbsentResponse::RtasHardwareError => Err(ConfigError::Failed { status: RTAS_HARDWARE_ERROR }),
                AbsentResponse::NoDevice => Err(ConfigError::NoDevice),
                AbsentResponse::AllOnes => Ok(None),
            };
        };
        if offset + width.bytes() > function.config_size {
            return Err(ConfigError::Failed { status: RTAS_HARDWARE_ERROR });
        }
        Ok(Some(function))
    }
}

impl Default for FakeConfigSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigAccess for FakeConfigSpace {
    fn read(&mut self, bdf: Bdf, offset: u16, width: Width) -> Result<u32, ConfigError> {
        Ok(match self.check(bdf, offset, width)? {
            Some(function) => function.peek(offset, width),
            None => width.value_mask(),
        })
    }

    fn write(&mut self, bdf: Bdf, offset: u16, width: Width, value: u32) -> Result<(), ConfigError> {
        if self.check(bdf, offset, width)?.is_none() {
            return Ok(());
        }
        let function = self.function_mut(bdf);
        let decoding = function.peek(COMMAND, Width::Word) & 0x3 != 0;
        let touches_bars = offset >= bar_offset(0) && offset < bar_offset(0) + 4 * function.bar_registers();
        function.write_masked(offset, width, value);
        if decoding && touches_bars {
            self.decode_violations += 1;
        }
        self.writes.push((bdf, offset, width, value));
        Ok(())
    }
}
