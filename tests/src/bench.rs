//! What the benchmark binaries share: their options (`--runs N`, `--quick`) and the median.

/// A benchmark's options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Runs per measurement.
    pub runs: usize,
    /// `--quick`: a smaller grid (each benchmark says what it leaves out).
    pub quick: bool,
}

/// Parses `--runs N` and `--quick` from `args` (without the program name); `program` names
/// the binary in the usage sentence.
pub fn parse_options(
    program: &str,
    default_runs: usize,
    args: impl IntoIterator<Item = String>,
) -> Result<Options, String> {
    let mut options = Options { runs: default_runs, quick: false };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                let n = args.next().unwrap_or_default();
                options.runs = match n.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--runs needs a positive number, got {n:?}")),
                };
            }
            "--quick" => options.quick = true,
            _ => return Err(format!("unknown argument {arg:?}; usage: {program} [--runs N] [--quick]")),
        }
    }
    Ok(options)
}

/// The median (the mean of the middle two for an even count; NaN for none).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn options_and_medians() {
        assert_eq!(parse_options("b", 3, args(&[])), Ok(Options { runs: 3, quick: false }));
        assert_eq!(
            parse_options("b", 3, args(&["--runs", "5", "--quick"])),
            Ok(Options { runs: 5, quick: true })
        );
        assert!(parse_options("b", 3, args(&["--runs", "0"])).unwrap_err().contains("positive"));
        assert!(parse_options("bx", 3, args(&["-x"])).unwrap_err().contains("usage: bx [--runs N]"));
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
