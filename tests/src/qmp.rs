//! A minimal QMP client (QEMU's machine protocol, docs/interop/qmp-spec.rst): connect to the
//! Unix socket, read the greeting, `qmp_capabilities`, then one JSON object per line. Events
//! that arrive while a command waits for its `return` are kept, so a scenario can wait for
//! `DEVICE_DELETED` after the command that caused it.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A connected QMP session.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Every event received so far, in order.
    pub events: Vec<Value>,
    /// Events not yet consumed by [`Qmp::wait_event`].
    pending: Vec<Value>,
}

impl Qmp {
    /// Connects to `path` (retrying until it exists or `timeout` passes) and negotiates.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, String> {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(e) if start.elapsed() > timeout => {
                    return Err(format!("QMP socket {} did not answer: {e}", path.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(1))).map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut qmp = Qmp { reader: BufReader::new(stream), writer, events: Vec::new(), pending: Vec::new() };
        let greeting = qmp.read_line(start + timeout)?;
        if greeting.get("QMP").is_none() {
            return Err(format!("not a QMP greeting: {greeting}"));
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn read_line(&mut self, deadline: Instant) -> Result<Value, String> {
        let mut line = String::new();
        loop {
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err(String::from("QEMU closed the QMP socket")),
                Ok(_) if line.ends_with('\n') => {
                    return serde_json::from_str(&line).map_err(|e| format!("bad QMP line {line:?}: {e}"))
                }
                Ok(_) => {}
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    if Instant::now() > deadline {
                        return Err(String::from("no QMP answer in time"));
                    }
                }
                Err(e) => return Err(format!("reading QMP: {e}")),
            }
        }
    }

    /// Runs `command` with `arguments`; `Ok` with its `return`, `Err` with its `error`.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, String> {
        let request = json!({ "execute": command, "arguments": arguments });
        writeln!(self.writer, "{request}").map_err(|e| format!("writing QMP: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = self.read_line(deadline)?;
            if answer.get("event").is_some() {
                self.events.push(answer.clone());
                self.pending.push(answer);
                continue;
            }
            if let Some(result) = answer.get("return") {
                return Ok(result.clone());
            }
            return Err(format!("{command} failed: {}", answer.get("error").unwrap_or(&answer)));
        }
    }

    /// Waits for event `name` whose `data` satisfies `matches`, up to `timeout`.
    pub fn wait_event(
        &mut self,
        name: &str,
        matches: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self
                .pending
                .iter()
                .position(|e| e["event"] == name && matches(e.get("data").unwrap_or(&Value::Null)))
            {
                return Ok(self.pending.remove(i));
            }
            let line = self.read_line(deadline).map_err(|e| format!("waiting for {name}: {e}"))?;
            if line.get("event").is_some() {
                self.events.push(line.clone());
                self.pending.push(line);
            }
        }
    }

    /// The names of the events received so far.
    pub fn event_names(&self) -> Vec<String> {
        self.events.iter().filter_map(|e| e["event"].as_str().map(String::from)).collect()
    }
}
