//! The IEEE 1275 Open Firmware client interface (SLOF and VOF).
//!
//! r3 = physical address of an array of big-endian 32-bit cells `{service, nargs, nret,
//! args…, rets…}`; every pointer is below 4 GiB and strings are NUL-terminated. The call is
//! made in big-endian real mode through [`crate::firmware::call`]. An unknown service makes
//! SLOF return -1 in r3 and VOF return 0 with ret0 = 0xffffffff (IEEE 1275 "Client
//! interface"; SLOF `slof/fs/client.fs`, QEMU hw/ppc/vof.c `vof_client_handle`).
//!
//! [`OpenFirmware::call`] is `unsafe` (a service writes wherever its arguments point); the
//! methods below wrap the services the kernel uses over typed arguments (buffers it owns,
//! NUL-terminated copies of names), except `instantiate-rtas`, which copies RTAS to an
//! address the caller must have claimed.

/// An Open Firmware package handle.
pub type Phandle = u32;

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
    ///
    /// # Safety
    /// Every argument the service takes as an address must name memory below 4 GiB that is
    /// valid, for the whole call, for what the service does with it (IEEE 1275 per service).
    pub unsafe fn call(&self, service: &[u8], args: &[u32], rets: &mut [u32]) -> Result<(), OfError> {
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
        // name it points to are on our stack below 4 GiB and outlive the call; the service's
        // arguments are the caller's contract.
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
        // SAFETY: finddevice reads the NUL-terminated path in `name`.
        unsafe { self.call(b"finddevice", &[name.addr()], &mut rets) }?;
        match rets[0] {
            0 | u32::MAX => Err(OfError::ReturnedError),
            handle => Ok(handle),
        }
    }

    /// `open`: an instance handle for a device path.
    pub fn open(&self, path: &[u8]) -> Result<u32, OfError> {
        let name = CName::new(path)?;
        let mut rets = [0u32; 1];
        // SAFETY: open reads the NUL-terminated path in `name`.
        unsafe { self.call(b"open", &[name.addr()], &mut rets) }?;
        match rets[0] {
            0 | u32::MAX => Err(OfError::ReturnedError),
            handle => Ok(handle),
        }
    }

    /// `claim`: reserves `size` bytes at `addr` (or anywhere with `align`, when non-zero).
    pub fn claim(&self, addr: u32, size: u32, align: u32) -> Result<u32, OfError> {
        let mut rets = [0u32; 1];
        // SAFETY: claim takes values only; it reserves memory and touches none.
        unsafe { self.call(b"claim", &[addr, size, align], &mut rets) }?;
        match rets[0] {
            u32::MAX => Err(OfError::ReturnedError),
            base => Ok(base),
        }
    }

    /// `call-method "instantiate-rtas"` on an open `/rtas`: copies RTAS to `base` and returns
    /// its entry point.
    ///
    /// # Safety
    /// `[base, base + rtas-size)` must be memory claimed from OF for RTAS and used by nothing
    /// else, now or later.
    pub unsafe fn instantiate_rtas(&self, rtas_ihandle: u32, base: u32) -> Result<u32, OfError> {
        let method = CName::new(b"instantiate-rtas")?;
        let mut rets = [0u32; 2];
        // SAFETY: the method name is NUL-terminated on our stack; RTAS is copied to `base`,
        // which the caller vouches for.
        unsafe { self.call(b"call-method", &[method.addr(), rtas_ihandle, base], &mut rets) }?;
        match rets {
            [0, entry] if entry != 0 && entry != u32::MAX => Ok(entry),
            _ => Err(OfError::ReturnedError),
        }
    }

    /// `ibm,client-architecture-support` (a method of the root node, as Linux's prom_init
    /// calls it): hands OF the CAS buffer `vector`, which must lie below 4 GiB
    /// ([`OfError::BadName`] otherwise). Returns the method's own result word (0 = accepted).
    pub fn client_architecture_support(&self, vector: &[u8]) -> Result<u32, OfError> {
        let buffer = u32::try_from(vector.as_ptr() as usize).map_err(|_| OfError::BadName)?;
        if u32::try_from(vector.as_ptr() as usize + vector.len()).is_err() {
            return Err(OfError::BadName);
        }
        let root = self.open(b"/")?;
        let method = CName::new(b"ibm,client-architecture-support")?;
        let mut rets = [0u32; 2];
        // SAFETY: the method name is on our stack; OF reads the vector, which `vector`
        // borrows for the whole call (QEMU `spapr_h_cas_compose_response` only reads it).
        unsafe { self.call(b"call-method", &[method.addr(), root, buffer], &mut rets) }?;
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
        let args = [node, cname.addr(), u32::try_from(buf.as_mut_ptr() as usize).ok()?, buf.len() as u32];
        // SAFETY: getprop reads the name and writes at most `buf.len()` bytes into `buf`,
        // which is borrowed mutably for the call and lies below 4 GiB (checked above).
        unsafe { self.call(b"getprop", &args, &mut rets) }.ok()?;
        match rets[0] {
            u32::MAX => None,
            len => Some((len as usize).min(buf.len())),
        }
    }

    fn handle_call(&self, service: &[u8], node: Phandle) -> Option<Phandle> {
        let mut rets = [0u32; 1];
        // SAFETY: peer and child take a phandle (a value) and touch no memory.
        unsafe { self.call(service, &[node], &mut rets) }.ok()?;
        match rets[0] {
            0 | u32::MAX => None,
            handle => Some(handle),
        }
    }
}

impl OpenFirmware {
    /// `peer`: the next sibling of `node` (0 = the root).
    pub fn peer(&self, node: Phandle) -> Option<Phandle> {
        self.handle_call(b"peer", node)
    }

    /// `child`: the first child of `node`.
    pub fn child(&self, node: Phandle) -> Option<Phandle> {
        self.handle_call(b"child", node)
    }

    /// `nextprop`: the name of the property after `previous` (empty = the first) into `buf`;
    /// `Ok(None)` after the last one, `Ok(Some(len))` with the name's length.
    pub fn next_property(
        &self,
        node: Phandle,
        previous: &str,
        buf: &mut [u8; 64],
    ) -> Result<Option<usize>, OfError> {
        let prev = CName::new(previous.as_bytes())?;
        *buf = [0; 64];
        let mut rets = [0u32; 1];
        let out = u32::try_from(buf.as_mut_ptr() as usize).map_err(|_| OfError::BadName)?;
        // SAFETY: nextprop reads the NUL-terminated previous name and writes at most 32
        // bytes (IEEE 1275) into `buf`, 64 bytes borrowed mutably for the call, below 4 GiB.
        unsafe { self.call(b"nextprop", &[node, prev.addr(), out], &mut rets) }?;
        match rets[0] {
            1 => Ok(Some(buf.iter().position(|&b| b == 0).unwrap_or(buf.len()))),
            0 => Ok(None),
            _ => Err(OfError::ReturnedError),
        }
    }

    /// `getproplen`: the length of property `name` of `node`.
    pub fn property_length(&self, node: Phandle, name: &str) -> Option<usize> {
        let cname = CName::new(name.as_bytes()).ok()?;
        let mut rets = [0u32; 1];
        // SAFETY: getproplen reads the NUL-terminated name only.
        unsafe { self.call(b"getproplen", &[node, cname.addr()], &mut rets) }.ok()?;
        match rets[0] {
            u32::MAX => None,
            len => Some(len as usize),
        }
    }

    /// `getprop`: copies property `name` of `node` into `buf`; returns the bytes copied.
    pub fn property(&self, node: Phandle, name: &str, buf: &mut [u8]) -> Option<usize> {
        self.get_property(node, name.as_bytes(), buf)
    }

    /// `package-to-path`: the node's full path into `buf`; returns its length.
    pub fn path(&self, node: Phandle, buf: &mut [u8]) -> Option<usize> {
        let mut rets = [0u32; 1];
        let args = [node, u32::try_from(buf.as_mut_ptr() as usize).ok()?, buf.len() as u32];
        // SAFETY: package-to-path writes at most `buf.len()` bytes into `buf`, borrowed
        // mutably for the call and below 4 GiB (checked above).
        unsafe { self.call(b"package-to-path", &args, &mut rets) }.ok()?;
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
