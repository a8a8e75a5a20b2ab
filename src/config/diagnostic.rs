//! A problem found in a file, with the position of the offending key or value.
//!
//! Displayed as `path:line:col: message` (lines and columns from 1, columns in characters), the form
//! editors and terminals turn into links.

use std::fmt;
use std::ops::Range;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// The file as the user named it (relative to where they pointed the tool); `None` for problems
    /// that belong to no file, such as a bad environment variable.
    pub file: Option<String>,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    /// A problem at a byte offset range of `text`.
    pub fn at(file: &str, text: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let (line, column) = line_col(text, span.start);
        Diagnostic {
            file: Some(file.to_owned()),
            line,
            column,
            message: message.into(),
        }
    }

    /// A problem with a whole file (unreadable, missing): reported at 1:1.
    pub fn file(file: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            file: Some(file.to_owned()),
            line: 1,
            column: 1,
            message: message.into(),
        }
    }

    /// A problem that belongs to no file.
    pub fn general(message: impl Into<String>) -> Self {
        Diagnostic {
            file: None,
            line: 0,
            column: 0,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{file}:{}:{}: {}", self.line, self.column, self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset; offsets past the end or inside a
/// character are clamped.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\nné = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // "né = " is 6 bytes but 5 characters: the value starts at column 6.
        assert_eq!(line_col(text, text.find('"').unwrap_or(0)), (2, 6));
        assert_eq!(line_col(text, 10_000), (3, 1));
    }

    #[test]
    fn display_is_path_line_col_message() {
        let d = Diagnostic::at("f.toml", "a = 1\nb = 2\n", 6..7, "boom");
        assert_eq!(d.to_string(), "f.toml:2:1: boom");
        assert_eq!(Diagnostic::general("x").to_string(), "x");
    }
}
