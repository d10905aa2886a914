//! A shard's dictionary as readers hold it in memory: the entries in the file's own encoding
//! (varints, about five bytes a trigram), with every [`SAMPLE_EVERY`]th entry's trigram and
//! place decoded beside them. A lookup searches the samples, then decodes at most
//! `SAMPLE_EVERY` neighbouring entries in sequence (two or three cache lines). Decoded entries
//! of 12 bytes each took the benchmark's server 79 MiB for its 6.9 million trigrams.
//!
//! Invariants, checked once as the dictionary is built: trigrams ascend and fit in 24 bits,
//! part counts stay under [`MAX_PARTS`], and each entry's postings start where the one
//! before's end, the last ending at the end of the postings section.

use super::IndexError;
use super::format::{MAX_PARTS, get_small_varint, get_varint, put_varint};
use super::trigram::{ANY_CASE, Masks, Trigram};

/// One entry in this many is sampled: 12 bytes of sample per 8 entries of about 5 bytes.
const SAMPLE_EVERY: usize = 8;

/// A trigram's entry in a shard's dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub trigram: Trigram,
    /// How many parts hold the trigram.
    pub count: u32,
    /// The union of its postings' masks: what the shard as a whole allows a literal with this
    /// trigram, known without reading the postings.
    pub union: Masks,
    /// Where its postings start, from the postings section's start, and their length in bytes.
    pub postings_start: u32,
    pub postings_len: u32,
}

/// Appends an entry in the file's encoding (since version 5): varints of the trigram less the
/// one before, the part count shifted left by two with the union of the cases in the low bits,
/// and the postings' length; then the unions of the start and follower masks, a byte each.
pub fn put_entry(out: &mut Vec<u8>, previous: Trigram, entry: &Entry) {
    put_varint(out, u64::from(entry.trigram - previous));
    put_varint(
        out,
        u64::from(entry.count) << 2 | u64::from(entry.union.cases & ANY_CASE),
    );
    put_varint(out, u64::from(entry.postings_len));
    out.extend_from_slice(&[entry.union.starts, entry.union.followers]);
}

/// What an entry says beyond its trigram.
struct Encoded {
    count: u64,
    union: Masks,
    postings_len: u64,
}

impl Encoded {
    /// The entry, given its trigram and where its postings start.
    fn at(&self, trigram: Trigram, postings_start: u32) -> Entry {
        Entry {
            trigram,
            count: self.count as u32,
            union: self.union,
            postings_start,
            postings_len: self.postings_len as u32,
        }
    }
}

/// Decodes the rest of an entry from `at`, just past its trigram; `None` when the bytes end
/// first.
fn get_encoded(bytes: &[u8], at: &mut usize) -> Option<Encoded> {
    let count = get_varint(bytes, at)?;
    let postings_len = get_varint(bytes, at)?;
    let masks = bytes.get(*at..*at + 2)?;
    *at += 2;
    Some(Encoded {
        count: count >> 2,
        union: Masks {
            starts: masks[0],
            followers: masks[1],
            cases: count as u8 & ANY_CASE,
        },
        postings_len,
    })
}

/// Where decoding may start: a sampled entry's trigram, place in the bytes and postings' start.
#[derive(Debug, Clone, Copy)]
struct Sample {
    trigram: Trigram,
    at: u32,
    postings_start: u32,
}

/// A shard's dictionary (see the module's documentation).
#[derive(Debug, Default)]
pub struct Dictionary {
    bytes: Vec<u8>,
    samples: Vec<Sample>,
    /// Where each run of samples sharing their trigrams' top `bucket_bits` bits starts in
    /// `samples`, so a lookup binary-searches a few neighbouring samples.
    buckets: Vec<u32>,
    bucket_bits: u32,
    len: usize,
}

/// Builds a [`Dictionary`] from entries in ascending order, checking them.
#[derive(Default)]
pub struct DictionaryBuilder {
    dictionary: Dictionary,
    previous: Option<Trigram>,
    postings_end: u64,
}

impl DictionaryBuilder {
    pub fn with_capacity(bytes: usize) -> Self {
        let mut builder = DictionaryBuilder::default();
        builder.dictionary.bytes.reserve_exact(bytes);
        builder
    }

    /// Adds the next entry: its trigram above the last one's, its postings right after theirs.
    pub fn push(
        &mut self,
        trigram: u64,
        count: u64,
        union: Masks,
        postings_len: u64,
    ) -> Result<(), IndexError> {
        let previous = self.previous.unwrap_or(0);
        let at = self.dictionary.bytes.len();
        let entry = self.accept(trigram, count, union, postings_len, at)?;
        put_entry(&mut self.dictionary.bytes, previous, &entry);
        Ok(())
    }

    /// Checks the next entry, which is encoded at `at`, and samples it when its turn comes.
    fn accept(
        &mut self,
        trigram: u64,
        count: u64,
        union: Masks,
        postings_len: u64,
        at: usize,
    ) -> Result<Entry, IndexError> {
        let ascending = self.previous.is_none_or(|p| trigram > u64::from(p));
        if !ascending || trigram > 0xff_ffff || count >= MAX_PARTS as u64 {
            return Err(out_of_order());
        }
        let postings_start = u32::try_from(self.postings_end)
            .map_err(|_| IndexError::Corrupt("postings too large".into()))?;
        let end = self
            .postings_end
            .checked_add(postings_len)
            .ok_or_else(out_of_order)?;
        let entry = Entry {
            trigram: trigram as u32,
            count: count as u32,
            union,
            postings_start,
            postings_len: u32::try_from(postings_len).map_err(|_| out_of_order())?,
        };
        let dictionary = &mut self.dictionary;
        if dictionary.len.is_multiple_of(SAMPLE_EVERY) {
            dictionary.samples.push(Sample {
                trigram: entry.trigram,
                at: u32::try_from(at).map_err(|_| out_of_order())?,
                postings_start,
            });
        }
        dictionary.len += 1;
        self.previous = Some(entry.trigram);
        self.postings_end = end;
        Ok(entry)
    }

    /// The dictionary, whose entries' postings must end at `postings_len`.
    pub fn finish(mut self, postings_len: u64) -> Result<Dictionary, IndexError> {
        if self.postings_end != postings_len {
            return Err(out_of_order());
        }
        let dictionary = &mut self.dictionary;
        dictionary.bytes.shrink_to_fit();
        dictionary.samples.shrink_to_fit();
        let trigrams: Vec<Trigram> = dictionary.samples.iter().map(|s| s.trigram).collect();
        (dictionary.buckets, dictionary.bucket_bits) = buckets_of(&trigrams);
        Ok(self.dictionary)
    }
}

fn out_of_order() -> IndexError {
    IndexError::Corrupt("dictionary out of order".into())
}

/// The bucket table of sorted trigrams: about one bucket per eight, at most 65,536; bucket `b`
/// holds the trigrams whose top bits are `b`.
fn buckets_of(trigrams: &[Trigram]) -> (Vec<u32>, u32) {
    let bits = (trigrams.len() / 8).max(1).ilog2().min(16);
    let mut buckets = Vec::with_capacity((1 << bits) + 1);
    let mut at = 0;
    for bucket in 0..=(1u32 << bits) {
        while at < trigrams.len() && (trigrams[at] >> (24 - bits)) < bucket {
            at += 1;
        }
        buckets.push(at as u32);
    }
    (buckets, bits)
}

impl Dictionary {
    /// A dictionary of `count` entries already in its encoding (a shard file's since version 5),
    /// held as they are, checked and sampled in one pass; their postings must end at
    /// `postings_len`. `each` sees every trigram.
    pub fn from_encoded(
        bytes: Vec<u8>,
        count: usize,
        postings_len: u64,
        mut each: impl FnMut(Trigram),
    ) -> Result<Dictionary, IndexError> {
        let mut builder = DictionaryBuilder::default();
        let (mut at, mut trigram) = (0, 0u64);
        for _ in 0..count {
            let entry_at = at;
            let delta = get_varint(&bytes, &mut at).ok_or_else(out_of_order)?;
            let encoded = get_encoded(&bytes, &mut at).ok_or_else(out_of_order)?;
            // Saturating: a damaged delta is then refused as out of range, not a panic.
            trigram = trigram.saturating_add(delta);
            let union = encoded.union;
            builder.accept(
                trigram,
                encoded.count,
                union,
                encoded.postings_len,
                entry_at,
            )?;
            each(trigram as Trigram);
        }
        if at != bytes.len() {
            return Err(out_of_order());
        }
        builder.dictionary.bytes = bytes;
        builder.finish(postings_len)
    }

    /// How many trigrams it has.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries of several trigrams, or `None` when one of them is missing. The searches of
    /// the samples go in step, one probe of each per round, so that their cache misses overlap
    /// instead of following one another.
    pub fn find_all(&self, trigrams: &[Trigram]) -> Option<Vec<Entry>> {
        // Per trigram, the samples the last one at or below it is among: (start, length). The
        // samples before its bucket's are all below it, so the last of them is included.
        let mut ranges: Vec<(usize, usize)> = trigrams
            .iter()
            .map(|&t| {
                let bucket = (t >> (24 - self.bucket_bits)) as usize;
                let start = (self.buckets[bucket] as usize).saturating_sub(1);
                (start, self.buckets[bucket + 1] as usize - start)
            })
            .collect();
        let mut searching = true;
        while searching {
            searching = false;
            for (range, &trigram) in ranges.iter_mut().zip(trigrams) {
                let (start, length) = range;
                if *length > 1 {
                    let half = *length / 2;
                    // Without a branch: a mispredicted one would discard the other searches'
                    // loads that are under way.
                    let above = self.samples[*start + half].trigram <= trigram;
                    *start = std::hint::select_unpredictable(above, *start + half, *start);
                    *length -= half;
                    searching |= *length > 1;
                }
            }
        }
        // Each scan's first bytes are loaded before any scan starts, so that their cache misses
        // overlap too (the loads are independent; only their sum is kept).
        let touched: u32 = ranges
            .iter()
            .filter_map(|&(sample, _)| {
                let at = self.samples.get(sample)?.at as usize;
                self.bytes.get(at).map(|&b| u32::from(b))
            })
            .sum();
        std::hint::black_box(touched);
        ranges
            .iter()
            .zip(trigrams)
            .map(|(&(sample, length), &trigram)| {
                (length == 1).then(|| self.scan(sample, trigram)).flatten()
            })
            .collect()
    }

    /// A trigram's entry, if the dictionary has it.
    pub fn find(&self, trigram: Trigram) -> Option<Entry> {
        self.find_all(&[trigram])?.pop()
    }

    /// Decodes from a sample on, looking for a trigram: entries before it are skipped over
    /// with only their trigram and postings' length read, as this is on the path of every
    /// lookup.
    fn scan(&self, sample: usize, trigram: Trigram) -> Option<Entry> {
        let from = *self.samples.get(sample)?;
        let bytes = &self.bytes;
        let mut at = from.at as usize;
        let mut current = from.trigram;
        let mut postings_start = from.postings_start;
        for i in 0..SAMPLE_EVERY {
            let delta = get_small_varint(bytes, &mut at)? as Trigram;
            if i > 0 {
                current += delta;
            }
            if current >= trigram {
                if current > trigram {
                    return None;
                }
                return Some(get_encoded(bytes, &mut at)?.at(current, postings_start));
            }
            // The part count, then the postings' length, then the two masks.
            while *bytes.get(at)? & 0x80 != 0 {
                at += 1;
            }
            at += 1;
            postings_start += get_small_varint(bytes, &mut at)? as u32;
            at += 2;
        }
        None
    }

    /// The entries from a sample to the next one (or the end).
    #[cfg(test)]
    fn entries_from(&self, from: Sample) -> impl Iterator<Item = Entry> + '_ {
        let mut at = from.at as usize;
        let mut trigram = None;
        let mut postings_start = from.postings_start;
        std::iter::from_fn(move || {
            let delta = get_varint(&self.bytes, &mut at)? as Trigram;
            let encoded = get_encoded(&self.bytes, &mut at)?;
            let current = trigram.map_or(from.trigram, |t: Trigram| t + delta);
            let entry = encoded.at(current, postings_start);
            trigram = Some(entry.trigram);
            postings_start += entry.postings_len;
            Some(entry)
        })
        .take(SAMPLE_EVERY)
    }

    /// Every entry, in order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        self.samples.iter().flat_map(|&s| self.entries_from(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_trigrams(size: usize, seed: u64) -> Vec<Trigram> {
        let mut state = seed;
        let mut trigrams: Vec<Trigram> = (0..size)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                (state >> 40) as u32 & 0xff_ffff
            })
            .collect();
        trigrams.sort_unstable();
        trigrams.dedup();
        trigrams
    }

    #[test]
    fn buckets_bound_every_trigram() {
        for size in [0usize, 1, 7, 100, 5000, 70_000] {
            let trigrams = random_trigrams(size, 99);
            let (buckets, bits) = buckets_of(&trigrams);
            assert_eq!(buckets.len(), (1 << bits) + 1);
            assert_eq!(*buckets.last().unwrap() as usize, trigrams.len());
            for (i, &t) in trigrams.iter().enumerate() {
                let bucket = (t >> (24 - bits)) as usize;
                assert!((buckets[bucket] as usize..buckets[bucket + 1] as usize).contains(&i));
            }
        }
    }

    #[test]
    fn finds_every_entry_it_was_built_from_and_no_other() {
        for size in [0usize, 1, 15, 16, 17, 33, 1000, 40_000] {
            let trigrams = random_trigrams(size, size as u64 + 7);
            let mut builder = DictionaryBuilder::default();
            let mut expected = Vec::new();
            let mut postings = 0u32;
            for (i, &trigram) in trigrams.iter().enumerate() {
                let entry = Entry {
                    trigram,
                    count: i as u32 % 300 + 1,
                    union: Masks {
                        starts: i as u8,
                        followers: (i * 7) as u8,
                        cases: i as u8 & ANY_CASE,
                    },
                    postings_start: postings,
                    postings_len: i as u32 % 1000 + 2,
                };
                builder
                    .push(
                        u64::from(trigram),
                        u64::from(entry.count),
                        entry.union,
                        u64::from(entry.postings_len),
                    )
                    .unwrap();
                postings += entry.postings_len;
                expected.push(entry);
            }
            let dictionary = builder.finish(u64::from(postings)).unwrap();
            assert_eq!(dictionary.len(), trigrams.len());
            assert_eq!(dictionary.iter().collect::<Vec<_>>(), expected);
            for entry in &expected {
                assert_eq!(dictionary.find(entry.trigram), Some(*entry));
            }
            let absent: Vec<Trigram> = random_trigrams(200, 5)
                .into_iter()
                .filter(|t| trigrams.binary_search(t).is_err())
                .collect();
            for &trigram in &absent {
                assert_eq!(dictionary.find(trigram), None, "{trigram:x}");
            }
            // In step: every present trigram at once, then with an absent one among them.
            let present: Vec<Trigram> = trigrams.iter().copied().step_by(7).collect();
            let found = dictionary.find_all(&present).expect("all present");
            assert!(found.iter().zip(&present).all(|(e, &t)| e.trigram == t));
            if let Some(&missing) = absent.first() {
                let mut with_missing = present.clone();
                with_missing.push(missing);
                assert!(dictionary.find_all(&with_missing).is_none());
            }
        }
    }

    #[test]
    fn entries_out_of_order_or_not_ending_with_the_postings_are_refused() {
        let union = Masks {
            starts: 1,
            followers: 1,
            cases: 0,
        };
        let mut builder = DictionaryBuilder::default();
        builder.push(5, 1, union, 2).unwrap();
        assert!(builder.push(5, 1, union, 2).is_err(), "not ascending");
        assert!(builder.push(1 << 24, 1, union, 2).is_err(), "not a trigram");
        assert!(
            builder.push(6, MAX_PARTS as u64, union, 2).is_err(),
            "too many parts"
        );
        assert!(
            builder.push(6, 1, union, u64::MAX).is_err(),
            "postings past any file"
        );
        builder.push(6, 1, union, 3).unwrap();
        assert!(builder.finish(4).is_err(), "postings end at 5");
        let mut builder = DictionaryBuilder::default();
        builder.push(6, 1, union, 3).unwrap();
        assert_eq!(builder.finish(3).unwrap().len(), 1);
    }
}
