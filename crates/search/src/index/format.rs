//! The shard file: one immutable file holding a set of documents, their compressed contents and
//! a trigram index over them. Writers never modify a shard in place.
//!
//! Readers use positioned reads, not a memory map: with the page cache's large folios, touching
//! one byte of a mapping maps up to 2 MB, and a query's scattered lookups across hundreds of
//! shards then made the process hold over 200 MB of index it had barely read. Read, the same
//! bytes stay in the page cache (shared and evictable) and out of the process's resident memory.
//!
//! A document larger than [`PART_TARGET`] is indexed as consecutive parts cut at line starts,
//! each part in a block of its own: postings name parts, so a query whose literal occurs in one
//! corner of an 8 MB amalgamation reads that corner, not the file. Lines never straddle parts, so
//! a line's match is always found within one part.
//!
//! Layout (version 6, little endian):
//!
//! | part | contents |
//! |---|---|
//! | header | `QUARRYIX`, format version `u32`, reserved `u32` |
//! | content | LZ4 blocks of concatenated document texts (about 16 KB each before compression) |
//! | block table | per block: file offset `u64`, compressed length `u32`, text length `u32`, CRC-32 of the text `u32` |
//! | documents | per document, varints: path length and bytes, object id length and bytes, size, flags, part count; then per part: block, offset in block, length, number of its first line |
//! | dictionary | per trigram, ascending: varints of the trigram less the one before, its part count shifted left by two with the union of its postings' cases in the low bits, and the byte length of its postings; then the unions of its postings' start masks and follower masks, a byte each (since version 5: a literal whose trigrams the unions rule out is ruled out of the whole shard from the dictionary alone, which readers hold in memory) |
//! | postings | per trigram, per part (parts are numbered across documents, in order): the delta-coded part number as a varint, shifted left by two for a trigram with an ASCII letter to carry its [cases](super::trigram::Masks::cases) in the low bits; a byte whose bit `p % 8` is set when the trigram starts at some column `p` of a line of the part (a literal's trigrams must then agree on a start; columns rather than offsets in the part since version 4, which makes the masks of code's keywords sparse, as they sit at few columns: a reader needs no change, as only the differences between a literal's offsets are checked); in versions 3 to 5, a byte with the [follower bit](super::trigram::follower_bit) of each byte that follows the trigram in the part (a literal's next byte must be among them; since version 6 only the dictionary's union says it, for the whole shard) |
//! | footer | offsets of block table, documents, dictionary, postings and end `u64` each; block, document and dictionary counts `u32` each; CRC-32 of block table + documents + dictionary `u32`; `QIDXFOOT` |
//!
//! A shard is written to a temporary file, flushed to disk and renamed into place, so a reader
//! only ever sees complete shards; the footer's checksum catches damage to the metadata, and each
//! block's checksum damage to a text.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::IndexError;
pub use super::dictionary::Entry;
use super::dictionary::{Dictionary, DictionaryBuilder, put_entry};
use super::trigram::{ANY_CASE, Masks, Trigram, TrigramSet, has_letter, pack};

/// Version 2 added the position byte of each posting; version 3 the parts of large documents,
/// the follower byte of each posting and a dictionary of varints; version 4 the cases of each
/// posting; version 5 the unions of each trigram's masks in the dictionary; version 6 parts and
/// blocks of 16 KiB rather than 32, and postings without the follower byte. Older versions are
/// still read (versions 1 and 2: a document is one part; version 1 postings allow any start,
/// versions before 3 and since 6 any follower, before 4 any case; before 5 a trigram's union
/// allows anything).
pub const FORMAT_VERSION: u32 = 6;
const HEADER_MAGIC: &[u8; 8] = b"QUARRYIX";
const FOOTER_MAGIC: &[u8; 8] = b"QIDXFOOT";
const HEADER_LEN: u64 = 16;
const FOOTER_LEN: usize = 5 * 8 + 4 * 4 + 8;
const BLOCK_ENTRY: usize = 20;
/// What is known of a trigram's postings when nothing is said of them.
const ALLOWS_ANYTHING: Masks = Masks {
    starts: 0xff,
    followers: 0xff,
    cases: ANY_CASE,
};
/// A version 1 or 2 dictionary entry: trigram `u32`, document count `u32`, postings offset `u64`.
const OLD_DICT_ENTRY: usize = 16;
/// Postings name parts in 22 bits while a shard is built (see [`ShardBuilder::is_full`]): 4M parts
/// of a shard of at most 64 MB of text.
pub const MAX_PARTS: usize = 1 << 22;
/// Texts are compressed together up to about this size. A candidate document costs the
/// decompression of its whole block, and LZ4 gains nothing from blocks larger than its 64 KB
/// window: 32 KB blocks made selective searches 10-20% faster than 128 KB ones for 4% more index,
/// and 16 KB ones (with parts of 16 KiB) another 10-15%.
const BLOCK_TARGET: usize = 16 * 1024;
/// Documents are cut into parts of about this size (at the first line start after it). A
/// candidate part costs its decompression: 32 KiB parts made phrase searches about twice as fast
/// as 64 KiB ones, for an index of 0.46x the text instead of 0.42x; 16 KiB parts paid for by
/// dropping the postings' follower bytes halved the candidate text of phrase searches again, for
/// a smaller index (0.46x instead of 0.48x).
pub const PART_TARGET: usize = 16 * 1024;

/// The contents of the document were not indexed: a NUL byte in its first 8 KB.
pub const FLAG_BINARY: u8 = 1;
/// The contents of the document were not indexed: larger than the limit.
pub const FLAG_TOO_LARGE: u8 = 2;

/// A part that holds a trigram, and the trigram's masks there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    pub part: u32,
    pub masks: Masks,
}

/// A document of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub path: String,
    pub oid: String,
    pub size: u64,
    pub flags: u8,
    /// Its parts: every document has at least one (empty for a document not indexed).
    parts: std::ops::Range<u32>,
}

/// A part of a document's text: whole lines, in one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub doc: u32,
    /// Byte offset of the part in its document.
    pub start: u64,
    /// 0-based number of the part's first line in its document.
    pub first_line: u32,
    pub len: u32,
    block: u32,
    offset: u32,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    offset: u64,
    compressed: u32,
    length: u32,
    crc: u32,
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[inline]
pub(super) fn get_varint(data: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = *data.get(*at)?;
        *at += 1;
        if shift > 63 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
        shift += 7;
    }
}

/// [`get_varint`] for hot loops: a one-byte varint, the most common, is read without a call.
#[inline(always)]
pub(super) fn get_small_varint(data: &[u8], at: &mut usize) -> Option<u64> {
    match data.get(*at) {
        Some(&byte) if byte < 0x80 => {
            *at += 1;
            Some(u64::from(byte))
        }
        _ => get_varint(data, at),
    }
}

/// Decodes `count` postings (see [`Shard::decode_postings`]): each a varint of the part's
/// distance from the one before (with the cases in its low two bits when `with_cases`), then a
/// start mask when `STARTS` and a follower mask when `FOLLOWERS`.
#[inline(always)]
fn decode_postings<const STARTS: bool, const FOLLOWERS: bool>(
    bytes: &[u8],
    count: usize,
    with_cases: bool,
    mut visit: impl FnMut(Posting) -> bool,
) -> Result<(), IndexError> {
    let truncated = || IndexError::Corrupt("truncated postings".into());
    let mut at = 0;
    let mut part = 0u64;
    let mask = |at: &mut usize| -> Result<u8, IndexError> {
        let byte = bytes.get(*at).copied().ok_or_else(truncated);
        *at += 1;
        byte
    };
    for _ in 0..count {
        let value = get_small_varint(bytes, &mut at).ok_or_else(truncated)?;
        let cases = if with_cases {
            part += value >> 2;
            value as u8 & ANY_CASE
        } else {
            part += value;
            ANY_CASE
        };
        let starts = if STARTS { mask(&mut at)? } else { 0xff };
        let followers = if FOLLOWERS { mask(&mut at)? } else { 0xff };
        let posting = Posting {
            part: part as u32,
            masks: Masks {
                starts,
                followers,
                cases,
            },
        };
        if !visit(posting) {
            break;
        }
    }
    Ok(())
}

/// Builds one shard in memory and writes it out.
#[derive(Default)]
pub struct ShardBuilder {
    docs: Vec<Doc>,
    parts: Vec<Part>,
    blocks: Vec<Block>,
    content: Vec<u8>,
    pending: Vec<u8>,
    pairs: Vec<u64>,
    trigrams: TrigramSet,
    text_bytes: u64,
}

impl ShardBuilder {
    /// Adds a document; `text` is empty for a document whose contents are not indexed.
    pub fn add(
        &mut self,
        path: String,
        oid: String,
        size: u64,
        flags: u8,
        text: &[u8],
    ) -> Result<(), IndexError> {
        let too_many = || IndexError::Corrupt("too many documents in one shard".into());
        let doc = u32::try_from(self.docs.len()).map_err(|_| too_many())?;
        let first_part = u32::try_from(self.parts.len()).map_err(|_| too_many())?;
        let (mut start, mut first_line) = (0usize, 0u32);
        loop {
            let end = part_end(text, start);
            let part = &text[start..end];
            self.add_part(doc, start as u64, first_line, part)?;
            first_line += memchr::memchr_iter(b'\n', part).count() as u32;
            start = end;
            if start >= text.len() {
                break;
            }
        }
        self.text_bytes += text.len() as u64;
        self.docs.push(Doc {
            path,
            oid,
            size,
            flags,
            parts: first_part..self.parts.len() as u32,
        });
        Ok(())
    }

    fn add_part(
        &mut self,
        doc: u32,
        start: u64,
        first_line: u32,
        text: &[u8],
    ) -> Result<(), IndexError> {
        if self.parts.len() >= MAX_PARTS {
            return Err(IndexError::Corrupt("too many parts in one shard".into()));
        }
        let part = self.parts.len() as u32;
        if !self.pending.is_empty() && self.pending.len() + text.len() > BLOCK_TARGET {
            self.seal_block()?;
        }
        self.parts.push(Part {
            doc,
            start,
            first_line,
            len: text.len() as u32,
            block: self.blocks.len() as u32,
            offset: self.pending.len() as u32,
        });
        self.pending.extend_from_slice(text);
        self.trigrams.collect(text);
        for (trigram, masks) in self.trigrams.with_masks() {
            self.pairs.push(
                (u64::from(trigram) << 40)
                    | (u64::from(part) << 18)
                    | (u64::from(masks.cases) << 16)
                    | (u64::from(masks.followers) << 8)
                    | u64::from(masks.starts),
            );
        }
        Ok(())
    }

    /// Bytes of indexed text so far.
    pub fn text_bytes(&self) -> u64 {
        self.text_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Whether the shard should be written out before another document: its postings can name
    /// only [`MAX_PARTS`] parts, and a document may need one per [`PART_TARGET`] bytes of its text.
    pub fn is_full(&self, next_text: usize) -> bool {
        self.parts.len() + 1 + next_text / PART_TARGET >= MAX_PARTS
    }

    fn seal_block(&mut self) -> Result<(), IndexError> {
        // LZ4 rather than a denser codec: reading texts back fast is what queries wait on.
        let compressed = lz4_flex::block::compress(&self.pending);
        self.blocks.push(Block {
            offset: HEADER_LEN + self.content.len() as u64,
            compressed: compressed.len() as u32,
            length: self.pending.len() as u32,
            crc: crc32fast::hash(&self.pending),
        });
        self.content.extend_from_slice(&compressed);
        self.pending.clear();
        Ok(())
    }

    /// Writes the shard to `path` atomically: a temporary file, flushed, then renamed.
    pub fn write(mut self, path: &Path) -> Result<(), IndexError> {
        // Every part points at a block, even an empty last one.
        self.seal_block()?;
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(HEADER_MAGIC);
        header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        // The metadata after the texts, with offsets in the file; the texts and the postings are
        // written from their own buffers rather than copied into one.
        let blocks_off = HEADER_LEN + self.content.len() as u64;
        let mut out = Vec::new();
        let offset = |out: &Vec<u8>| blocks_off + out.len() as u64;
        for block in &self.blocks {
            out.extend_from_slice(&block.offset.to_le_bytes());
            out.extend_from_slice(&block.compressed.to_le_bytes());
            out.extend_from_slice(&block.length.to_le_bytes());
            out.extend_from_slice(&block.crc.to_le_bytes());
        }
        let docs_off = offset(&out);
        for doc in &self.docs {
            put_varint(&mut out, doc.path.len() as u64);
            out.extend_from_slice(doc.path.as_bytes());
            put_varint(&mut out, doc.oid.len() as u64);
            out.extend_from_slice(doc.oid.as_bytes());
            put_varint(&mut out, doc.size);
            out.push(doc.flags);
            put_varint(&mut out, u64::from(doc.parts.end - doc.parts.start));
            for part in &self.parts[doc.parts.start as usize..doc.parts.end as usize] {
                put_varint(&mut out, u64::from(part.block));
                put_varint(&mut out, u64::from(part.offset));
                put_varint(&mut out, u64::from(part.len));
                put_varint(&mut out, u64::from(part.first_line));
            }
        }
        // Postings are grouped by trigram: sort the (trigram, part) pairs by trigram.
        sort_by_trigram(&mut self.pairs);
        let mut dictionary = Vec::new();
        let mut postings = Vec::new();
        let (mut i, mut trigrams, mut previous_trigram) = (0, 0u32, 0u32);
        while i < self.pairs.len() {
            let trigram = (self.pairs[i] >> 40) as u32;
            let start = postings.len();
            let mut previous = 0u32;
            let mut count = 0u64;
            let (mut starts, mut followers, mut cases) = (0u8, 0u8, 0u64);
            let with_cases = has_letter(trigram);
            while i < self.pairs.len() && (self.pairs[i] >> 40) as u32 == trigram {
                let part = ((self.pairs[i] >> 18) & 0x3f_ffff) as u32;
                let delta = u64::from(part - previous);
                put_varint(
                    &mut postings,
                    if with_cases {
                        delta << 2 | ((self.pairs[i] >> 16) & 3)
                    } else {
                        delta
                    },
                );
                postings.push(self.pairs[i] as u8);
                starts |= self.pairs[i] as u8;
                followers |= (self.pairs[i] >> 8) as u8;
                cases |= (self.pairs[i] >> 16) & 3;
                previous = part;
                count += 1;
                i += 1;
            }
            let entry = Entry {
                trigram,
                count: count as u32,
                union: Masks {
                    starts,
                    followers,
                    cases: cases as u8,
                },
                postings_start: start as u32,
                postings_len: (postings.len() - start) as u32,
            };
            put_entry(&mut dictionary, previous_trigram, &entry);
            previous_trigram = trigram;
            trigrams += 1;
        }
        let dict_off = offset(&out);
        out.extend_from_slice(&dictionary);
        let postings_off = offset(&out);
        let end = postings_off + postings.len() as u64;
        let crc = crc32fast::hash(&out);
        let mut footer = Vec::with_capacity(FOOTER_LEN);
        for value in [blocks_off, docs_off, dict_off, postings_off, end] {
            footer.extend_from_slice(&value.to_le_bytes());
        }
        for value in [
            self.blocks.len() as u32,
            self.docs.len() as u32,
            trigrams,
            crc,
        ] {
            footer.extend_from_slice(&value.to_le_bytes());
        }
        footer.extend_from_slice(FOOTER_MAGIC);
        write_atomically(path, &[&header, &self.content, &out, &postings, &footer])
    }
}

/// Sorts (trigram << 40 | part << 18 | masks) postings by trigram, keeping the order
/// of parts within a trigram (they were added in increasing order): a stable radix sort over
/// the trigram's three bytes, several times faster than a comparison sort on this many.
fn sort_by_trigram(pairs: &mut Vec<u64>) {
    let mut scratch = vec![0u64; pairs.len()];
    for shift in [40u32, 48, 56] {
        let mut counts = [0usize; 257];
        for &pair in pairs.iter() {
            counts[((pair >> shift) & 0xff) as usize + 1] += 1;
        }
        for i in 1..257 {
            counts[i] += counts[i - 1];
        }
        for &pair in pairs.iter() {
            let bucket = ((pair >> shift) & 0xff) as usize;
            scratch[counts[bucket]] = pair;
            counts[bucket] += 1;
        }
        std::mem::swap(pairs, &mut scratch);
    }
}

/// Where the part of `text` that starts at `start` ends: at the first line start at or after
/// [`PART_TARGET`] bytes, or at the end.
fn part_end(text: &[u8], start: usize) -> usize {
    let rest = &text[start..];
    if rest.len() <= PART_TARGET {
        return text.len();
    }
    match memchr::memchr(b'\n', &rest[PART_TARGET - 1..]) {
        Some(newline) if start + PART_TARGET + newline < text.len() => {
            start + PART_TARGET + newline
        }
        _ => text.len(),
    }
}

/// Bits of a shard's presence map of its texts' trigrams.
const PRESENCE_BITS: usize = 1 << 16;
/// Bits of a shard's presence map of its paths' trigrams (a few thousand paths at most).
const PATH_PRESENCE_BITS: usize = 1 << 12;

/// A trigram's bit in a presence map of `bits` bits, a power of two (a mask, not a division,
/// on the path of every lookup).
fn presence_bit(trigram: Trigram, bits: usize) -> usize {
    (trigram.wrapping_mul(0x9E37_79B1) >> 16) as usize & (bits - 1)
}

/// A presence map of `bits` bits with the bit of each trigram set.
fn presence_bits(trigrams: impl IntoIterator<Item = Trigram>, bits: usize) -> Vec<u64> {
    let mut map = vec![0u64; bits / 64];
    for trigram in trigrams {
        set_presence(&mut map, trigram);
    }
    map
}

fn set_presence(map: &mut [u64], trigram: Trigram) {
    let bit = presence_bit(trigram, map.len() * 64);
    map[bit / 64] |= 1 << (bit % 64);
}

fn map_has(map: &[u64], trigram: Trigram) -> bool {
    let bit = presence_bit(trigram, map.len() * 64);
    map[bit / 64] & (1 << (bit % 64)) != 0
}

/// Writes a file of `pieces`, one after the other, so that it is either absent or complete,
/// even across a crash.
pub fn write_atomically(path: &Path, pieces: &[&[u8]]) -> Result<(), IndexError> {
    let tmp = path.with_extension(format!("tmp{:08x}", fastrand::u32(..)));
    let result = (|| -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        for piece in pieces {
            file.write_all(piece)?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(parent) = path.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| IndexError::Io(format!("writing {}: {e}", path.display())))
}

/// An open shard.
pub struct Shard {
    file: File,
    docs: Vec<Doc>,
    /// The documents whose contents were not indexed (binary or too large).
    not_indexed: Vec<u32>,
    parts: Vec<Part>,
    /// Every document's path, one a line, so a path pattern is one pass over one buffer.
    paths: String,
    /// Where each document's path starts in `paths`.
    path_starts: Vec<u32>,
    blocks: Vec<Block>,
    /// A bit per block, set once its text has matched its checksum: the file never changes
    /// while open (shards are replaced by renaming), so a block is checked on its first read
    /// only, and queries that read every block do not pay for a checksum each time.
    checked: Vec<AtomicU64>,
    /// The dictionary, held in memory: a trigram absent from the shard costs no read at all, and
    /// a present one a single read of its postings.
    dictionary: Dictionary,
    /// A bit per hashed trigram, set for those the shard has: most absent trigrams are told
    /// apart with one memory access instead of a binary search's dozen or more.
    present: Vec<u64>,
    /// The same for the (folded) trigrams of the documents' paths: most literals are in no path
    /// of a shard, which then needs no pass of a path pattern over its paths.
    paths_present: Vec<u64>,
    postings_off: u64,
    /// The whole postings section of a shard whose section is small (see
    /// [`RESIDENT_POSTINGS`]); `None` when lists are read from the file as they are needed.
    resident_postings: Option<ResidentPostings>,
    text_bytes: u64,
    /// The format version: postings before 2 have no masks, before 3 and since 6 no followers,
    /// before 4 no cases; dictionaries before 5 no unions.
    version: u32,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("docs", &self.docs.len())
            .finish()
    }
}

fn read_u64(data: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&data[at..at + 8]);
    u64::from_le_bytes(bytes)
}

fn read_u32(data: &[u8], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&data[at..at + 4]);
    u32::from_le_bytes(bytes)
}

thread_local! {
    /// The bytes of the posting list being decoded: a query reads thousands of short lists, and
    /// each is decoded before the next is read, so one buffer per thread serves them all.
    static POSTINGS_READ: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}
/// A shard whose postings take at most this many bytes holds them in memory while the process's
/// [`RESIDENT_BUDGET`] lasts: most shards are small repositories' and a selective query reads a
/// few lists of each, where each read was a system call (the benchmark corpus's 559 shards of up
/// to 384 KiB hold 40 MiB of postings; its other 67 shards, 125 MiB).
const RESIDENT_POSTINGS: u64 = 384 * 1024;
/// Bytes of postings the process's shards may hold in memory together, whatever the number of
/// repositories: resident memory stays bounded, and shards beyond it read their lists. (Paid for
/// by holding dictionaries in their encoding: the benchmark's server starts in 128 MiB where it
/// took 143 with 16 MiB of postings and decoded dictionaries.)
static RESIDENT_BUDGET: AtomicU64 = AtomicU64::new(40 << 20);

/// A shard's postings section held in memory, with its share of the [`RESIDENT_BUDGET`], given
/// back when it is dropped (also when the shard's opening fails after taking it).
struct ResidentPostings {
    bytes: Vec<u8>,
    /// Bytes taken from the budget.
    taken: u64,
}

impl ResidentPostings {
    /// The `len` bytes at `offset` of `file`, if they are few enough and the budget has room.
    fn read(file: &File, offset: u64, len: u64) -> Result<Option<Self>, IndexError> {
        let taken = len <= RESIDENT_POSTINGS
            && RESIDENT_BUDGET
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(len)
                })
                .is_ok();
        if !taken {
            return Ok(None);
        }
        // Held before the read, so that a failed read gives the budget back.
        let mut held = ResidentPostings {
            bytes: Vec::new(),
            taken: len,
        };
        held.bytes = read_at(file, offset, len as usize)?;
        Ok(Some(held))
    }
}

impl Drop for ResidentPostings {
    fn drop(&mut self) {
        RESIDENT_BUDGET.fetch_add(self.taken, Ordering::Relaxed);
    }
}
/// A thread keeps its postings buffer up to this size; the rare longer list gets a buffer of
/// its own.
const KEPT_READ_BUFFER: usize = 1 << 20;

/// Opens a file for reading without updating its access time when the process may (it owns the
/// file): searches read shards thousands of times a second, and each read would otherwise check
/// whether the access time is due for an update.
fn open_for_reading(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
        .or_else(|_| File::open(path))
}

/// Fills `buf` from the shard file at `offset`; a file shorter than its metadata says is damaged.
fn read_exact(file: &File, buf: &mut [u8], offset: u64) -> Result<(), IndexError> {
    file.read_exact_at(buf, offset)
        .map_err(|e| IndexError::Corrupt(format!("short read at {offset}: {e}")))
}

fn read_at(file: &File, offset: u64, len: usize) -> Result<Vec<u8>, IndexError> {
    let mut buf = vec![0u8; len];
    read_exact(file, &mut buf, offset)?;
    Ok(buf)
}

impl Shard {
    /// Opens and checks a shard: header, footer, section bounds and the metadata checksum.
    pub fn open(path: &Path) -> Result<Shard, IndexError> {
        Self::open_holding(path, true)
    }

    /// Opens a shard; `may_hold` says whether it may hold its postings in memory.
    fn open_holding(path: &Path, may_hold: bool) -> Result<Shard, IndexError> {
        let corrupt = |what: &str| IndexError::Corrupt(format!("{}: {what}", path.display()));
        let file = open_for_reading(path)
            .map_err(|e| IndexError::Io(format!("{}: {e}", path.display())))?;
        let len = file
            .metadata()
            .map_err(|e| IndexError::Io(format!("{}: {e}", path.display())))?
            .len();
        if len < HEADER_LEN + FOOTER_LEN as u64 {
            return Err(corrupt("not a shard"));
        }
        let header = read_at(&file, 0, HEADER_LEN as usize)?;
        if &header[..8] != HEADER_MAGIC {
            return Err(corrupt("not a shard"));
        }
        let version = read_u32(&header, 8);
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(IndexError::Version(version));
        }
        let footer = read_at(&file, len - FOOTER_LEN as u64, FOOTER_LEN)?;
        if &footer[FOOTER_LEN - 8..] != FOOTER_MAGIC {
            return Err(corrupt("incomplete (no footer)"));
        }
        let [blocks_off, docs_off, dict_off, postings_off, end] =
            [0, 8, 16, 24, 32].map(|i| read_u64(&footer, i));
        let [block_count, doc_count, dict_count, crc] =
            [40, 44, 48, 52].map(|i| read_u32(&footer, i));
        let (block_count, doc_count, dict_count) = (
            block_count as usize,
            doc_count as usize,
            dict_count as usize,
        );
        let ordered = HEADER_LEN <= blocks_off
            && blocks_off <= docs_off
            && docs_off <= dict_off
            && dict_off <= postings_off
            && postings_off <= end
            && end == len - FOOTER_LEN as u64
            && blocks_off + (block_count * BLOCK_ENTRY) as u64 == docs_off
            && (version >= 3 || dict_off + (dict_count * OLD_DICT_ENTRY) as u64 == postings_off);
        if !ordered {
            return Err(corrupt("section offsets out of order"));
        }
        let metadata = read_at(&file, blocks_off, (dict_off - blocks_off) as usize)?;
        let dictionary = read_at(&file, dict_off, (postings_off - dict_off) as usize)?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&metadata);
        hasher.update(&dictionary);
        if hasher.finalize() != crc {
            return Err(corrupt("metadata checksum mismatch"));
        }
        let postings_len = end - postings_off;
        let resident_postings = if may_hold {
            ResidentPostings::read(&file, postings_off, postings_len)?
        } else {
            None
        };
        // Every version's dictionary is held in version 5's encoding: since version 5 as the file
        // has it, before it encoded again.
        let mut present = vec![0u64; PRESENCE_BITS / 64];
        let dictionary = if version >= 5 {
            Dictionary::from_encoded(dictionary, dict_count, postings_len, |trigram| {
                set_presence(&mut present, trigram)
            })?
        } else {
            Self::older_dictionary(&dictionary, dict_count, version, postings_len, |trigram| {
                set_presence(&mut present, trigram)
            })?
        };
        let blocks: Vec<Block> = (0..block_count)
            .map(|i| {
                let at = i * BLOCK_ENTRY;
                Block {
                    offset: read_u64(&metadata, at),
                    compressed: read_u32(&metadata, at + 8),
                    length: read_u32(&metadata, at + 12),
                    crc: read_u32(&metadata, at + 16),
                }
            })
            .collect();
        let section = &metadata[block_count * BLOCK_ENTRY..];
        let mut docs = Vec::with_capacity(doc_count);
        let mut parts: Vec<Part> = Vec::with_capacity(doc_count);
        let mut at = 0;
        let mut text_bytes = 0u64;
        let number = |at: &mut usize, what: &str| {
            get_varint(section, at).ok_or_else(|| corrupt(&format!("bad {what}")))
        };
        let small = |value: u64, what: &str| {
            u32::try_from(value).map_err(|_| corrupt(&format!("bad {what}")))
        };
        for doc in 0..doc_count as u32 {
            let string = |at: &mut usize| -> Option<String> {
                let len = get_varint(section, at)? as usize;
                let bytes = section.get(*at..*at + len)?;
                *at += len;
                String::from_utf8(bytes.to_vec()).ok()
            };
            let path = string(&mut at).ok_or_else(|| corrupt("bad document path"))?;
            let oid = string(&mut at).ok_or_else(|| corrupt("bad document id"))?;
            let size = number(&mut at, "size")?;
            let flags = *section.get(at).ok_or_else(|| corrupt("bad flags"))?;
            at += 1;
            let first_part = parts.len() as u32;
            // Before version 3 a document is one part, and its length is its size.
            let part_count = if version >= 3 {
                number(&mut at, "part count")?
            } else {
                1
            };
            let mut start = 0u64;
            for _ in 0..part_count {
                let block = small(number(&mut at, "block")?, "block")?;
                let offset = small(number(&mut at, "offset")?, "offset")?;
                let (len, first_line) = if version >= 3 {
                    let len = small(number(&mut at, "part length")?, "part length")?;
                    (len, small(number(&mut at, "line")?, "line")?)
                } else if flags == 0 {
                    (small(size, "size")?, 0)
                } else {
                    (0, 0)
                };
                if block as usize >= blocks.len() {
                    return Err(corrupt("document in a missing block"));
                }
                parts.push(Part {
                    doc,
                    start,
                    first_line,
                    len,
                    block,
                    offset,
                });
                start += u64::from(len);
            }
            if parts.len() as u32 == first_part {
                return Err(corrupt("document without parts"));
            }
            if flags == 0 {
                text_bytes += size;
            }
            docs.push(Doc {
                path,
                oid,
                size,
                flags,
                parts: first_part..parts.len() as u32,
            });
        }
        let mut paths = String::new();
        let mut path_starts = Vec::with_capacity(docs.len());
        for doc in &docs {
            path_starts.push(u32::try_from(paths.len()).map_err(|_| corrupt("paths too long"))?);
            paths.push_str(&doc.path);
            paths.push('\n');
        }
        let paths_present = presence_bits(
            paths
                .as_bytes()
                .windows(3)
                .filter(|w| !w.contains(&b'\n'))
                .map(|w| pack(w[0], w[1], w[2])),
            PATH_PRESENCE_BITS,
        );
        let not_indexed = (0..docs.len() as u32)
            .filter(|&doc| docs[doc as usize].flags != 0)
            .collect();
        let checked = (0..blocks.len().div_ceil(64))
            .map(|_| AtomicU64::new(0))
            .collect();
        Ok(Shard {
            file,
            docs,
            not_indexed,
            parts,
            paths,
            path_starts,
            blocks,
            checked,
            dictionary,
            present,
            paths_present,
            postings_off,
            resident_postings,
            text_bytes,
            version,
        })
    }

    /// A dictionary of versions 1 to 4 (fixed entries before 3, varints without unions after),
    /// encoded as version 5's. `each` sees every trigram.
    fn older_dictionary(
        dictionary: &[u8],
        dict_count: usize,
        version: u32,
        postings_len: u64,
        mut each: impl FnMut(Trigram),
    ) -> Result<Dictionary, IndexError> {
        let out_of_order = || IndexError::Corrupt("dictionary out of order".into());
        let mut built = DictionaryBuilder::with_capacity(dictionary.len());
        let mut at = 0;
        let mut trigram = 0u64;
        for i in 0..dict_count {
            let (count, len) = if version >= 3 {
                let mut number = || get_varint(dictionary, &mut at).ok_or_else(out_of_order);
                let (delta, count, len) = (number()?, number()?, number()?);
                // Saturating: a damaged delta is then refused as out of range, not a panic.
                trigram = trigram.saturating_add(delta);
                (count, len)
            } else {
                // Fixed entries naming where their postings start; they end where the next's do.
                let entry = |i: usize| {
                    let at = i * OLD_DICT_ENTRY;
                    (
                        read_u32(dictionary, at),
                        read_u32(dictionary, at + 4),
                        read_u64(dictionary, at + 8),
                    )
                };
                let (fixed_trigram, count, offset) = entry(i);
                let end = if i + 1 < dict_count {
                    entry(i + 1).2
                } else {
                    postings_len
                };
                let len = end.checked_sub(offset).filter(|_| i > 0 || offset == 0);
                trigram = u64::from(fixed_trigram);
                (u64::from(count), len.ok_or_else(out_of_order)?)
            };
            built.push(trigram, count, ALLOWS_ANYTHING, len)?;
            each(trigram as Trigram);
        }
        if version >= 3 && at != dictionary.len() {
            return Err(out_of_order());
        }
        built.finish(postings_len)
    }

    pub fn docs(&self) -> &[Doc] {
        &self.docs
    }

    /// The documents whose path `regex` matches, ascending.
    pub fn docs_with_matching_path(&self, regex: &regex::bytes::Regex) -> Vec<u32> {
        let text = self.paths.as_bytes();
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(found) = regex.find_at(text, at) {
            let doc = self
                .path_starts
                .partition_point(|&s| s as usize <= found.start())
                - 1;
            // A match could run across the newline between two paths: check the path alone.
            if regex.is_match(self.docs[doc].path.as_bytes()) {
                out.push(doc as u32);
            }
            match self.path_starts.get(doc + 1) {
                Some(&next) => at = next as usize,
                None => break,
            }
        }
        out
    }

    /// Bytes of text indexed in this shard.
    pub fn text_bytes(&self) -> u64 {
        self.text_bytes
    }

    /// Whether the shard may have a trigram: `false` is certain, and costs one memory access.
    pub fn may_have(&self, trigram: Trigram) -> bool {
        map_has(&self.present, trigram)
    }

    /// Whether some document's path may hold all of these (folded) trigrams: `false` is certain.
    pub fn paths_may_have(&self, trigrams: &[Trigram]) -> bool {
        trigrams.iter().all(|&t| map_has(&self.paths_present, t))
    }

    /// A trigram's entry in the dictionary, if the shard has it: how many parts hold it, and where
    /// its postings are (looked up once for both).
    pub fn entry(&self, trigram: Trigram) -> Option<Entry> {
        self.dictionary.find(trigram)
    }

    /// The entries of several trigrams, or `None` when the shard lacks one of them (callers
    /// check [`Shard::may_have`] first, which rules most trigrams out for less).
    pub fn entries(&self, trigrams: &[Trigram]) -> Option<Vec<Entry>> {
        self.dictionary.find_all(trigrams)
    }

    /// The parts that contain a trigram, ascending, each with the trigram's masks in it.
    pub fn postings(&self, trigram: Trigram) -> Result<Vec<Posting>, IndexError> {
        match self.entry(trigram) {
            Some(entry) => self.postings_of(entry),
            None => Ok(Vec::new()),
        }
    }

    /// The postings of a dictionary entry of this shard.
    pub fn postings_of(&self, entry: Entry) -> Result<Vec<Posting>, IndexError> {
        let mut out = Vec::with_capacity(entry.count as usize);
        self.visit_postings(entry, |posting| {
            out.push(posting);
            true
        })?;
        Ok(out)
    }

    /// Hands the postings of a dictionary entry to `visit` in ascending order of part, as they
    /// are decoded, until it returns false: an intersection with a few parts stops decoding a long
    /// list once it is past the last of them. `visit` must not read postings itself (the list's
    /// bytes are in the thread's one buffer meanwhile).
    pub fn visit_postings(
        &self,
        entry: Entry,
        visit: impl FnMut(Posting) -> bool,
    ) -> Result<(), IndexError> {
        let start = u64::from(entry.postings_start);
        let len = u64::from(entry.postings_len);
        if let Some(resident) = &self.resident_postings {
            let bytes = resident
                .bytes
                .get(start as usize..(start + len) as usize)
                .ok_or_else(|| IndexError::Corrupt("postings out of bounds".into()))?;
            return self.decode_postings(entry, bytes, visit);
        }
        POSTINGS_READ.with_borrow_mut(|bytes| {
            bytes.resize(len as usize, 0);
            read_exact(&self.file, bytes, self.postings_off + start)?;
            let decoded = self.decode_postings(entry, bytes, visit);
            if bytes.capacity() > KEPT_READ_BUFFER {
                *bytes = Vec::new();
            }
            decoded
        })
    }

    /// Decodes the postings of a dictionary entry from its bytes (see [`Shard::visit_postings`]),
    /// with a loop made for what the shard's version puts in a posting: this is where a query
    /// over many repositories spends much of its time.
    fn decode_postings(
        &self,
        entry: Entry,
        bytes: &[u8],
        visit: impl FnMut(Posting) -> bool,
    ) -> Result<(), IndexError> {
        let with_cases = self.version >= 4 && has_letter(entry.trigram);
        let count = entry.count as usize;
        match self.version {
            1 => decode_postings::<false, false>(bytes, count, with_cases, visit),
            3..=5 => decode_postings::<true, true>(bytes, count, with_cases, visit),
            _ => decode_postings::<true, false>(bytes, count, with_cases, visit),
        }
    }

    /// The documents whose contents were not indexed, ascending.
    pub fn not_indexed(&self) -> &[u32] {
        &self.not_indexed
    }

    /// Every part of every document, in order (postings number them).
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The parts of a document.
    pub fn parts_of(&self, doc: u32) -> std::ops::Range<u32> {
        self.docs[doc as usize].parts.clone()
    }
}

thread_local! {
    /// The buffers of the last [`Texts`] dropped on this thread (compressed, decompressed): a
    /// query reads candidate texts from hundreds of shards, and fresh buffers cost each one an
    /// allocation and the zeroing of a block's length twice.
    static TEXT_BUFFERS: std::cell::RefCell<(Vec<u8>, Vec<u8>)> = const {
        std::cell::RefCell::new((Vec::new(), Vec::new()))
    };
}

/// Reads the texts of a shard's parts and documents into buffers it reuses, keeping the last
/// block read (neighbouring small documents share one).
pub struct Texts<'a> {
    shard: &'a Shard,
    /// The block whose text is in `text`, and its length.
    block: Option<(u32, usize)>,
    compressed: Vec<u8>,
    text: Vec<u8>,
}

impl<'a> Texts<'a> {
    pub fn new(shard: &'a Shard) -> Self {
        let (compressed, text) = TEXT_BUFFERS.with_borrow_mut(std::mem::take);
        Texts {
            shard,
            block: None,
            compressed,
            text,
        }
    }

    /// Reads a block, checked against its checksum.
    fn load(&mut self, block: u32) -> Result<(), IndexError> {
        self.block = None;
        let info = self.shard.blocks[block as usize];
        let (compressed, length) = (info.compressed as usize, info.length as usize);
        if self.compressed.len() < compressed {
            self.compressed.resize(compressed, 0);
        }
        if self.text.len() < length {
            self.text.resize(length, 0);
        }
        read_exact(
            &self.shard.file,
            &mut self.compressed[..compressed],
            info.offset,
        )?;
        let corrupt = |what: String| IndexError::Corrupt(format!("block {block}: {what}"));
        let written = lz4_flex::block::decompress_into(
            &self.compressed[..compressed],
            &mut self.text[..length],
        )
        .map_err(|e| corrupt(e.to_string()))?;
        if written != length {
            return Err(corrupt(format!(
                "{written} bytes where {length} were expected"
            )));
        }
        let (word, bit) = (&self.shard.checked[block as usize / 64], 1 << (block % 64));
        if word.load(Ordering::Relaxed) & bit == 0 {
            if crc32fast::hash(&self.text[..length]) != info.crc {
                return Err(corrupt("checksum mismatch".into()));
            }
            word.fetch_or(bit, Ordering::Relaxed);
        }
        self.block = Some((block, length));
        Ok(())
    }

    /// The text of a part.
    pub fn part(&mut self, part: u32) -> Result<&[u8], IndexError> {
        let info = self.shard.parts[part as usize];
        let length = match self.block {
            Some((block, length)) if block == info.block => length,
            _ => {
                self.load(info.block)?;
                self.shard.blocks[info.block as usize].length as usize
            }
        };
        let (offset, len) = (info.offset as usize, info.len as usize);
        self.text[..length]
            .get(offset..offset + len)
            .ok_or_else(|| {
                let path = &self.shard.docs[info.doc as usize].path;
                IndexError::Corrupt(format!("document {path} outside its block"))
            })
    }

    /// The whole text of a document: borrowed when it is one part, else its parts joined.
    pub fn doc(&mut self, doc: u32) -> Result<std::borrow::Cow<'_, [u8]>, IndexError> {
        let parts = self.shard.parts_of(doc);
        if parts.len() == 1 {
            return Ok(std::borrow::Cow::Borrowed(self.part(parts.start)?));
        }
        let mut text = Vec::new();
        for part in parts {
            text.extend_from_slice(self.part(part)?);
        }
        Ok(std::borrow::Cow::Owned(text))
    }
}

impl Drop for Texts<'_> {
    fn drop(&mut self) {
        // A block of a huge single line can be megabytes: such buffers go back to the system.
        if self.text.capacity() <= KEPT_READ_BUFFER {
            let buffers = (
                std::mem::take(&mut self.compressed),
                std::mem::take(&mut self.text),
            );
            TEXT_BUFFERS.with_borrow_mut(|kept| *kept = buffers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::trigram::{follower_bit, pack};

    fn build(dir: &Path) -> std::path::PathBuf {
        let mut builder = ShardBuilder::default();
        builder
            .add("a.rs".into(), "1".repeat(40), 13, 0, b"fn alpha() {}")
            .unwrap();
        builder
            .add("b.bin".into(), "2".repeat(40), 9, FLAG_BINARY, b"")
            .unwrap();
        let big = "needle\n".repeat(40_000);
        builder
            .add(
                "big.txt".into(),
                "3".repeat(40),
                big.len() as u64,
                0,
                big.as_bytes(),
            )
            .unwrap();
        builder
            .add("c.rs".into(), "4".repeat(40), 12, 0, b"fn beta() {}")
            .unwrap();
        let path = dir.join("0.qix");
        builder.write(&path).unwrap();
        path
    }

    #[test]
    fn pairs_sort_by_trigram_keeping_document_order() {
        let mut pairs: Vec<u64> = Vec::new();
        let mut state = 12345u64;
        for doc in 0..2000u64 {
            for _ in 0..5 {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                pairs.push(((state >> 40) & 0xff_ffff) << 40 | doc << 8 | (state & 0xff));
            }
        }
        let mut expected = pairs.clone();
        expected.sort_by_key(|p| p >> 40);
        sort_by_trigram(&mut pairs);
        assert_eq!(pairs, expected);
    }

    #[test]
    fn dictionary_searches_in_step_find_what_one_search_finds() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = ShardBuilder::default();
        let text: String = (0..3000).map(|i| format!("w{i:x}q{} ", i * 7)).collect();
        builder
            .add(
                "a.txt".into(),
                "1".repeat(40),
                text.len() as u64,
                0,
                text.as_bytes(),
            )
            .unwrap();
        let path = dir.path().join("0.qix");
        builder.write(&path).unwrap();
        let shard = Shard::open(&path).unwrap();
        assert!(shard.dictionary.len() > 1000, "many samples");
        let every: Vec<Entry> = shard.dictionary.iter().collect();
        let present: Vec<Trigram> = every.iter().step_by(7).map(|e| e.trigram).collect();
        let found = shard.entries(&present).expect("all present");
        assert_eq!(found, every.iter().step_by(7).copied().collect::<Vec<_>>());
        let mut with_missing = present.clone();
        with_missing.push(pack(b'#', b'#', b'#'));
        assert!(shard.entries(&with_missing).is_none());
        assert!(shard.entry(pack(b'#', b'#', b'#')).is_none());
    }

    #[test]
    fn postings_held_in_memory_are_those_read_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = build(dir.path());
        let held = Shard::open(&path).unwrap();
        let read = Shard::open_holding(&path, false).unwrap();
        assert!(held.resident_postings.is_some() && read.resident_postings.is_none());
        assert!(!held.dictionary.is_empty());
        for entry in held.dictionary.iter() {
            let trigram = entry.trigram;
            assert_eq!(
                held.postings(trigram).unwrap(),
                read.postings(trigram).unwrap()
            );
        }
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let shard = Shard::open(&build(dir.path())).unwrap();
        assert_eq!(shard.docs().len(), 4);
        assert_eq!(shard.docs()[1].flags, FLAG_BINARY);
        // `fn ` starts at byte 0 of both documents (the last is part 3 + the large one's parts
        // beyond its first).
        let last = shard.parts_of(3).start;
        let found: Vec<(u32, u8, u8, u8)> = shard
            .postings(pack(b'f', b'n', b' '))
            .unwrap()
            .iter()
            .map(|p| (p.part, p.masks.starts, p.masks.followers, p.masks.cases))
            .collect();
        // Postings say nothing of followers since version 6; the dictionary says which follow
        // the trigram anywhere in the shard.
        let lower = crate::index::trigram::CASE_LOWER;
        assert_eq!(found, [(0, 1, 0xff, lower), (last, 1, 0xff, lower)]);
        assert_eq!(
            shard.entry(pack(b'f', b'n', b' ')).unwrap().union.followers,
            follower_bit(b'a') | follower_bit(b'b')
        );
        // The dictionary's union of a trigram's starts and cases is that of its postings'.
        for trigram in [
            pack(b'f', b'n', b' '),
            pack(b'n', b'e', b'e'),
            pack(b'(', b')', b' '),
        ] {
            let union = shard.entry(trigram).unwrap().union;
            let postings = shard.postings(trigram).unwrap();
            let or = |mask: fn(&Posting) -> u8| postings.iter().map(mask).fold(0, |a, b| a | b);
            assert_eq!(union.starts, or(|p| p.masks.starts));
            let letters = has_letter(trigram);
            assert_eq!(union.cases == 0, !letters);
            assert!(!letters || union.cases == or(|p| p.masks.cases));
        }
        let needles = shard.postings(pack(b'N', b'E', b'E')).unwrap();
        assert_eq!(needles.len(), shard.parts_of(2).len());
        // A visit ends when the visitor says so; what it saw is the list's beginning.
        let mut seen = Vec::new();
        let entry = shard.entry(pack(b'N', b'E', b'E')).unwrap();
        shard
            .visit_postings(entry, |posting| {
                seen.push(posting);
                seen.len() < 2
            })
            .unwrap();
        assert_eq!(seen, needles[..2]);
        assert!(needles.iter().all(|p| p.masks.cases == lower));
        // A trigram without letters says nothing of cases.
        assert!(
            shard
                .postings(pack(b'(', b')', b' '))
                .unwrap()
                .iter()
                .all(|p| p.masks.cases == ANY_CASE)
        );
        assert!(shard.postings(pack(b'z', b'z', b'z')).unwrap().is_empty());
        let rs = regex::bytes::RegexBuilder::new(r"\.rs$")
            .multi_line(true)
            .build()
            .unwrap();
        assert_eq!(shard.docs_with_matching_path(&rs), [0, 3]);
        let across = regex::bytes::RegexBuilder::new(r"rs\sb")
            .multi_line(true)
            .build()
            .unwrap();
        assert!(
            shard.docs_with_matching_path(&across).is_empty(),
            "never across two paths"
        );
        let everything = regex::bytes::Regex::new("").unwrap();
        assert_eq!(shard.docs_with_matching_path(&everything), [0, 1, 2, 3]);
        let mut texts = Texts::new(&shard);
        assert_eq!(&*texts.doc(3).unwrap(), b"fn beta() {}");
        assert_eq!(&*texts.doc(1).unwrap(), b"");
        // The large document is cut into parts at line starts; their texts join up again.
        let big = "needle\n".repeat(40_000);
        assert!(shard.parts_of(2).len() > 1);
        let mut start = 0;
        for number in shard.parts_of(2) {
            let part = shard.parts()[number as usize];
            assert_eq!((part.doc, part.start), (2, start as u64));
            assert_eq!(part.first_line as usize, start / 7);
            let text = texts.part(number).unwrap().to_vec();
            assert_eq!(text, big.as_bytes()[start..start + part.len as usize]);
            assert!(text.ends_with(b"\n"));
            start += part.len as usize;
        }
        assert_eq!(start, big.len());
        assert_eq!(&*texts.doc(2).unwrap(), big.as_bytes());
    }

    #[test]
    fn damage_is_detected_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let path = build(dir.path());
        let original = std::fs::read(&path).unwrap();
        // A torn write: the file ends early.
        std::fs::write(&path, &original[..original.len() / 2]).unwrap();
        assert!(matches!(Shard::open(&path), Err(IndexError::Corrupt(_))));
        // A flipped byte in the metadata.
        let mut flipped = original.clone();
        let docs_off = read_u64(&original, original.len() - FOOTER_LEN + 8) as usize;
        flipped[docs_off + 1] ^= 0xff;
        std::fs::write(&path, &flipped).unwrap();
        assert!(Shard::open(&path).is_err());
        // A flipped byte in a text block.
        let mut flipped = original;
        flipped[HEADER_LEN as usize + 5] ^= 0xff;
        std::fs::write(&path, &flipped).unwrap();
        let shard = Shard::open(&path).unwrap();
        assert!(Texts::new(&shard).part(0).is_err());
        assert!(
            Texts::new(&shard).part(0).is_err(),
            "a damaged block is never trusted"
        );
    }
}
