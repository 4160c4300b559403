//! Dynamic-reconfiguration connectors (DRCs): their indexes, the sensor and indicators PAPR
//! defines for them, and the calls a kernel makes on them (LoPAR "Dynamic Reconfiguration":
//! `get-sensor-state` sensor 9003 dr-entity-sense, `set-indicator` 9001 isolation-state and
//! 9003 allocation-state, `ibm,configure-connector`).

use core::fmt;

/// A DRC index: type in the top 4 bits (QEMU hw/ppc/spapr_drc.c `spapr_drc_index`: 1 CPU,
/// 2 PHB, 4 PCI, 8 LMB, 9 PMEM), id below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DrcIndex(pub u32);

impl fmt::Display for DrcIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// What `get-sensor-state(9003)` says is behind a DRC (LoPAR "dr-entity-sense").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntitySense {
    /// 0: nothing (an empty slot).
    Empty,
    /// 1: present (a PCI function; a logical resource this partition owns).
    Present,
    /// 2: a logical resource that may be allocated to this partition (or none at all: QEMU
    /// answers 2 for an LMB DRC without a DIMM too).
    Unusable,
    /// Any other value.
    Other(u32),
}

impl EntitySense {
    /// From the sensor's value.
    pub const fn from_value(value: u32) -> Self {
        match value {
            0 => EntitySense::Empty,
            1 => EntitySense::Present,
            2 => EntitySense::Unusable,
            other => EntitySense::Other(other),
        }
    }
}

/// The indicators `set-indicator` sets on a DRC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indicator {
    /// 9001 isolation-state: 0 isolate, 1 unisolate.
    Isolation,
    /// 9003 allocation-state: 0 unusable, 1 usable (logical DRCs only).
    Allocation,
}

impl Indicator {
    /// The indicator token.
    pub const fn token(self) -> u32 {
        match self {
            Indicator::Isolation => 9001,
            Indicator::Allocation => 9003,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Indicator::Isolation => "isolation-state",
            Indicator::Allocation => "allocation-state",
        }
    }
}

/// The value an indicator is set to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndicatorState {
    /// 0: isolate / unusable.
    Off,
    /// 1: unisolate / usable.
    On,
}

impl IndicatorState {
    /// The value passed to RTAS.
    pub const fn value(self) -> u32 {
        match self {
            IndicatorState::Off => 0,
            IndicatorState::On => 1,
        }
    }
}

/// A DRC call and its arguments, for error sentences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrcCall {
    /// `get-sensor-state(9003, drc)`.
    Sense(DrcIndex),
    /// `set-indicator(indicator, drc, state)`.
    SetIndicator(Indicator, DrcIndex, IndicatorState),
    /// `ibm,configure-connector` on `drc`.
    Configure(DrcIndex),
}

impl fmt::Display for DrcCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrcCall::Sense(drc) => write!(f, "get-sensor-state(9003 dr-entity-sense, drc {drc})"),
            DrcCall::SetIndicator(indicator, drc, state) => write!(
                f,
                "set-indicator({} {}, drc {drc}, {})",
                indicator.token(),
                indicator.name(),
                state.value()
            ),
            DrcCall::Configure(drc) => write!(f, "ibm,configure-connector(drc {drc})"),
        }
    }
}

/// A DRC call answered a non-zero status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrcError {
    /// The call.
    pub call: DrcCall,
    /// Its RTAS status.
    pub status: i32,
}

impl fmt::Display for DrcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed with status {}", self.call, self.status)
    }
}

/// The DRC calls of a platform. `configure` runs `ibm,configure-connector` to completion
/// (status 0), discarding the node it describes; an implementation reports the status that
/// stopped it.
pub trait DrcCalls {
    /// `get-sensor-state(9003, drc)`.
    fn sense(&mut self, drc: DrcIndex) -> Result<EntitySense, DrcError>;
    /// `set-indicator(indicator, drc, state)`.
    fn set_indicator(
        &mut self,
        indicator: Indicator,
        drc: DrcIndex,
        state: IndicatorState,
    ) -> Result<(), DrcError>;
    /// `ibm,configure-connector` until it answers 0.
    fn configure(&mut self, drc: DrcIndex) -> Result<(), DrcError>;
}

/// Most `ibm,configure-connector` calls one configuration may take (QEMU: 5 for an LMB, 27 for
/// an empty PHB; a PHB with devices more) before it is declared stuck.
pub const MAX_CONFIGURE_CALLS: u32 = 4096;

/// Runs `ibm,configure-connector` (`call` makes one call and returns its status) until it
/// answers 0: statuses 1–4 (next sibling, child, property, parent) and busy (−2, 990x) go on;
/// 5 (needs more memory) and every other status are errors. Returns the number of calls.
pub fn configure_to_completion(drc: DrcIndex, mut call: impl FnMut() -> i32) -> Result<u32, DrcError> {
    for calls in 1..=MAX_CONFIGURE_CALLS {
        match call() {
            0 => return Ok(calls),
            1..=4 | -2 | 9900..=9905 => {}
            status => return Err(DrcError { call: DrcCall::Configure(drc), status }),
        }
    }
    Err(DrcError { call: DrcCall::Configure(drc), status: 4 })
}

/// Takes a logical resource (an LMB, a PHB) into the partition: the sensor must read
/// "unusable", then allocation-state usable, isolation-state unisolate, and configure-connector
/// to completion (QEMU never lets an LMB left unisolated and unconfigured be isolated again).
/// On a failure after the first indicator the steps done are undone, so the DRC is as it was.
pub fn acquire_logical(calls: &mut impl DrcCalls, drc: DrcIndex) -> Result<(), AcquireError> {
    match calls.sense(drc).map_err(AcquireError::Call)? {
        EntitySense::Unusable => {}
        other => return Err(AcquireError::NotAvailable { drc, sense: other }),
    }
    calls.set_indicator(Indicator::Allocation, drc, IndicatorState::On).map_err(AcquireError::Call)?;
    if let Err(error) = calls.set_indicator(Indicator::Isolation, drc, IndicatorState::On) {
        let undo = calls.set_indicator(Indicator::Allocation, drc, IndicatorState::Off).err();
        return Err(AcquireError::Undone { error, undo });
    }
    if let Err(error) = calls.configure(drc) {
        let undo = calls
            .set_indicator(Indicator::Isolation, drc, IndicatorState::Off)
            .and_then(|()| calls.set_indicator(Indicator::Allocation, drc, IndicatorState::Off))
            .err();
        return Err(AcquireError::Undone { error, undo });
    }
    Ok(())
}

/// Gives a logical resource back: isolate, then allocation-state unusable (QEMU releases the
/// LMB or PHB at the second call).
pub fn release_logical(calls: &mut impl DrcCalls, drc: DrcIndex) -> Result<(), DrcError> {
    calls.set_indicator(Indicator::Isolation, drc, IndicatorState::Off)?;
    calls.set_indicator(Indicator::Allocation, drc, IndicatorState::Off)
}

/// Refuses a pending remove of a logical resource the kernel cannot give up: unisolating a
/// DRC with an unplug pending rolls the request back (QEMU `spapr_memory_unplug_rollback`
/// emits `DEVICE_UNPLUG_GUEST_ERROR`).
pub fn refuse_remove(calls: &mut impl DrcCalls, drc: DrcIndex) -> Result<(), DrcError> {
    calls.set_indicator(Indicator::Isolation, drc, IndicatorState::On)
}

/// Why a logical resource could not be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcquireError {
    /// The sensor call failed; nothing was changed.
    Call(DrcError),
    /// The sensor says the resource is not there to take.
    NotAvailable {
        /// The DRC.
        drc: DrcIndex,
        /// What the sensor read.
        sense: EntitySense,
    },
    /// A step failed; the steps before it were undone (`undo`: the undo's own failure).
    Undone {
        /// The failing step.
        error: DrcError,
        /// The undo's failure, if any.
        undo: Option<DrcError>,
    },
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcquireError::Call(error) => write!(f, "{error}"),
            AcquireError::NotAvailable { drc, sense } => {
                write!(f, "drc {drc} is not available to take (dr-entity-sense reads {sense:?})")
            }
            AcquireError::Undone { error, undo: None } => {
                write!(f, "{error}; the steps before it were undone")
            }
            AcquireError::Undone { error, undo: Some(undo) } => {
                write!(f, "{error}; undoing the steps before it failed too: {undo}")
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;

    /// A QEMU-like LMB DRC state machine: unusable → available (9003=1) → unisolated (9001=1)
    /// → configured; failures injected by call number.
    #[derive(Default)]
    pub(crate) struct FakeDrcs {
        pub state: BTreeMap<u32, u8>,
        pub calls: Vec<DrcCall>,
        pub fail_at: Option<usize>,
    }

    impl FakeDrcs {
        fn fail(&mut self, call: DrcCall) -> Result<(), DrcError> {
            self.calls.push(call);
            match self.fail_at {
                Some(n) if n == self.calls.len() => Err(DrcError { call, status: -1 }),
                _ => Ok(()),
            }
        }
    }

    impl DrcCalls for FakeDrcs {
        fn sense(&mut self, drc: DrcIndex) -> Result<EntitySense, DrcError> {
            self.fail(DrcCall::Sense(drc))?;
            Ok(match self.state.get(&drc.0).copied().unwrap_or(1) {
                1 => EntitySense::Unusable,
                _ => EntitySense::Present,
            })
        }
        fn set_indicator(&mut self, i: Indicator, drc: DrcIndex, s: IndicatorState) -> Result<(), DrcError> {
            self.fail(DrcCall::SetIndicator(i, drc, s))?;
            let state = self.state.entry(drc.0).or_insert(1);
            *state = match (i, s) {
                (Indicator::Allocation, IndicatorState::On) => 2,
                (Indicator::Isolation, IndicatorState::On) => 3,
                (Indicator::Isolation, IndicatorState::Off) => 2,
                (Indicator::Allocation, IndicatorState::Off) => 1,
            };
            Ok(())
        }
        fn configure(&mut self, drc: DrcIndex) -> Result<(), DrcError> {
            self.fail(DrcCall::Configure(drc))?;
            self.state.insert(drc.0, 4);
            Ok(())
        }
    }

    const LMB: DrcIndex = DrcIndex(0x8000_0008);

    #[test]
    fn acquire_then_release_walks_the_states() {
        let mut drcs = FakeDrcs::default();
        acquire_logical(&mut drcs, LMB).unwrap();
        assert_eq!(drcs.state[&LMB.0], 4);
        assert_eq!(drcs.calls.len(), 4);
        release_logical(&mut drcs, LMB).unwrap();
        assert_eq!(drcs.state[&LMB.0], 1);
        assert_eq!(
            drcs.calls[4..],
            [
                DrcCall::SetIndicator(Indicator::Isolation, LMB, IndicatorState::Off),
                DrcCall::SetIndicator(Indicator::Allocation, LMB, IndicatorState::Off)
            ]
        );
    }

    #[test]
    fn a_failed_step_is_undone() {
        for fail_at in 2..=4 {
            let mut drcs = FakeDrcs { fail_at: Some(fail_at), ..FakeDrcs::default() };
            let error = acquire_logical(&mut drcs, LMB).unwrap_err();
            match fail_at {
                2 => assert!(matches!(error, AcquireError::Call(_)), "{fail_at}: {error}"),
                _ => assert!(matches!(error, AcquireError::Undone { undo: None, .. }), "{fail_at}: {error}"),
            }
            assert_eq!(drcs.state.get(&LMB.0).copied().unwrap_or(1), 1, "{fail_at}: back to unusable");
        }
        let mut drcs = FakeDrcs::default();
        drcs.state.insert(LMB.0, 4);
        let error = acquire_logical(&mut drcs, LMB).unwrap_err();
        assert_eq!(error, AcquireError::NotAvailable { drc: LMB, sense: EntitySense::Present });
        assert_eq!(drcs.calls.len(), 1, "nothing but the sensor");
    }

    #[test]
    fn configure_runs_to_completion_or_names_the_status() {
        let mut answers = [2, 3, 3, -2, 4, 0].into_iter();
        assert_eq!(configure_to_completion(LMB, || answers.next().unwrap()), Ok(6));
        let mut answers = [2, 3, -9003].into_iter();
        assert_eq!(
            configure_to_completion(LMB, || answers.next().unwrap()),
            Err(DrcError { call: DrcCall::Configure(LMB), status: -9003 })
        );
        assert!(configure_to_completion(LMB, || 3).is_err(), "a configuration that never ends is stuck");
    }

    #[test]
    fn sentences_name_the_call() {
        let e = DrcError {
            call: DrcCall::SetIndicator(Indicator::Isolation, LMB, IndicatorState::Off),
            status: -3,
        };
        assert_eq!(
            e.to_string(),
            "set-indicator(9001 isolation-state, drc 0x80000008, 0) failed with status -3"
        );
    }
}
