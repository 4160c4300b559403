//! `report [options] CONSOLE`: the summary of a boot for a person, from a console log (or a
//! file of `key=value` lines), as `./run.sh` prints it after every boot.
//!
//! Options:
//!   --kv                   print every `key=value` line instead of the summary
//!   --kv-out FILE          also write the `key=value` lines to FILE (the machine interface)
//!   --svg FILE             also write the bus-address maps as an SVG to FILE
//!   --summary-out FILE     also write the plain summary to FILE
//!   --color auto|always|never
//!                          colour (ANSI) on standard output; auto (the default): only on a
//!                          terminal and without NO_COLOR
//!
//! Exit status: 0 when the summary was rendered (whatever the boot's result), 1 when a file
//! cannot be read or written, 2 for a usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use tests::kv::Kv;
use tests::summary::{self, Style};

const USAGE: &str = "usage: report [--kv] [--kv-out FILE] [--svg FILE] [--summary-out FILE] \
                     [--color auto|always|never] CONSOLE";

#[derive(Default)]
struct Options {
    console: Option<PathBuf>,
    kv: bool,
    kv_out: Option<PathBuf>,
    svg: Option<PathBuf>,
    summary_out: Option<PathBuf>,
    style: Option<Style>,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or_else(|| format!("{arg} needs {what}"));
        match arg.as_str() {
            "--kv" => options.kv = true,
            "--kv-out" => options.kv_out = Some(value("a file")?.into()),
            "--svg" => options.svg = Some(value("a file")?.into()),
            "--summary-out" => options.summary_out = Some(value("a file")?.into()),
            "--color" => {
                options.style = match value("auto, always or never")?.as_str() {
                    "auto" => None,
                    "always" => Some(Style::Ansi),
                    "never" => Some(Style::Plain),
                    other => return Err(format!("--color takes auto, always or never, not {other:?}")),
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other if other.starts_with('-') && other != "-" => return Err(format!("unknown option {other}")),
            _ if options.console.is_some() => {
                return Err(format!("one console file only, {arg:?} is a second"))
            }
            _ => options.console = Some(arg.into()),
        }
    }
    if options.console.is_none() {
        return Err("the console file is missing".to_string());
    }
    Ok(options)
}

fn write(path: &PathBuf, contents: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn run(options: &Options) -> Result<(), String> {
    let path = options.console.as_ref().expect("checked by parse");
    let console = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("cannot read standard input: {e}"))?
    } else {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let kv = Kv::parse(&console);
    let kv_lines: String = kv.entries().iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    if let Some(out) = &options.kv_out {
        write(out, &kv_lines)?;
    }
    if let Some(out) = &options.svg {
        write(out, &summary::svg::render(&console))?;
    }
    if let Some(out) = &options.summary_out {
        write(out, &summary::render(&console, Style::Plain))?;
    }
    if options.kv {
        print!("{kv_lines}");
    } else {
        print!("{}", summary::render(&console, options.style.unwrap_or_else(Style::for_stdout)));
    }
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(why) if why.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(why) => {
            eprintln!("report: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("report: {why}");
            ExitCode::FAILURE
        }
    }
}
