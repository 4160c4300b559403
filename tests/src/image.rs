//! Builds the raw `-bios` image from the kernel ELF.
//!
//! QEMU's FDT-direct path loads a raw binary at physical 0 and starts it at 0x100 in
//! big-endian 32-bit real mode with the FDT address in r3 (QEMU hw/ppc/spapr.c `spapr_machine_reset`). The
//! kernel itself is linked to run at 0x400000, so the image is: a 16-instruction big-endian
//! stub at 0x100 that copies the kernel's file bytes from image offset 0x1000 to 0x400000 and
//! branches to the ELF entry (r3 untouched), followed by those bytes. One kernel, three paths.

use std::fmt;

/// Where the kernel's bytes sit inside the raw image.
pub const PAYLOAD_OFFSET: usize = 0x1000;
/// Where the stub starts (QEMU's entry point for `-bios`).
pub const STUB_OFFSET: usize = 0x100;
/// QEMU refuses larger firmware images.
pub const MAX_IMAGE: usize = 4 << 20;

/// Why an image could not be built.
#[derive(Debug, PartialEq, Eq)]
pub enum ImageError {
    /// The input is not a 64-bit little-endian ELF.
    NotElf,
    /// A header or segment lies outside the file.
    Truncated,
    /// Not exactly one loadable segment, or one the stub cannot copy.
    Layout(String),
    /// The result would exceed [`MAX_IMAGE`].
    TooLarge(usize),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::NotElf => write!(f, "not a 64-bit little-endian ELF file"),
            ImageError::Truncated => write!(f, "ELF headers or segments run past the end of the file"),
            ImageError::Layout(why) => write!(f, "unsupported ELF layout: {why}"),
            ImageError::TooLarge(n) => {
                write!(f, "image would be {n} bytes, QEMU accepts at most {MAX_IMAGE}")
            }
        }
    }
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, ImageError> {
    b.get(off..off + 2).map(|s| u16::from_le_bytes([s[0], s[1]])).ok_or(ImageError::Truncated)
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, ImageError> {
    b.get(off..off + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]])).ok_or(ImageError::Truncated)
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, ImageError> {
    let s = b.get(off..off + 8).ok_or(ImageError::Truncated)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

/// The one loadable segment of the kernel.
#[derive(Debug, PartialEq, Eq)]
pub struct Segment {
    /// Run address.
    pub vaddr: u64,
    /// Bytes in the file.
    pub bytes: Vec<u8>,
    /// ELF entry point.
    pub entry: u64,
}

/// Extracts the single PT_LOAD segment and the entry point.
pub fn load_segment(elf: &[u8]) -> Result<Segment, ImageError> {
    if elf.get(0..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err(ImageError::NotElf);
    }
    let entry = u64_at(elf, 0x18)?;
    let phoff = u64_at(elf, 0x20)? as usize;
    let phentsize = usize::from(u16_at(elf, 0x36)?);
    let phnum = usize::from(u16_at(elf, 0x38)?);
    let mut loads = Vec::new();
    for i in 0..phnum {
        let ph = phoff.checked_add(i * phentsize).ok_or(ImageError::Truncated)?;
        if u32_at(elf, ph)? != 1 {
            continue;
        }
        let offset = u64_at(elf, ph + 8)? as usize;
        let vaddr = u64_at(elf, ph + 16)?;
        let filesz = u64_at(elf, ph + 32)? as usize;
        let bytes = elf
            .get(offset..offset.checked_add(filesz).ok_or(ImageError::Truncated)?)
            .ok_or(ImageError::Truncated)?;
        loads.push(Segment { vaddr, bytes: bytes.to_vec(), entry });
    }
    match loads.len() {
        1 => Ok(loads.remove(0)),
        n => Err(ImageError::Layout(format!("{n} PT_LOAD segments, expected 1"))),
    }
}

/// Big-endian encodings of the copy stub's instructions.
fn stub(dest: u64, words: u32, entry: u64) -> Vec<u32> {
    let hi = |v: u64| ((v >> 16) & 0xffff) as u32;
    let lo = |v: u64| (v & 0xffff) as u32;
    vec![
        0x3d40_0000 | hi(dest),              // lis   r10, dest@h
        0x614a_0000 | lo(dest),              // ori   r10, r10, dest@l
        0x3960_0000 | PAYLOAD_OFFSET as u32, // li    r11, PAYLOAD_OFFSET
        0x3d80_0000 | hi(u64::from(words)),  // lis   r12, words@h
        0x618c_0000 | lo(u64::from(words)),  // ori   r12, r12, words@l
        0x7d89_03a6,                         // mtctr r12
        0x800b_0000,                         // 1: lwz r0, 0(r11)
        0x900a_0000,                         //    stw r0, 0(r10)
        0x396b_0004,                         //    addi r11, r11, 4
        0x394a_0004,                         //    addi r10, r10, 4
        0x4200_fff0,                         //    bdnz 1b
        0x7c00_04ac,                         // sync
        0x4c00_012c,                         // isync
        0x3d40_0000 | hi(entry),             // lis   r10, entry@h
        0x614a_0000 | lo(entry),             // ori   r10, r10, entry@l
        0x7d49_03a6,                         // mtctr r10
        0x4e80_0420,                         // bctr
    ]
}

/// Builds the raw `-bios` image for a kernel ELF.
pub fn bios_image(elf: &[u8]) -> Result<Vec<u8>, ImageError> {
    let segment = load_segment(elf)?;
    if segment.vaddr >= 0x8000_0000 || segment.entry >= 0x8000_0000 || segment.vaddr < 0x40_0000 {
        return Err(ImageError::Layout(format!(
            "segment at {:#x} / entry {:#x}",
            segment.vaddr, segment.entry
        )));
    }
    let total = PAYLOAD_OFFSET + segment.bytes.len();
    if total > MAX_IMAGE {
        return Err(ImageError::TooLarge(total));
    }
    let words = segment.bytes.len().div_ceil(4) as u32;
    let mut image = vec![0u8; PAYLOAD_OFFSET + words as usize * 4];
    for (i, insn) in stub(segment.vaddr, words, segment.entry).iter().enumerate() {
        let at = STUB_OFFSET + 4 * i;
        image[at..at + 4].copy_from_slice(&insn.to_be_bytes());
    }
    image[PAYLOAD_OFFSET..PAYLOAD_OFFSET + segment.bytes.len()].copy_from_slice(&segment.bytes);
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_elf(vaddr: u64, payload: &[u8]) -> Vec<u8> {
        let mut elf = vec![0u8; 0x100];
        elf[0..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[0x18..0x20].copy_from_slice(&vaddr.to_le_bytes());
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        let ph = 0x40;
        elf[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
        elf[ph + 8..ph + 16].copy_from_slice(&0x100u64.to_le_bytes());
        elf[ph + 16..ph + 24].copy_from_slice(&vaddr.to_le_bytes());
        elf[ph + 32..ph + 40].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        elf.extend_from_slice(payload);
        elf
    }

    #[test]
    fn image_has_stub_at_0x100_and_payload_at_0x1000() {
        let image = bios_image(&fake_elf(0x40_0000, &[1, 2, 3, 4, 5])).unwrap();
        assert_eq!(&image[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 5], &[1, 2, 3, 4, 5]);
        assert_eq!(image.len(), PAYLOAD_OFFSET + 8, "payload padded to whole words");
        // lis r10, 0x40 — big-endian — then the word count (2) in the ori.
        assert_eq!(&image[0x100..0x104], &[0x3d, 0x40, 0x00, 0x40]);
        assert_eq!(&image[0x110..0x114], &[0x61, 0x8c, 0x00, 0x02]);
        assert_eq!(&image[0x140..0x144], &0x4e80_0420u32.to_be_bytes(), "ends with bctr");
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(bios_image(b"nope"), Err(ImageError::NotElf));
        let mut elf = fake_elf(0x40_0000, &[0; 16]);
        elf.truncate(0x108);
        assert_eq!(bios_image(&elf), Err(ImageError::Truncated));
        assert!(matches!(bios_image(&fake_elf(0x1000, &[0; 4])), Err(ImageError::Layout(_))));
        assert!(matches!(
            bios_image(&fake_elf(0x40_0000, &vec![0; MAX_IMAGE])),
            Err(ImageError::TooLarge(_))
        ));
    }
}
