//! Colour for a terminal, plain text otherwise: the summary is laid out in plain text and
//! painted piece by piece, so its widths never count escape sequences.

/// How the summary is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// No escape sequences (a file, a pipe, `NO_COLOR`).
    Plain,
    /// ANSI colours (a terminal).
    Ansi,
}

/// The colours the summary uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paint {
    /// Headings.
    Heading,
    /// Success.
    Good,
    /// Failure.
    Bad,
    /// Something to notice that is not a failure.
    Notice,
    /// The default window on the map.
    DefaultWindow,
    /// The DDW on the map.
    Ddw,
    /// PHB memory windows on the map.
    Mmio,
    /// Secondary text.
    Dim,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Heading => "1",
            Paint::Good => "32",
            Paint::Bad => "1;31",
            Paint::Notice => "33",
            Paint::DefaultWindow => "36",
            Paint::Ddw => "32",
            Paint::Mmio => "90",
            Paint::Dim => "2",
        }
    }
}

impl Style {
    /// `text` painted (unchanged when plain or empty).
    pub fn paint(self, text: &str, paint: Paint) -> String {
        match self {
            Style::Ansi if !text.is_empty() => format!("\x1b[{}m{text}\x1b[0m", paint.code()),
            _ => text.to_string(),
        }
    }

    /// The style for standard output: colour only on a terminal, and never with `NO_COLOR` set.
    pub fn for_stdout() -> Self {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        if std::io::stdout().is_terminal() && !no_color {
            Style::Ansi
        } else {
            Style::Plain
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_is_unchanged_and_ansi_is_reset() {
        assert_eq!(Style::Plain.paint("ok", Paint::Good), "ok");
        assert_eq!(Style::Ansi.paint("ok", Paint::Good), "\x1b[32mok\x1b[0m");
        assert_eq!(Style::Ansi.paint("", Paint::Bad), "");
    }
}

/// One line of the summary: plain pieces, some painted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Line {
    pieces: Vec<(String, Option<Paint>)>,
}

impl Line {
    /// An unpainted line.
    pub fn plain(text: impl Into<String>) -> Self {
        Self { pieces: vec![(text.into(), None)] }
    }

    /// Appends unpainted text.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.pieces.push((text.into(), None));
        self
    }

    /// Appends painted text.
    pub fn paint(mut self, text: impl Into<String>, paint: Paint) -> Self {
        self.pieces.push((text.into(), Some(paint)));
        self
    }

    /// The line without colour.
    pub fn to_plain(&self) -> String {
        self.pieces.iter().map(|(text, _)| text.as_str()).collect()
    }

    /// Width in columns (characters; the summary uses no double-width ones).
    pub fn width(&self) -> usize {
        self.pieces.iter().map(|(text, _)| text.chars().count()).sum()
    }

    /// The line in `style`, trailing blanks dropped.
    pub fn render(&self, style: Style) -> String {
        let mut pieces = self.pieces.clone();
        while let Some((text, _)) = pieces.last_mut() {
            let trimmed = text.trim_end().len();
            text.truncate(trimmed);
            if !text.is_empty() {
                break;
            }
            pieces.pop();
        }
        pieces
            .iter()
            .map(|(text, paint)| match paint {
                Some(paint) => style.paint(text, *paint),
                None => text.clone(),
            })
            .collect()
    }
}

/// Units that never start a wrapped line.
const UNITS: [&str; 11] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ms", "µs", "MB/s", "MHz"];

/// `text` wrapped at word boundaries into lines of at most `width` columns, the first starting
/// with `first` and the rest with `rest`; a word longer than a line continues on the next.
pub fn wrap(text: &str, width: usize, first: &str, rest: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = first.to_string();
    let mut empty = true;
    // A number and its unit stay on one line.
    let mut words: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        let unit = UNITS.contains(&word.trim_end_matches([',', ';', ':', ')', '.']));
        match words.last_mut() {
            Some(last) if unit && last.chars().all(|c| c.is_ascii_digit() || c == '.') => {
                last.push(' ');
                last.push_str(word);
            }
            _ => words.push(word.to_string()),
        }
    }
    for word in &words {
        let mut word: Vec<char> = word.chars().collect();
        if !empty && line.chars().count() + 1 + word.len() > width {
            lines.push(std::mem::replace(&mut line, rest.to_string()));
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        loop {
            let room = width.saturating_sub(line.chars().count()).max(1);
            if word.len() <= room {
                line.extend(word.iter());
                break;
            }
            line.extend(word.drain(..room));
            lines.push(std::mem::replace(&mut line, rest.to_string()));
        }
        empty = false;
    }
    if !empty || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod line_tests {
    use super::*;

    #[test]
    fn lines_measure_and_render() {
        let line = Line::plain("PE 0 ").paint("ok", Paint::Good).text("   ");
        assert_eq!(line.width(), 10);
        assert_eq!(line.render(Style::Plain), "PE 0 ok");
        assert_eq!(line.render(Style::Ansi), "PE 0 \x1b[32mok\x1b[0m");
    }

    #[test]
    fn wrapping() {
        let lines = wrap("one two three four", 11, "  ", "    ");
        assert_eq!(lines, vec!["  one two", "    three", "    four"]);
        assert!(lines.iter().all(|l| l.chars().count() <= 11));
        assert_eq!(wrap("", 10, "- ", "  "), vec!["- "]);
        assert_eq!(wrap("abcdefghijkl", 6, "> ", "  "), vec!["> abcd", "  efgh", "  ijkl"]);
        assert_eq!(wrap("through the 1 GiB window", 15, "", ""), vec!["through the", "1 GiB window"]);
    }
}
