//! RTAS event logs as `check-exception` returns them: hot-plug and EPOW events.
//!
//! The layout is LoPAR's "RTAS Event Return Format (Fixed Part)" (8 bytes: version, severity
//! and flags, initiator/target, type, extended length), followed by the "RTAS General Extended
//! Event Log Format, Version 6" header (16 bytes), the company "IBM" (4 bytes), and then
//! sections, each starting with a 2-byte id, a 2-byte length and a version. QEMU writes
//! Main-A ("PH"), Main-B ("UH") and a hot-plug ("HP") or EPOW ("EP") section
//! (hw/ppc/spapr_events.c `spapr_hotplug_req_event`, `spapr_powerdown_req`). Sections are
//! walked by their length fields, as Linux's `get_pseries_errorlog` does, never at fixed
//! offsets. Everything is big-endian.

use core::fmt;

/// Offset of the first section (8-byte fixed part + 16-byte v6 header + 4-byte company).
const FIRST_SECTION: usize = 0x18;
/// Fixed-part event type of a hot-plug event (LoPAR "RTAS Event Type": 0xE5).
const TYPE_HOTPLUG: u8 = 0xE5;
/// Fixed-part event type of an EPOW event (0x40).
const TYPE_EPOW: u8 = 0x40;

/// What kind of resource a hot-plug event is about (LoPAR "Hotplug Section": resource type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// 1: a processor.
    Cpu,
    /// 2: memory (LMBs).
    Memory,
    /// 3: a slot.
    Slot,
    /// 4: a PCI host bridge.
    Phb,
    /// 5: a PCI function.
    Pci,
    /// 6: persistent memory.
    Pmem,
    /// Any other value.
    Other(u8),
}

impl Resource {
    fn from_byte(b: u8) -> Self {
        match b {
            1 => Resource::Cpu,
            2 => Resource::Memory,
            3 => Resource::Slot,
            4 => Resource::Phb,
            5 => Resource::Pci,
            6 => Resource::Pmem,
            other => Resource::Other(other),
        }
    }
}

/// Add or remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// 1.
    Add,
    /// 2.
    Remove,
}

/// Which resources (LoPAR "Hotplug Section": identifier type and identifier).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identifier {
    /// Type 2: one DRC index.
    Index(u32),
    /// Type 3: a count of resources, any (QEMU's memory add before the hot-plug CAS bit).
    Count(u32),
    /// Type 4: `count` resources with consecutive DRC indexes from `first`.
    CountIndexed {
        /// How many.
        count: u32,
        /// The first DRC index.
        first: u32,
    },
}

/// A hot-plug event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HotplugEvent {
    /// What.
    pub resource: Resource,
    /// Add or remove.
    pub action: Action,
    /// Which.
    pub id: Identifier,
}

/// An environmental and power warning (LoPAR "EPOW Action Codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpowEvent {
    /// The action code (low nibble of the sensor value): 3 = system shutdown, 4/5/7 power off.
    pub action: u8,
    /// The event modifier (low nibble): 1 normal, 2 on UPS, 3 ambient temperature, 4 …
    pub modifier: u8,
}

impl EpowEvent {
    /// Whether the platform asks the OS to shut down now (Linux `ras.c:handle_system_shutdown`
    /// and `rtas_parse_epow_errlog`: action 3 with modifier 1, 3 or 4; actions 4, 5 and 7).
    pub const fn asks_power_off(&self) -> bool {
        matches!((self.action, self.modifier), (3, 1 | 3 | 4) | (4 | 5 | 7, _))
    }
}

/// A decoded event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtasEvent {
    /// A hot-plug request.
    Hotplug(HotplugEvent),
    /// An EPOW warning.
    Epow(EpowEvent),
    /// Some other event type, not handled.
    Other {
        /// The fixed part's event type.
        event_type: u8,
    },
}

/// Why a log could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventError {
    /// Shorter than its fixed part and headers.
    TooShort {
        /// Bytes given.
        len: usize,
    },
    /// Not a version-6 log.
    Version(u8),
    /// The fixed part says no extended log follows.
    NoExtendedLog,
    /// A section's length runs past the log or is shorter than its header.
    BadSection {
        /// Its offset.
        offset: usize,
        /// Its length field.
        len: u16,
    },
    /// The hot-plug or EPOW section the event type promises is missing.
    MissingSection(&'static str),
    /// A hot-plug section with an action other than add/remove.
    BadAction(u8),
    /// A hot-plug section with an identifier type this kernel does not handle (1 = DRC name).
    BadIdentifier(u8),
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventError::TooShort { len } => {
                write!(f, "the event log is {len} bytes, shorter than its headers")
            }
            EventError::Version(v) => write!(f, "the event log is version {v}, not 6"),
            EventError::NoExtendedLog => write!(f, "the event log has no extended part"),
            EventError::BadSection { offset, len } => {
                write!(f, "the section at offset {offset:#x} has length {len}, which does not fit the log")
            }
            EventError::MissingSection(id) => write!(f, "the event log has no {id} section"),
            EventError::BadAction(a) => {
                write!(f, "the hot-plug section's action {a} is neither add (1) nor remove (2)")
            }
            EventError::BadIdentifier(t) => {
                write!(
                    f,
                    "the hot-plug section's identifier type {t} is not handled (index, count or count+index)"
                )
            }
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The body (after the 8-byte section header) of the first section called `id`.
fn section<'a>(log: &'a [u8], id: &[u8; 2]) -> Result<Option<&'a [u8]>, EventError> {
    let mut at = FIRST_SECTION;
    while at + 4 <= log.len() {
        let len = be16(log, at + 2).unwrap_or(0);
        let end = at.checked_add(usize::from(len)).filter(|&end| end <= log.len() && len >= 8);
        let Some(end) = end else { return Err(EventError::BadSection { offset: at, len }) };
        if log.get(at..at + 2) == Some(id.as_slice()) {
            return Ok(log.get(at + 8..end));
        }
        at = end;
    }
    Ok(None)
}

/// Decodes one log.
pub fn parse_event(log: &[u8]) -> Result<RtasEvent, EventError> {
    if log.len() < FIRST_SECTION {
        return Err(EventError::TooShort { len: log.len() });
    }
    if log[0] != 6 {
        return Err(EventError::Version(log[0]));
    }
    if log[1] & 0x04 == 0 {
        return Err(EventError::NoExtendedLog);
    }
    // The extended length counts from byte 8; a longer claim than the buffer is trimmed.
    let extended = be32(log, 4).unwrap_or(0) as usize;
    let log = &log[..log.len().min(8usize.saturating_add(extended))];
    match log[3] {
        TYPE_HOTPLUG => {
            let body = section(log, b"HP")?.ok_or(EventError::MissingSection("hot-plug (HP)"))?;
            let field =
                |at: usize| body.get(at).copied().ok_or(EventError::MissingSection("complete hot-plug (HP)"));
            let word = |at: usize| be32(body, at).ok_or(EventError::MissingSection("complete hot-plug (HP)"));
            let resource = Resource::from_byte(field(0)?);
            let action = match field(1)? {
                1 => Action::Add,
                2 => Action::Remove,
                other => return Err(EventError::BadAction(other)),
            };
            let id = match field(2)? {
                2 => Identifier::Index(word(4)?),
                3 => Identifier::Count(word(4)?),
                4 => Identifier::CountIndexed { count: word(4)?, first: word(8)? },
                other => return Err(EventError::BadIdentifier(other)),
            };
            Ok(RtasEvent::Hotplug(HotplugEvent { resource, action, id }))
        }
        TYPE_EPOW => {
            let body = section(log, b"EP")?.ok_or(EventError::MissingSection("EPOW (EP)"))?;
            let (Some(&sensor), Some(&modifier)) = (body.first(), body.get(1)) else {
                return Err(EventError::MissingSection("complete EPOW (EP)"));
            };
            Ok(RtasEvent::Epow(EpowEvent { action: sensor & 0xf, modifier: modifier & 0xf }))
        }
        event_type => Ok(RtasEvent::Other { event_type }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A log shaped as QEMU 7.2 writes it (116 bytes): fixed part, v6 header, company, Main-A,
    /// Main-B and the given last section.
    pub(crate) fn qemu_log(event_type: u8, last_id: &[u8; 2], payload: &[u8]) -> Vec<u8> {
        let mut log = vec![0u8; 116];
        log[0] = 6;
        log[1] = 0x34;
        log[2] = if event_type == TYPE_HOTPLUG { 0x60 } else { 0 };
        log[3] = event_type;
        log[4..8].copy_from_slice(&108u32.to_be_bytes());
        log[8] = 0x86;
        log[0x0a] = 0x8e;
        log[0x14..0x18].copy_from_slice(b"IBM\0");
        log[0x18..0x1a].copy_from_slice(b"PH");
        log[0x1a..0x1c].copy_from_slice(&0x30u16.to_be_bytes());
        log[0x48..0x4a].copy_from_slice(b"UH");
        log[0x4a..0x4c].copy_from_slice(&0x18u16.to_be_bytes());
        log[0x60..0x62].copy_from_slice(last_id);
        log[0x62..0x64].copy_from_slice(&0x14u16.to_be_bytes());
        log[0x68..0x68 + payload.len()].copy_from_slice(payload);
        log
    }

    #[test]
    fn qemu_s_memory_pci_and_phb_logs() {
        // Payloads QEMU 7.2 was seen to write (bytes 0x68..0x73).
        let cases: [(&[u8], HotplugEvent); 4] = [
            (
                &[2, 1, 3, 0, 0, 0, 0, 4, 0, 0, 0, 0],
                HotplugEvent { resource: Resource::Memory, action: Action::Add, id: Identifier::Count(4) },
            ),
            (
                &[2, 2, 4, 0, 0, 0, 0, 4, 0x80, 0, 0, 8],
                HotplugEvent {
                    resource: Resource::Memory,
                    action: Action::Remove,
                    id: Identifier::CountIndexed { count: 4, first: 0x8000_0008 },
                },
            ),
            (
                &[5, 1, 2, 0, 0x40, 0, 0, 0x28],
                HotplugEvent {
                    resource: Resource::Pci,
                    action: Action::Add,
                    id: Identifier::Index(0x4000_0028),
                },
            ),
            (
                &[4, 2, 2, 0, 0x20, 0, 0, 1],
                HotplugEvent {
                    resource: Resource::Phb,
                    action: Action::Remove,
                    id: Identifier::Index(0x2000_0001),
                },
            ),
        ];
        for (payload, expected) in cases {
            assert_eq!(
                parse_event(&qemu_log(TYPE_HOTPLUG, b"HP", payload)),
                Ok(RtasEvent::Hotplug(expected))
            );
        }
    }

    #[test]
    fn system_powerdown_asks_power_off() {
        let log = qemu_log(TYPE_EPOW, b"EP", &[3, 1, 1, 0]);
        let Ok(RtasEvent::Epow(epow)) = parse_event(&log) else { panic!("{:?}", parse_event(&log)) };
        assert_eq!((epow.action, epow.modifier), (3, 1));
        assert!(epow.asks_power_off());
        assert!(!EpowEvent { action: 3, modifier: 2 }.asks_power_off(), "on UPS: only a warning");
        assert!(EpowEvent { action: 7, modifier: 0 }.asks_power_off());
    }

    #[test]
    fn malformed_logs_are_errors_not_panics() {
        let good = qemu_log(TYPE_HOTPLUG, b"HP", &[2, 1, 4, 0, 0, 0, 0, 1, 0x80, 0, 0, 8]);
        assert_eq!(parse_event(&good[..10]), Err(EventError::TooShort { len: 10 }));
        let mut v = good.clone();
        v[0] = 5;
        assert_eq!(parse_event(&v), Err(EventError::Version(5)));
        let mut no_ext = good.clone();
        no_ext[1] = 0x30;
        assert_eq!(parse_event(&no_ext), Err(EventError::NoExtendedLog));
        let mut bad_len = good.clone();
        bad_len[0x1a..0x1c].copy_from_slice(&0xffffu16.to_be_bytes());
        assert_eq!(parse_event(&bad_len), Err(EventError::BadSection { offset: 0x18, len: 0xffff }));
        let mut zero_len = good.clone();
        zero_len[0x4a..0x4c].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(parse_event(&zero_len), Err(EventError::BadSection { offset: 0x48, len: 0 }));
        let mut no_hp = good.clone();
        no_hp[0x60..0x62].copy_from_slice(b"XX");
        assert_eq!(parse_event(&no_hp), Err(EventError::MissingSection("hot-plug (HP)")));
        let mut action = good.clone();
        action[0x69] = 9;
        assert_eq!(parse_event(&action), Err(EventError::BadAction(9)));
        let mut by_name = good.clone();
        by_name[0x6a] = 1;
        assert_eq!(parse_event(&by_name), Err(EventError::BadIdentifier(1)));
        // An extended length shorter than the sections cuts the HP section off.
        let mut short = good;
        short[4..8].copy_from_slice(&0x50u32.to_be_bytes());
        assert!(parse_event(&short).is_err());
        assert_eq!(parse_event(&qemu_log(0x20, b"HP", &[])), Ok(RtasEvent::Other { event_type: 0x20 }));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic sweep: every single-byte corruption of a good log.
        let good = qemu_log(TYPE_HOTPLUG, b"HP", &[2, 1, 4, 0, 0, 0, 0, 1, 0x80, 0, 0, 8]);
        for at in 0..good.len() {
            for value in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut log = good.clone();
                log[at] = value;
                let _ = parse_event(&log);
            }
        }
    }
}
