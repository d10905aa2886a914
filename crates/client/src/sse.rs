//! Server-sent events, as Sourcegraph's stream API frames them (`event:` and one `data:` line).

/// Splits a byte stream into (event, data) pairs, however the bytes are chunked.
#[derive(Default)]
pub struct SseParser {
    buffer: Vec<u8>,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = self.buffer.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&frame);
            let mut name = String::from("message");
            let mut data = Vec::new();
            for line in text.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_string();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value).to_string());
                }
            }
            if !data.is_empty() {
                events.push((name, data.join("\n")));
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_chunks() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"event: matches\ndata: [1,").is_empty());
        let events = parser.push(b"2]\n\nevent: done\ndata: {}\n\n");
        assert_eq!(
            events,
            [
                ("matches".to_string(), "[1,2]".to_string()),
                ("done".to_string(), "{}".to_string())
            ]
        );
    }
}
