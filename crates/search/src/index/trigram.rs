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

/// Collects the distinct trigrams of texts with where they occur, reusing its memory between
/// texts. Where is a position mask: bit `p % 8` is set for a trigram starting at byte `p`.
pub struct TrigramSet {
    /// Per trigram, its position mask in the current text (zero: absent).
    masks: Vec<u8>,
    found: Vec<Trigram>,
}

impl Default for TrigramSet {
    fn default() -> Self {
        TrigramSet {
            masks: vec![0; 1 << 24],
            found: Vec::new(),
        }
    }
}

impl TrigramSet {
    /// The distinct trigrams of `text`, in no particular order.
    pub fn collect(&mut self, text: &[u8]) -> &[Trigram] {
        for &t in &self.found {
            self.masks[t as usize] = 0;
        }
        self.found.clear();
        // A rolling trigram: the last three folded bytes, and how many bytes since a newline.
        let mut t: u32 = 0;
        let mut run = 0usize;
        for (at, &byte) in text.iter().enumerate() {
            if byte == b'\n' {
                run = 0;
                continue;
            }
            t = ((t << 8) | u32::from(byte.to_ascii_lowercase())) & 0x00ff_ffff;
            run += 1;
            if run < 3 {
                continue;
            }
            let mask = &mut self.masks[t as usize];
            if *mask == 0 {
                self.found.push(t);
            }
            // The trigram started two bytes back.
            *mask |= 1 << ((at - 2) & 7);
        }
        &self.found
    }

    /// The last collected text's trigrams with their position masks.
    pub fn with_masks(&self) -> impl Iterator<Item = (Trigram, u8)> + '_ {
        self.found.iter().map(|&t| (t, self.masks[t as usize]))
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

/// The trigrams of a literal with their offsets in it, for checking where they occur: none when
/// offsets in a matching text could differ (without case, a non-ASCII character may match one of
/// another length).
pub fn positions_in_literal(literal: &[u8], case_sensitive: bool) -> Vec<(Trigram, usize)> {
    if !case_sensitive && !literal.is_ascii() {
        return Vec::new();
    }
    literal
        .windows(3)
        .enumerate()
        .filter(|(_, w)| !w.contains(&b'\n'))
        .map(|(at, w)| (pack(w[0], w[1], w[2]), at))
        .collect()
}

/// The starts (mod 8, as a mask) a literal may have in a text, as far as one of its trigrams
/// says: the trigram's position mask in the text, turned back by each offset at which the
/// literal holds it. A text holds the literal only if all its trigrams allow a common start.
pub fn allowed_starts(mask: u8, offsets: impl IntoIterator<Item = usize>) -> u8 {
    offsets.into_iter().fold(0xff, |allowed, offset| {
        allowed & mask.rotate_right((offset & 7) as u32)
    })
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
    fn masks_say_where_trigrams_start_and_literals_check_them() {
        let mut set = TrigramSet::default();
        let text = b"0123456789 needle, hay; nee dle needs";
        set.collect(text);
        let masks: std::collections::HashMap<Trigram, u8> = set.with_masks().collect();
        // `nee` starts at 11, 24 and 32: bits 3 and 0.
        assert_eq!(masks[&pack(b'n', b'e', b'e')], 0b0000_1001);
        let check = |literal: &[u8]| {
            positions_in_literal(literal, true)
                .into_iter()
                .fold(0xff, |shared, (t, at)| {
                    shared & allowed_starts(masks.get(&t).copied().unwrap_or(0), [at])
                })
                != 0
        };
        // Every substring of the text passes; a literal whose trigrams all occur, but never
        // in this order and spacing, does not.
        for start in 0..text.len() {
            for end in start + 3..=text.len() {
                assert!(check(&text[start..end]), "{:?}", &text[start..end]);
            }
        }
        assert!(!check(b"needle needs"));
        assert!(positions_in_literal("né".as_bytes(), false).is_empty());
    }

    #[test]
    fn literals_drop_non_ascii_trigrams_when_case_does_not_matter() {
        assert_eq!(of_literal(b"ab", true), Vec::<Trigram>::new());
        assert!(of_literal("éab".as_bytes(), false).is_empty());
        assert_eq!(of_literal("éab".as_bytes(), true).len(), 2);
        assert_eq!(of_literal(b"Hello", false), of_literal(b"hELLO", true));
    }
}
