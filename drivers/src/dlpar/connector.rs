//! The device-tree fragment `ibm,configure-connector` describes, one call at a time (LoPAR
//! "ibm,configure-connector"; QEMU hw/ppc/spapr_drc.c `rtas_ibm_configure_connector`).
//!
//! After each call the 4 KiB work area holds, for status 2 (next child) the byte offset of the
//! new node's NUL-terminated name in word 2; for status 3 (next property) the name's offset in
//! word 2, the value's length in word 3 and its offset in word 4; statuses 1 (next sibling) and
//! 4 (back to the parent) carry nothing; 0 ends the fragment. Offsets are from the start of the
//! work area and values may be unaligned (QEMU puts the name at 20 and the value right after
//! its NUL). The first node is the fragment's root (Linux `dlpar.c:dlpar_configure_connector`
//! attaches it under the parent the caller chose).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::devtree::error::DtError;
use crate::devtree::writer::FdtWriter;

/// A property given by name and value.
pub type Prop<'a> = (&'a str, &'a [u8]);

/// One node of a fragment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FragmentNode {
    /// Its name (`pci@800000020000001`, `scsi@5`).
    pub name: String,
    /// Its parent's index in [`Fragment::nodes`] (`None` for the root).
    pub parent: Option<usize>,
    /// Its properties in order.
    pub props: Vec<(String, Vec<u8>)>,
}

/// A fragment being built from configure-connector's answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fragment {
    /// Nodes in the order they came (the root first).
    pub nodes: Vec<FragmentNode>,
    current: Option<usize>,
    done: bool,
}

/// A work area configure-connector's answer does not make sense of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectorError {
    /// An offset or length points outside the work area.
    OutOfBounds {
        /// The status being decoded.
        status: i32,
    },
    /// A name is not NUL-terminated UTF-8.
    BadName,
    /// A property, a parent step or a sibling before any node.
    NoNode {
        /// The status.
        status: i32,
    },
    /// Another step after the fragment was complete.
    AfterEnd,
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectorError::OutOfBounds { status } => {
                write!(f, "ibm,configure-connector status {status} points outside its 4 KiB work area")
            }
            ConnectorError::BadName => {
                write!(f, "ibm,configure-connector gave a name that is not a C string")
            }
            ConnectorError::NoNode { status } => {
                write!(f, "ibm,configure-connector answered status {status} before describing any node")
            }
            ConnectorError::AfterEnd => write!(f, "ibm,configure-connector went on after completing"),
        }
    }
}

fn word(work: &[u8], index: usize, status: i32) -> Result<usize, ConnectorError> {
    let bytes = work.get(index * 4..index * 4 + 4).ok_or(ConnectorError::OutOfBounds { status })?;
    Ok(u32::from_be_bytes(bytes.try_into().map_err(|_| ConnectorError::OutOfBounds { status })?) as usize)
}

fn c_string(work: &[u8], offset: usize, status: i32) -> Result<String, ConnectorError> {
    let tail = work.get(offset..).ok_or(ConnectorError::OutOfBounds { status })?;
    let end = tail.iter().position(|&b| b == 0).ok_or(ConnectorError::BadName)?;
    core::str::from_utf8(&tail[..end]).map(ToString::to_string).map_err(|_| ConnectorError::BadName)
}

impl Fragment {
    /// Takes one answer: `status` and the work area after the call. Busy statuses (−2, 990x)
    /// change nothing; errors are the caller's to handle.
    pub fn step(&mut self, status: i32, work: &[u8]) -> Result<(), ConnectorError> {
        if self.done && status != -2 && !(9900..=9905).contains(&status) {
            return Err(ConnectorError::AfterEnd);
        }
        match status {
            0 => self.done = true,
            1 | 2 => {
                let name = c_string(work, word(work, 2, status)?, status)?;
                let parent = match (status, self.current) {
                    (2, current) => current,
                    (_, Some(current)) => self.nodes[current].parent,
                    (_, None) => return Err(ConnectorError::NoNode { status }),
                };
                self.nodes.push(FragmentNode { name, parent, props: Vec::new() });
                self.current = Some(self.nodes.len() - 1);
            }
            3 => {
                let current = self.current.ok_or(ConnectorError::NoNode { status })?;
                let name = c_string(work, word(work, 2, status)?, status)?;
                let (len, at) = (word(work, 3, status)?, word(work, 4, status)?);
                let value =
                    work.get(at..at.saturating_add(len)).ok_or(ConnectorError::OutOfBounds { status })?;
                self.nodes[current].props.push((name, value.to_vec()));
            }
            4 => {
                let current = self.current.ok_or(ConnectorError::NoNode { status })?;
                self.current = self.nodes[current].parent;
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether the fragment is complete (status 0 seen).
    pub fn is_complete(&self) -> bool {
        self.done
    }

    /// A property of the root node.
    pub fn root_prop(&self, name: &str) -> Option<&[u8]> {
        self.nodes.first()?.props.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// The fragment as a flattened tree: under a root with `root_props` (the cells the parent
    /// node defines, say), the nodes on `path` (each `(name, props)`), then the fragment — so
    /// the device-tree parsers that read the boot tree read it too.
    pub fn to_fdt(
        &self,
        root_props: &[(&str, &[u8])],
        path: &[(&str, &[Prop<'_>])],
    ) -> Result<Vec<u8>, DtError> {
        let mut w = FdtWriter::new();
        w.begin_node("")?;
        for (name, value) in root_props {
            w.property(name, value)?;
        }
        for (name, props) in path {
            w.begin_node(name)?;
            for (prop, value) in *props {
                w.property(prop, value)?;
            }
        }
        self.write_node(&mut w, 0)?;
        for _ in path {
            w.end_node()?;
        }
        w.end_node()?;
        w.finish(0)
    }

    fn write_node(&self, w: &mut FdtWriter, index: usize) -> Result<(), DtError> {
        let Some(node) = self.nodes.get(index) else { return Ok(()) };
        w.begin_node(&node.name)?;
        for (name, value) in &node.props {
            w.property(name, value)?;
        }
        for child in (0..self.nodes.len()).filter(|&c| self.nodes[c].parent == Some(index)) {
            self.write_node(w, child)?;
        }
        w.end_node()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdt::Fdt;

    /// A work area as QEMU leaves it: name at 20, value right after the name's NUL.
    fn area(status: i32, name: &str, value: &[u8]) -> Vec<u8> {
        let mut work = vec![0u8; 4096];
        work[8..12].copy_from_slice(&20u32.to_be_bytes());
        work[20..20 + name.len()].copy_from_slice(name.as_bytes());
        if status == 3 {
            let at = 20 + name.len() + 1;
            work[12..16].copy_from_slice(&(value.len() as u32).to_be_bytes());
            work[16..20].copy_from_slice(&(at as u32).to_be_bytes());
            work[at..at + value.len()].copy_from_slice(value);
        }
        work
    }

    #[test]
    fn a_pci_function_fragment_becomes_a_node_the_parsers_read() {
        let mut f = Fragment::default();
        f.step(2, &area(2, "scsi@5", &[])).unwrap();
        f.step(3, &area(3, "vendor-id", &0x1af4u32.to_be_bytes())).unwrap();
        f.step(3, &area(3, "reg", &[0, 0, 0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])).unwrap();
        f.step(-2, &[]).unwrap();
        f.step(0, &[]).unwrap();
        assert!(f.is_complete());
        assert_eq!(f.nodes.len(), 1);
        assert_eq!(f.root_prop("vendor-id"), Some(&0x1af4u32.to_be_bytes()[..]));
        let blob =
            f.to_fdt(&[("#address-cells", &2u32.to_be_bytes())], &[("pci@800000020000000", &[])]).unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let node = fdt.find_node("/pci@800000020000000/scsi@5").expect("the node under its PHB");
        assert_eq!(node.property("vendor-id").map(|p| p.value), Some(&0x1af4u32.to_be_bytes()[..]));
        assert_eq!(f.step(3, &area(3, "x", &[])), Err(ConnectorError::AfterEnd));
    }

    #[test]
    fn children_siblings_and_parents_nest() {
        let mut f = Fragment::default();
        for (status, name) in
            [(2, "pci@1"), (2, "a@1"), (1, "b@2"), (4, ""), (2, "c@3"), (4, ""), (4, ""), (0, "")]
        {
            f.step(status, &area(status, name, &[])).unwrap();
        }
        let parents: Vec<_> = f.nodes.iter().map(|n| (n.name.as_str(), n.parent)).collect();
        assert_eq!(parents, [("pci@1", None), ("a@1", Some(0)), ("b@2", Some(0)), ("c@3", Some(0))]);
    }

    #[test]
    fn a_bad_work_area_is_an_error() {
        let mut f = Fragment::default();
        assert_eq!(f.step(3, &area(3, "reg", &[1])), Err(ConnectorError::NoNode { status: 3 }));
        let mut far = area(2, "x", &[]);
        far[8..12].copy_from_slice(&5000u32.to_be_bytes());
        assert_eq!(f.step(2, &far), Err(ConnectorError::OutOfBounds { status: 2 }));
        let mut unterminated = vec![b'a'; 4096];
        unterminated[8..12].copy_from_slice(&20u32.to_be_bytes());
        assert_eq!(f.step(2, &unterminated), Err(ConnectorError::BadName));
        f.step(2, &area(2, "n@0", &[])).unwrap();
        let mut long = area(3, "p", &[]);
        long[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(f.step(3, &long), Err(ConnectorError::OutOfBounds { status: 3 }));
    }
}
