//! Trigrams: three consecutive bytes, ASCII letters folded to lower case, never spanning a
//! newline (a match never does). Folding means a case-insensitive query needs no more lookups
//! than a case-sensitive one; the candidates are verified against the real text either way.

/// A trigram packed into the low 24 bits.
pub type Trigram = u32;

#[inline]
pub fn pack(a: u8, b: u8, c: u8) -> Trigram {
    (u32::from(a.to_ascii_lowercase()) << 16)
        | (u32::from(b.to_ascii_lowercase()) << 8)
        | u32::from(c.to_ascii_lowercase())
}

/// Collects the distinct trigrams of texts, reusing its memory between texts.
pub struct TrigramSet {
    seen: Vec<u64>,
    found: Vec<Trigram>,
}

impl Default for TrigramSet {
    fn default() -> Self {
        TrigramSet {
            seen: vec![0; (1 << 24) / 64],
            found: Vec::new(),
        }
    }
}

impl TrigramSet {
    /// The distinct trigrams of `text`, in no particular order.
    pub fn collect(&mut self, text: &[u8]) -> &[Trigram] {
        for &t in &self.found {
            self.seen[(t >> 6) as usize] = 0;
        }
        self.found.clear();
        // A rolling trigram: the last three folded bytes, and how many bytes since a newline.
        let mut t: u32 = 0;
        let mut run = 0usize;
        for &byte in text {
            if byte == b'\n' {
                run = 0;
                continue;
            }
            t = ((t << 8) | u32::from(byte.to_ascii_lowercase())) & 0x00ff_ffff;
            run += 1;
            if run < 3 {
                continue;
            }
            let (word, bit) = ((t >> 6) as usize, 1u64 << (t & 63));
            if self.seen[word] & bit == 0 {
                self.seen[word] |= bit;
                self.found.push(t);
            }
        }
        &self.found
    }
}

/// The trigrams a literal requires of every text it occurs in. With `case_sensitive` false, a
/// trigram that holds a non-ASCII byte is left out: its other-case forms fold differently.
pub fn of_literal(literal: &[u8], case_sensitive: bool) -> Vec<Trigram> {
    let mut out: Vec<Trigram> = literal
        .windows(3)
        .filter(|w| !w.contains(&b'\n') && (case_sensitive || w.is_ascii()))
        .map(|w| pack(w[0], w[1], w[2]))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_folded_and_never_across_lines() {
        let mut set = TrigramSet::default();
        let mut found = set.collect(b"abcABC\nabc").to_vec();
        found.sort_unstable();
        let expected: Vec<Trigram> = {
            let mut v = vec![
                pack(b'a', b'b', b'c'),
                pack(b'b', b'c', b'a'),
                pack(b'c', b'a', b'b'),
            ];
            v.sort_unstable();
            v
        };
        assert_eq!(found, expected);
        // The scratch space is reset between texts.
        assert_eq!(set.collect(b"xyz"), [pack(b'x', b'y', b'z')]);
    }

    #[test]
    fn literals_drop_non_ascii_trigrams_when_case_does_not_matter() {
        assert_eq!(of_literal(b"ab", true), Vec::<Trigram>::new());
        assert!(of_literal("éab".as_bytes(), false).is_empty());
        assert_eq!(of_literal("éab".as_bytes(), true).len(), 2);
        assert_eq!(of_literal(b"Hello", false), of_literal(b"hELLO", true));
    }
}
