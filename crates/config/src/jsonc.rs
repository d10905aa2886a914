//! JSON with comments, as Sourcegraph's site configuration is written.
//!
//! Comments and trailing commas are blanked out byte for byte, so the positions that the JSON parser
//! reports for a syntax error are positions in the text the user wrote.

use serde_json::Value;

/// Where a document failed to parse, 1-based as editors count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "syntax error at line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Parses a JSON-with-comments document into a JSON value.
pub fn parse(text: &str) -> Result<Value, SyntaxError> {
    let plain = blank_comments_and_trailing_commas(text)?;
    serde_json::from_str(&plain).map_err(|e| SyntaxError {
        line: e.line(),
        column: e.column(),
        message: strip_position_suffix(&e.to_string()),
    })
}

fn strip_position_suffix(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

fn blank_comments_and_trailing_commas(text: &str) -> Result<String, SyntaxError> {
    let mut out = text.as_bytes().to_vec();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    // Index of the last comma outside strings and comments that no value has followed yet.
    let mut pending_comma: Option<usize> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                pending_comma = None;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    out[i] = b' ';
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let start = i;
                i += 2;
                loop {
                    if i + 1 >= bytes.len() {
                        let (line, column) = position(text, start);
                        return Err(SyntaxError {
                            line,
                            column,
                            message: "unterminated block comment".into(),
                        });
                    }
                    if bytes[i] == b'*' && bytes[i + 1] == b'/' {
                        break;
                    }
                    i += 1;
                }
                for slot in &mut out[start..i + 2] {
                    if *slot != b'\n' {
                        *slot = b' ';
                    }
                }
                i += 2;
                continue;
            }
            b',' => pending_comma = Some(i),
            b'}' | b']' => {
                if let Some(comma) = pending_comma.take() {
                    out[comma] = b' ';
                }
            }
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => pending_comma = None,
        }
        i += 1;
    }
    // Only ASCII bytes were replaced by ASCII spaces (comment bytes wholesale), so this is UTF-8.
    String::from_utf8(out).map_err(|_| SyntaxError {
        line: 1,
        column: 1,
        message: "document is not valid UTF-8".into(),
    })
}

fn position(text: &str, byte: usize) -> (usize, usize) {
    let before = &text[..byte];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comments_and_trailing_commas_are_accepted() {
        let text = "// head\n{\n  \"a\": 1, /* inline */\n  \"b\": [1, 2,],\n  \"c\": \"// not a comment\",\n}\n";
        assert_eq!(
            parse(text).unwrap(),
            json!({"a": 1, "b": [1, 2], "c": "// not a comment"})
        );
    }

    #[test]
    fn syntax_errors_point_at_the_written_text() {
        let err = parse("{\n  // note\n  \"a\": 1\n  \"b\": 2\n}").unwrap_err();
        assert_eq!(err.line, 4, "{err}");
        assert!(err.message.contains("expected"), "{err}");
    }

    #[test]
    fn unterminated_comment_is_reported_where_it_starts() {
        let err = parse("{\n /* open").unwrap_err();
        assert_eq!((err.line, err.column), (2, 2));
    }

    #[test]
    fn escaped_quotes_keep_string_state() {
        assert_eq!(parse(r#"{"a": "x\"//y"}"#).unwrap(), json!({"a": "x\"//y"}));
    }
}
