//! Everything that failed or was not done, in words: every `*.status` that is not `ok`, every
//! `*.error`, `*_error` and `*.why`, `*.problem` lines, values `fail`/`failed`, an unexpected
//! interrupt, the console's `error:` and `PANIC:` lines and QEMU's own complaints, and a
//! report that never reached `exit.status`.

use crate::kv::Kv;

/// One thing that went wrong, or that was not attempted (a `*.why`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Where it was said: a report key, or `console` for a console line.
    pub source: String,
    /// What was said.
    pub text: String,
    /// A `*.why`: the kernel did not attempt something, and says why.
    pub not_attempted: bool,
}

impl Failure {
    /// The failure as one sentence: `key=word` for a one-word failure, `key=word: words` for a
    /// word explained, else (and for every `*.why`) `key: sentence`; console lines as they were.
    pub fn sentence(&self) -> String {
        let first = self.text.split([' ', ':']).next().unwrap_or("");
        if self.source == "console" {
            self.text.clone()
        } else if self.not_attempted {
            format!("{}: {}", self.source, self.text)
        } else if !self.text.contains(' ') || self.text.starts_with(&format!("{first}: ")) {
            format!("{}={}", self.source, self.text)
        } else {
            format!("{}: {}", self.source, self.text)
        }
    }
}

/// The failures of a report, in console order; `console` also gives the `error:` lines.
pub fn collect(kv: &Kv, console: &str) -> Vec<Failure> {
    let mut failures: Vec<Failure> = Vec::new();
    let mut push = |source: &str, text: String, not_attempted: bool| {
        let failure = Failure { source: source.to_string(), text, not_attempted };
        if !failures.contains(&failure) {
            failures.push(failure);
        }
    };
    for (key, value) in kv.entries() {
        let value = value.trim();
        let status = key.ends_with(".status") || key == "status";
        let said_why = key.ends_with(".why");
        let error = key.ends_with(".error") || key.ends_with("_error");
        let problem = key.ends_with(".problem") || key == "problem";
        let failed = matches!(value, "fail" | "failed");
        if key == "exit.status" && value == "fail" {
            push(key, "fail: the kernel ended with ibm,os-term (QEMU exits 1)".to_string(), false);
        } else if key == "selftest.status" && value == "fail" {
            let failures = kv.get("selftest.failures").unwrap_or("?");
            push(key, format!("fail: {failures} device(s) failed the DMA self-test"), false);
        } else if (status && value != "ok") || error || problem || failed {
            push(key, value.to_string(), false);
        } else if said_why {
            push(key, value.to_string(), true);
        } else if key.ends_with(".default_restore") && value != "restored" {
            push(key, value.to_string(), false);
        }
    }
    if let Some(vector) = kv.get("exception.vector") {
        let mut text = format!("an unexpected interrupt, vector {vector}");
        for field in ["srr0", "srr1", "dar", "dsisr"] {
            if let Some(value) = kv.get(&format!("exception.{field}")) {
                text.push_str(&format!(", {} {value}", field.to_uppercase()));
            }
        }
        push("exception.vector", text, false);
    }
    let errors: Vec<&str> = console
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| l.starts_with("error:") || l.starts_with("PANIC:"))
        .collect();
    for line in &errors {
        push("console", line.to_string(), false);
    }
    for line in console.lines().map(|l| l.trim_end_matches('\r')) {
        let Some(message) = line.strip_prefix("qemu-system-ppc64: ") else { continue };
        let repeated = message
            .strip_prefix("OS terminated: ")
            .is_some_and(|m| errors.iter().any(|e| e.strip_prefix("error: ") == Some(m)));
        if !repeated {
            push("console", format!("QEMU: {message}"), false);
        }
    }
    if kv.is_empty() {
        push(
            "console",
            "no report: the console holds no key=value line (the kernel never ran or printed nothing)".into(),
            false,
        );
    } else if kv.get("exit.status").is_none() {
        push(
            "exit.status",
            "never printed: the kernel hung, crashed or was stopped before the end of its report".into(),
            false,
        );
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_errors_and_console_lines() {
        let console = "blk.0.status=ok\nblk.1.status=BAR 1 is outside\npe.0.ddw=none\n\
            pe.0.ddw.why=ddw=off\nmmu.error=H_ENTER failed\nselftest.status=fail\n\
            error: the DMA self-test failed\nexit.status=fail\n\
            qemu-system-ppc64: OS terminated: the DMA self-test failed\n";
        let failures = collect(&Kv::parse(console), console);
        let sentences: Vec<String> = failures.iter().map(Failure::sentence).collect();
        assert_eq!(
            sentences,
            vec![
                "blk.1.status: BAR 1 is outside",
                "pe.0.ddw.why: ddw=off",
                "mmu.error: H_ENTER failed",
                "selftest.status=fail: ? device(s) failed the DMA self-test",
                "exit.status=fail: the kernel ended with ibm,os-term (QEMU exits 1)",
                "error: the DMA self-test failed",
            ],
            "QEMU's OS terminated line repeats the error line and is left out"
        );
    }

    #[test]
    fn a_clean_report_has_none_and_a_cut_one_says_so() {
        let clean = "selftest.status=ok\nblk.0.status=ok\nexit.status=ok\n";
        assert!(collect(&Kv::parse(clean), clean).is_empty());
        let cut = "boot.firmware=vof\n";
        let failures = collect(&Kv::parse(cut), cut);
        assert_eq!(failures.len(), 1);
        assert!(failures[0].sentence().starts_with("exit.status: never printed"), "{failures:?}");
        let nothing = collect(&Kv::parse(""), "qemu-system-ppc64: -device nope: not found\n");
        assert_eq!(nothing[0].sentence(), "QEMU: -device nope: not found");
        assert!(nothing[1].sentence().starts_with("no report"));
    }
}
