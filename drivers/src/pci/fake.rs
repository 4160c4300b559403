//! A fake configuration space for host tests, emulating BAR sizing and absent functions.
//!
//! Each function has a 4 KiB byte array (little-endian, as real configuration space) and a
//! per-byte write mask: writes change only writable bits, so a BAR with writable address bits
//! `!(size - 1)` and read-only type bits reads back its size after all ones are written (PCI
//! Local Bus 3.0 §6.2.5.1). The Command register is writable. Absent functions answer like QEMU
//! (RTAS status −1), with `NoDevice`, or with all ones, as chosen; accesses beyond a function's
//! configuration size fail with −1 as in QEMU `spapr_pci.c : rtas_ibm_read_pci_config`.

use alloc::{collections::BTreeMap, vec, vec::Vec};

use super::bar::BarKind;
use super::bdf::Bdf;
use super::config::{
    check_offset, ConfigAccess, ConfigError, Width, CONFIG_SPACE_SIZE, EXTENDED_CONFIG_SPACE_SIZE,
    RTAS_HARDWARE_ERROR,
};
use super::header::{
    bar_offset, Command, CAPABILITIES_POINTER, COMMAND, HEADER_TYPE, HEADER_TYPE_BRIDGE, PRIMARY_BUS,
    SECONDARY_BUS, STATUS, SUBORDINATE_BUS,
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

    /// Makes this a PCI-to-PCI bridge from `primary` to `secondary` (subordinate = secondary).
    pub fn make_bridge(&mut self, primary: u8, secondary: u8) -> &mut Self {
        self.set_header_type(HEADER_TYPE_BRIDGE);
        self.poke(0x08, 0x0604_0001, Width::Dword);
        self.poke(PRIMARY_BUS, u32::from(primary), Width::Byte);
        self.poke(SECONDARY_BUS, u32::from(secondary), Width::Byte);
        self.poke(SUBORDINATE_BUS, u32::from(secondary), Width::Byte);
        self
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

/// A fake PHB: functions by BDF plus knobs for failure injection.
pub struct FakeConfigSpace {
    functions: BTreeMap<Bdf, FakeFunction>,
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
            functions: BTreeMap::new(),
            failing: BTreeMap::new(),
            absent: AbsentResponse::RtasHardwareError,
            decode_violations: 0,
            writes: Vec::new(),
        }
    }

    /// Adds a type 0 function and returns it for further setup.
    pub fn add_function(
        &mut self,
        bdf: Bdf,
        vendor_id: u16,
        device_id: u16,
        class_code: u32,
    ) -> &mut FakeFunction {
        self.functions.insert(bdf, FakeFunction::new(vendor_id, device_id, class_code));
        self.function_mut(bdf)
    }

    /// The function at `bdf` (panics if absent: test setup error).
    pub fn function(&self, bdf: Bdf) -> &FakeFunction {
        &self.functions[&bdf]
    }

    /// The function at `bdf`, mutably (panics if absent: test setup error).
    pub fn function_mut(&mut self, bdf: Bdf) -> &mut FakeFunction {
        self.functions.get_mut(&bdf).expect("no such fake function")
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
        let Some(function) = self.functions.get(&bdf) else {
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
        let touches_bars = offset >= bar_offset(0) && offset < bar_offset(6);
        function.write_masked(offset, width, value);
        if decoding && touches_bars {
            self.decode_violations += 1;
        }
        self.writes.push((bdf, offset, width, value));
        Ok(())
    }
}
