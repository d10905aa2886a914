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

/// A bit (of eight) standing for a folded byte, in a posting's mask of the bytes that follow its
/// trigram.
#[inline]
pub fn follower_bit(byte: u8) -> u8 {
    1 << (u32::from(byte.to_ascii_lowercase()).wrapping_mul(0x9E37_79B1) >> 29)
}

/// In [`Masks::cases`]: some occurrence of the trigram holds a lower-case ASCII letter.
pub const CASE_LOWER: u8 = 1;
/// In [`Masks::cases`]: some occurrence of the trigram holds an upper-case ASCII letter.
pub const CASE_UPPER: u8 = 2;
/// Every case: what is known of a trigram when nothing is said of its cases.
pub const ANY_CASE: u8 = CASE_LOWER | CASE_UPPER;

/// The cases of the ASCII letters in some bytes, as [`Masks::cases`] bits.
fn cases_of(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |cases, &b| cases | case_of(b))
}

#[inline]
fn case_of(byte: u8) -> u8 {
    match byte {
        b'a'..=b'z' => CASE_LOWER,
        b'A'..=b'Z' => CASE_UPPER,
        _ => 0,
    }
}

/// For each byte: its folded form (bits 0-7), its [`follower_bit`] (bits 8-15) and its case
/// (bits 16-17), looked up once per byte of text while indexing.
static BYTE_INFO: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        let folded = b.to_ascii_lowercase();
        let follower = 1u32 << ((folded as u32).wrapping_mul(0x9E37_79B1) >> 29);
        let case = match b {
            b'a'..=b'z' => CASE_LOWER,
            b'A'..=b'Z' => CASE_UPPER,
            _ => 0,
        };
        table[byte] = folded as u32 | follower << 8 | (case as u32) << 16;
        byte += 1;
    }
    table
};

/// Whether a (folded) trigram holds an ASCII letter: only such postings say their cases.
pub fn has_letter(trigram: Trigram) -> bool {
    trigram.to_be_bytes()[1..]
        .iter()
        .any(u8::is_ascii_lowercase)
}

/// What a text says of one of its trigrams: where it starts (bit `p % 8` for a start at column `p`),
/// which bytes follow it (their [`follower_bit`]s; none at a line's end), and in which cases its
/// letters are written (a case-sensitive `Config` cannot be in a text that only says `CONFIG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Masks {
    pub starts: u8,
    pub followers: u8,
    pub cases: u8,
}

/// Collects the distinct trigrams of texts with their [`Masks`], reusing its memory between
/// texts.
pub struct TrigramSet {
    /// Per trigram, its masks in the current text: starts in the low byte, followers in the
    /// next, cases in the third (zero: absent, since a present trigram has a start).
    masks: Vec<u32>,
    found: Vec<Trigram>,
}

thread_local! {
    /// A zeroed mask table left by the last set dropped on this thread. Indexing builds a set per
    /// shard; a fresh 64 MB table each time cost page faults to fill it and TLB shootdowns to
    /// return it. The table goes when its thread does (an idle blocking thread exits).
    static SPARE_MASKS: std::cell::RefCell<Option<Vec<u32>>> = const { std::cell::RefCell::new(None) };
}

impl Default for TrigramSet {
    fn default() -> Self {
        let masks = SPARE_MASKS
            .with(|spare| spare.borrow_mut().take())
            .unwrap_or_else(|| vec![0; 1 << 24]);
        TrigramSet {
            masks,
            found: Vec::new(),
        }
    }
}

impl Drop for TrigramSet {
    fn drop(&mut self) {
        for &t in &self.found {
            self.masks[t as usize] = 0;
        }
        let masks = std::mem::take(&mut self.masks);
        SPARE_MASKS.with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.is_none() {
                *spare = Some(masks);
            }
        });
    }
}

impl TrigramSet {
    /// The distinct trigrams of `text`, in no particular order.
    pub fn collect(&mut self, text: &[u8]) -> &[Trigram] {
        for &t in &self.found {
            self.masks[t as usize] = 0;
        }
        self.found.clear();
        // A rolling trigram: the last three folded bytes, the cases of the last three bytes
        // (two bits each), and how many bytes since a newline. What is known of the trigram
        // that ended on the byte before waits in `pending` until the byte after it is known,
        // so that each occurrence updates its entry once.
        let mut t: u32 = 0;
        let mut cases: u32 = 0;
        let mut run = 0usize;
        let mut line_start = 0usize;
        let mut pending: u32 = 0;
        for (at, &byte) in text.iter().enumerate() {
            let info = BYTE_INFO[usize::from(byte)];
            if byte == b'\n' {
                self.record(t, pending);
                (pending, run, line_start) = (0, 0, at + 1);
                continue;
            }
            // This byte follows the trigram that ended on the byte before.
            self.record(t, pending | (info & 0xff00));
            t = ((t << 8) | (info & 0xff)) & 0x00ff_ffff;
            cases = ((cases << 2) | (info >> 16)) & 0x3f;
            run += 1;
            // The trigram started two bytes back (none before a line's third byte).
            pending = if run >= 3 {
                (1 << ((at - 2 - line_start) & 7)) | (((cases | cases >> 2 | cases >> 4) & 3) << 16)
            } else {
                0
            };
        }
        self.record(t, pending);
        &self.found
    }

    /// Adds `bits` to a trigram's masks; nothing when there are none (no trigram ended there).
    #[inline]
    fn record(&mut self, trigram: Trigram, bits: u32) {
        if bits & 0xff == 0 {
            return;
        }
        let mask = &mut self.masks[trigram as usize];
        if *mask == 0 {
            self.found.push(trigram);
        }
        *mask |= bits;
    }

    /// The last collected text's trigrams with their masks.
    pub fn with_masks(&self) -> impl Iterator<Item = (Trigram, Masks)> + '_ {
        self.found.iter().map(|&t| {
            let mask = self.masks[t as usize];
            (
                t,
                Masks {
                    starts: mask as u8,
                    followers: (mask >> 8) as u8,
                    cases: (mask >> 16) as u8,
                },
            )
        })
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

/// One occurrence of a trigram in a literal: its offset when it is on the literal's first line
/// (the columns of a later line's trigrams do not depend on where the literal starts), the bit
/// of the byte after it when the literal has one there, and the cases a text must write it in
/// (none without case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InLiteral {
    pub trigram: Trigram,
    pub offset: Option<usize>,
    pub follower: Option<u8>,
    pub cases: u8,
}

/// The trigrams of a literal with where they occur in it, for checking against a text's masks:
/// none when a matching text could differ (without case, a non-ASCII character may match one of
/// another length and folding).
pub fn in_literal(literal: &[u8], case_sensitive: bool) -> Vec<InLiteral> {
    if !case_sensitive && !literal.is_ascii() {
        return Vec::new();
    }
    let first_line = memchr::memchr(b'\n', literal).unwrap_or(literal.len());
    literal
        .windows(3)
        .enumerate()
        .filter(|(_, w)| !w.contains(&b'\n'))
        .map(|(offset, w)| InLiteral {
            trigram: pack(w[0], w[1], w[2]),
            offset: (offset < first_line).then_some(offset),
            follower: literal
                .get(offset + 3)
                .filter(|&&b| b != b'\n')
                .map(|&b| follower_bit(b)),
            cases: if case_sensitive { cases_of(w) } else { 0 },
        })
        .collect()
}

/// The starts (mod 8, as a mask) a literal may have in a text, as far as one of its trigrams
/// says: none when a byte that follows the trigram in the literal never follows it in the text,
/// or the text never writes the trigram's letters in the literal's cases; otherwise the
/// trigram's start mask turned back by each offset at which the literal holds it. A text holds
/// the literal only if all its trigrams allow a common start.
pub fn allowed_starts<'a>(
    masks: Masks,
    occurrences: impl IntoIterator<Item = &'a InLiteral>,
) -> u8 {
    occurrences.into_iter().fold(0xff, |allowed, at| {
        if at.follower.is_some_and(|bit| masks.followers & bit == 0)
            || masks.cases & at.cases != at.cases
        {
            return 0;
        }
        match at.offset {
            Some(offset) => allowed & masks.starts.rotate_right((offset & 7) as u32),
            None => allowed,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_table_says_what_the_functions_say() {
        for byte in 0..=255u8 {
            let info = BYTE_INFO[usize::from(byte)];
            assert_eq!(info & 0xff, u32::from(byte.to_ascii_lowercase()), "{byte}");
            assert_eq!((info >> 8) & 0xff, u32::from(follower_bit(byte)), "{byte}");
            assert_eq!(info >> 16, u32::from(case_of(byte)), "{byte}");
        }
    }

    #[test]
    fn a_reused_mask_table_starts_empty() {
        let mut set = TrigramSet::default();
        set.collect(b"abcdef");
        drop(set);
        let mut set = TrigramSet::default();
        assert_eq!(set.collect(b"xyz"), [pack(b'x', b'y', b'z')]);
        assert_eq!(set.with_masks().count(), 1);
    }

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
        let text = b"0123456789 needle, hay; nee dle needs\nnee";
        set.collect(text);
        let masks: std::collections::HashMap<Trigram, Masks> = set.with_masks().collect();
        // `nee` starts at columns 11, 24 and 32 of the first line and 0 of the second: bits 3
        // and 0; it is followed by `d` and ` ` (and by nothing at the end of the text).
        let nee = masks[&pack(b'n', b'e', b'e')];
        assert_eq!(nee.starts, 0b1001);
        assert_eq!(nee.followers, follower_bit(b'd') | follower_bit(b' '));
        let check = |literal: &[u8]| {
            let occurrences = in_literal(literal, true);
            occurrences.iter().fold(0xff, |shared, at| {
                let masks = masks.get(&at.trigram).copied().unwrap_or(Masks {
                    starts: 0,
                    followers: 0,
                    cases: 0,
                });
                shared & allowed_starts(masks, [at])
            }) != 0
        };
        // Every substring of the text passes; a literal whose trigrams all occur, but never
        // in this order and spacing, does not; nor one where a trigram is followed by a byte
        // that never follows it in the text.
        for start in 0..text.len() {
            for end in start + 3..=text.len() {
                assert!(check(&text[start..end]), "{:?}", &text[start..end]);
            }
        }
        assert!(!check(b"needle needs"));
        let unseen_follower = (b'a'..=b'z')
            .find(|&b| follower_bit(b) & nee.followers == 0)
            .expect("a letter outside the followers");
        assert!(!check(&[b'n', b'e', b'e', unseen_follower]));
        assert!(in_literal("né".as_bytes(), false).is_empty());
        // Case folds: an upper-case follower is the lower-case one.
        assert_eq!(follower_bit(b'D'), follower_bit(b'd'));
    }

    #[test]
    fn cases_rule_out_a_literal_written_in_other_cases() {
        let mut set = TrigramSet::default();
        set.collect(b"pub struct CONFIGRET;\nlet Ret = x;\n");
        let masks: std::collections::HashMap<Trigram, Masks> = set.with_masks().collect();
        let passes = |literal: &[u8], case_sensitive: bool| {
            in_literal(literal, case_sensitive)
                .iter()
                .fold(0xff, |shared, at| {
                    let masks = masks.get(&at.trigram).copied();
                    shared & masks.map_or(0, |masks| allowed_starts(masks, [at]))
                })
                != 0
        };
        assert!(passes(b"struct CONFIG", true));
        assert!(passes(b"struct Config", false));
        assert!(
            !passes(b"struct Config", true),
            "`Con` is only upper-case here"
        );
        assert!(!passes(b"config", true));
        // A posting's cases are those of all its trigram's occurrences.
        assert_eq!(
            masks[&pack(b'r', b'e', b't')].cases,
            CASE_LOWER | CASE_UPPER
        );
        assert_eq!(masks[&pack(b'o', b'n', b'f')].cases, CASE_UPPER);
        assert_eq!(masks[&pack(b'l', b'e', b't')].cases, CASE_LOWER);
        assert!(has_letter(pack(b'1', b'x', b'2')) && !has_letter(pack(b'1', b'_', b'2')));
    }

    #[test]
    fn literals_drop_non_ascii_trigrams_when_case_does_not_matter() {
        assert_eq!(of_literal(b"ab", true), Vec::<Trigram>::new());
        assert!(of_literal("éab".as_bytes(), false).is_empty());
        assert_eq!(of_literal("éab".as_bytes(), true).len(), 2);
        assert_eq!(of_literal(b"Hello", false), of_literal(b"hELLO", true));
    }
}
