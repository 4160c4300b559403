//! The IEEE 1275 Open Firmware client interface (SLOF and VOF).
//!
//! r3 = physical address of an array of big-endian 32-bit cells `{service, nargs, nret,
//! args…, rets…}`; every pointer is below 4 GiB and strings are NUL-terminated. The call is
//! made in big-endian real mode through [`crate::firmware::call`]. An unknown service makes
//! SLOF return -1 in r3 and VOF return 0 with ret0 = 0xffffffff
//! (../shared/docs/boot-facts.md, "Open Firmware client interface").

use drivers::devtree::error::DtError;
use drivers::devtree::of::{OfTree, Phandle};

/// Most arguments plus returns any service used here takes.
const MAX_CELLS: usize = 12;
/// Longest NUL-terminated name passed to OF (service, path or property name).
const MAX_NAME: usize = 256;

/// Why an OF call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfError {
    /// The client interface returned a non-zero r3 (e.g. SLOF's -1 for unknown services).
    Failed {
        /// r3 as returned.
        r3: u64,
    },
    /// The service reported failure in its first return cell (-1).
    ReturnedError,
    /// A name was too long or contained a NUL byte.
    BadName,
}

/// A handle on the client interface.
#[derive(Clone, Copy, Debug)]
pub struct OpenFirmware {
    entry: u64,
}

/// A NUL-terminated copy of a name in a stack buffer (below 4 GiB like the whole kernel).
struct CName {
    bytes: [u8; MAX_NAME],
}

impl CName {
    fn new(name: &[u8]) -> Result<Self, OfError> {
        if name.len() >= MAX_NAME || name.contains(&0) {
            return Err(OfError::BadName);
        }
        let mut bytes = [0u8; MAX_NAME];
        bytes[..name.len()].copy_from_slice(name);
        Ok(Self { bytes })
    }

    fn addr(&self) -> u32 {
        self.bytes.as_ptr() as u32
    }
}

impl OpenFirmware {
    /// Wraps the client-interface entry handed over in r5.
    ///
    /// # Safety
    /// `entry` must be the client-interface entry point of a live Open Firmware.
    pub unsafe fn new(entry: u64) -> Self {
        Self { entry }
    }

    /// Calls `service` with `args`, filling `rets`.
    pub fn call(&self, service: &[u8], args: &[u32], rets: &mut [u32]) -> Result<(), OfError> {
        let name = CName::new(service)?;
        let mut cells = [0u32; 3 + MAX_CELLS];
        if args.len() + rets.len() > MAX_CELLS {
            return Err(OfError::BadName);
        }
        cells[0] = name.addr().to_be();
        cells[1] = (args.len() as u32).to_be();
        cells[2] = (rets.len() as u32).to_be();
        for (cell, arg) in cells[3..].iter_mut().zip(args) {
            *cell = arg.to_be();
        }
        // SAFETY: `entry` is the live client interface (constructor contract); `cells` and the
        // names it points to are on our stack below 4 GiB and outlive the call.
        let r3 = unsafe { crate::firmware::call(cells.as_mut_ptr() as u64, 0, self.entry) };
        for (ret, cell) in rets.iter_mut().zip(&cells[3 + args.len()..]) {
            *ret = u32::from_be(*cell);
        }
        if r3 != 0 {
            return Err(OfError::Failed { r3 });
        }
        Ok(())
    }

    /// `finddevice`: the phandle of a node path.
    pub fn find_device(&self, path: &[u8]) -> Result<Phandle, OfError> {
        let name = CName::new(path)?;
        let mut rets = [0u32; 1];
        self.call(b"finddevice", &[name.addr()], &mut rets)?;
        match rets[0] {
            0 | u32::MAX => Err(OfError::ReturnedError),
            handle => Ok(handle),
        }
    }

    /// `open`: an instance handle for a device path.
    pub fn open(&self, path: &[u8]) -> Result<u32, OfError> {
        let name = CName::new(path)?;
        let mut rets = [0u32; 1];
        self.call(b"open", &[name.addr()], &mut rets)?;
        match rets[0] {
            0 | u32::MAX => Err(OfError::ReturnedError),
            handle => Ok(handle),
        }
    }

    /// `claim`: reserves `size` bytes at `addr` (or anywhere with `align`, when non-zero).
    pub fn claim(&self, addr: u32, size: u32, align: u32) -> Result<u32, OfError> {
        let mut rets = [0u32; 1];
        self.call(b"claim", &[addr, size, align], &mut rets)?;
        match rets[0] {
            u32::MAX => Err(OfError::ReturnedError),
            base => Ok(base),
        }
    }

    /// `call-method "instantiate-rtas"` on an open `/rtas`: copies RTAS to `base` and returns
    /// its entry point.
    pub fn instantiate_rtas(&self, rtas_ihandle: u32, base: u32) -> Result<u32, OfError> {
        let method = CName::new(b"instantiate-rtas")?;
        let mut rets = [0u32; 2];
        self.call(b"call-method", &[method.addr(), rtas_ihandle, base], &mut rets)?;
        match rets {
            [0, entry] if entry != 0 && entry != u32::MAX => Ok(entry),
            _ => Err(OfError::ReturnedError),
        }
    }

    /// `ibm,client-architecture-support` (a method of the root node, as Linux's prom_init
    /// calls it): hands OF the CAS buffer at `buffer` (below 4 GiB). Returns the method's
    /// own result word (0 = accepted).
    pub fn client_architecture_support(&self, buffer: u32) -> Result<u32, OfError> {
        let root = self.open(b"/")?;
        let method = CName::new(b"ibm,client-architecture-support")?;
        let mut rets = [0u32; 2];
        self.call(b"call-method", &[method.addr(), root, buffer], &mut rets)?;
        match rets[0] {
            0 => Ok(rets[1]),
            _ => Err(OfError::ReturnedError),
        }
    }

    /// Reads a property of up to 4 bytes as a big-endian u32.
    pub fn property_u32(&self, node: Phandle, name: &[u8]) -> Option<u32> {
        let mut buf = [0u8; 4];
        let len = self.get_property(node, name, &mut buf)?;
        (len == 4).then(|| u32::from_be_bytes(buf))
    }

    fn get_property(&self, node: Phandle, name: &[u8], buf: &mut [u8]) -> Option<usize> {
        let cname = CName::new(name).ok()?;
        let mut rets = [0u32; 1];
        let args = [node, cname.addr(), buf.as_mut_ptr() as u32, buf.len() as u32];
        self.call(b"getprop", &args, &mut rets).ok()?;
        match rets[0] {
            u32::MAX => None,
            len => Some((len as usize).min(buf.len())),
        }
    }

    fn handle_call(&self, service: &[u8], node: Phandle) -> Option<Phandle> {
        let mut rets = [0u32; 1];
        self.call(service, &[node], &mut rets).ok()?;
        match rets[0] {
            0 | u32::MAX => None,
            handle => Some(handle),
        }
    }
}

impl OfTree for OpenFirmware {
    fn peer(&mut self, node: Phandle) -> Option<Phandle> {
        self.handle_call(b"peer", node)
    }

    fn child(&mut self, node: Phandle) -> Option<Phandle> {
        self.handle_call(b"child", node)
    }

    fn next_property(
        &mut self,
        node: Phandle,
        previous: &str,
        buf: &mut [u8; 64],
    ) -> Result<Option<usize>, DtError> {
        let prev =
            CName::new(previous.as_bytes()).map_err(|_| DtError::Malformed("property name too long"))?;
        *buf = [0; 64];
        let mut rets = [0u32; 1];
        self.call(b"nextprop", &[node, prev.addr(), buf.as_mut_ptr() as u32], &mut rets)
            .map_err(|_| DtError::Malformed("OF nextprop failed"))?;
        match rets[0] {
            1 => Ok(Some(buf.iter().position(|&b| b == 0).unwrap_or(buf.len()))),
            0 => Ok(None),
            _ => Err(DtError::Malformed("OF nextprop returned an error")),
        }
    }

    fn property_length(&mut self, node: Phandle, name: &str) -> Option<usize> {
        let cname = CName::new(name.as_bytes()).ok()?;
        let mut rets = [0u32; 1];
        self.call(b"getproplen", &[node, cname.addr()], &mut rets).ok()?;
        match rets[0] {
            u32::MAX => None,
            len => Some(len as usize),
        }
    }

    fn property(&mut self, node: Phandle, name: &str, buf: &mut [u8]) -> Option<usize> {
        self.get_property(node, name.as_bytes(), buf)
    }

    fn path(&mut self, node: Phandle, buf: &mut [u8]) -> Option<usize> {
        let mut rets = [0u32; 1];
        let args = [node, buf.as_mut_ptr() as u32, buf.len() as u32];
        self.call(b"package-to-path", &args, &mut rets).ok()?;
        match rets[0] {
            u32::MAX => None,
            len => {
                let len = (len as usize).min(buf.len());
                // Some firmware counts the terminating NUL.
                Some(buf[..len].iter().position(|&b| b == 0).unwrap_or(len))
            }
        }
    }
}
