//! Block-parallel gzip, made the way pigz makes it: the input is cut into fixed 128 KiB chunks,
//! each chunk is deflated on its own (primed with the last 32 KiB of the chunk before it as the
//! dictionary, so matches still reach back across the cut) and ended with a sync flush at a byte
//! boundary; the pieces are concatenated in order into one gzip member whose CRC-32 is combined
//! from the chunks' CRCs.
//!
//! The bytes depend only on the input and the level, never on the number of threads or on how
//! the caller split its writes: the chunk size is fixed, a chunk is compressed only once the next
//! byte (or the end) shows it is not the last, and every chunk is deflated by a freshly reset
//! compressor from exactly (its bytes, the previous chunk's last 32 KiB). The deflate code is
//! zlib-rs (flate2's `zlib-rs` backend), whose output does not depend on the CPU: its SIMD paths
//! (`compare256`, `slide_hash`) compute the same values as the portable ones.
//!
//! Small inputs (one chunk) are compressed in the calling thread; larger ones start the worker
//! threads on the second chunk and keep at most two chunks per thread in flight, so memory stays
//! bounded however large the layer is.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

/// The fixed input chunk (pigz's default block size).
pub const CHUNK: usize = 128 * 1024;
/// How much of the previous chunk primes the next one (deflate's whole window).
const DICT: usize = 32 * 1024;
/// At most this many compression threads per writer.
const MAX_THREADS: usize = 8;

/// What the output depends on besides the input, for keys of compressed-blob caches: the
/// container, the chunking, the deflate implementation and its version. Change it whenever the
/// bytes for a given input change (a test pins the digest of a sample).
pub const SETTINGS: &str = "gzip-l6-pgzip128k-zlib-rs-0.6";

/// The level every layer is compressed with.
pub const LEVEL: u32 = 6;

/// A compression thread's answer for one chunk: the deflate bytes and the chunk's CRC.
type Piece = io::Result<(Vec<u8>, Crc)>;

struct Job {
    chunk: Arc<Vec<u8>>,
    /// The chunk before this one (its last 32 KiB is the dictionary).
    previous: Option<Arc<Vec<u8>>>,
    last: bool,
    reply: SyncSender<Piece>,
}

/// A writer of one gzip member (mtime 0, no name, OS 255, XFL 0), compressed in parallel.
pub struct ParGzWriter<W: Write> {
    out: W,
    level: Compression,
    threads: usize,
    buf: Vec<u8>,
    previous: Option<Arc<Vec<u8>>>,
    crc: Crc,
    pool: Option<Pool>,
    /// Chunks in flight, in output order.
    pending: VecDeque<Receiver<Piece>>,
    header_written: bool,
}

struct Pool {
    jobs: Option<mpsc::Sender<Job>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends the workers; they hold no borrowed data, so they need no join
        // on an error path, but a finished writer joins them to leave no thread behind.
        self.jobs.take();
        for w in self.workers.drain(..) {
            w.join().ok();
        }
    }
}

impl<W: Write> ParGzWriter<W> {
    /// A writer with as many threads as the machine offers (at most 8).
    pub fn new(out: W, level: u32) -> Self {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_THREADS);
        Self::with_threads(out, level, threads)
    }

    /// A writer with exactly `threads` compression threads (1: all in the calling thread). The
    /// output is the same for every thread count.
    pub fn with_threads(out: W, level: u32, threads: usize) -> Self {
        ParGzWriter {
            out,
            level: Compression::new(level),
            threads: threads.max(1),
            buf: Vec::with_capacity(CHUNK),
            previous: None,
            crc: Crc::new(),
            pool: None,
            pending: VecDeque::new(),
            header_written: false,
        }
    }

    /// Compresses what is left, writes the trailer and gives the inner writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_header()?;
        // The last chunk may be empty only when the whole input is.
        self.dispatch(true)?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.pool.take();
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.out.write_all(&trailer)?;
        let ParGzWriter { out, .. } = self;
        Ok(out)
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown): as flate2's GzBuilder
            // wrote them before, so the header of a layer is unchanged.
            self.out
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
            self.header_written = true;
        }
        Ok(())
    }

    /// Hands the buffered chunk to a thread (or compresses it here), then writes what is ready.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let chunk = Arc::new(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        let previous = self.previous.replace(Arc::clone(&chunk));
        // One chunk in all, or one thread: no thread is started.
        if self.threads == 1 || (last && self.pool.is_none()) {
            while !self.pending.is_empty() {
                self.write_oldest()?;
            }
            let (bytes, crc) = deflate_chunk(self.level, &chunk, previous.as_deref(), last)?;
            return self.put(bytes, &crc);
        }
        let jobs = self.pool_sender();
        let (reply, answer) = mpsc::sync_channel(1);
        jobs.send(Job {
            chunk,
            previous,
            last,
            reply,
        })
        .map_err(|_| io::Error::other("the compression threads stopped"))?;
        self.pending.push_back(answer);
        while self.pending.len() > 2 * self.threads {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn pool_sender(&mut self) -> mpsc::Sender<Job> {
        let level = self.level;
        let threads = self.threads;
        let pool = self.pool.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            let workers = (0..threads)
                .map(|_| {
                    let rx = Arc::clone(&rx);
                    std::thread::spawn(move || worker(&rx, level))
                })
                .collect();
            Pool {
                jobs: Some(tx),
                workers,
            }
        });
        pool.jobs
            .clone()
            .expect("the job queue is open until the writer finishes")
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(answer) = self.pending.pop_front() else {
            return Ok(());
        };
        let (bytes, crc) = answer
            .recv()
            .map_err(|_| io::Error::other("a compression thread died"))??;
        self.put(bytes, &crc)
    }

    fn put(&mut self, bytes: Vec<u8>, crc: &Crc) -> io::Result<()> {
        self.crc.combine(crc);
        self.out.write_all(&bytes)
    }
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        self.write_header()?;
        // A full chunk goes out only once more input shows it is not the last.
        if self.buf.len() == CHUNK {
            self.dispatch(false)?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    /// Flushes only what is already compressed: a flush never cuts a chunk short, so the bytes
    /// do not depend on when callers flush.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn worker(jobs: &Mutex<Receiver<Job>>, level: Compression) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let piece = deflate_chunk(level, &job.chunk, job.previous.as_deref(), job.last);
        // The writer may be gone (an error elsewhere): then nobody wants the piece.
        job.reply.send(piece).ok();
    }
}

/// Deflates one chunk with a new raw-deflate compressor: primed with the previous
/// chunk's last 32 KiB, ended by a sync flush (or the final block for the last chunk).
fn deflate_chunk(
    level: Compression,
    chunk: &[u8],
    previous: Option<&Vec<u8>>,
    last: bool,
) -> io::Result<(Vec<u8>, Crc)> {
    // A new compressor per chunk: zlib-rs's `reset` keeps state that can change the matches
    // found after it (measured: the same chunk deflated differently depending on what the
    // compressor had seen before), and the bytes must depend on this chunk alone.
    let mut c = Compress::new(level, false);
    if let Some(prev) = previous {
        c.set_dictionary(&prev[prev.len().saturating_sub(DICT)..])
            .map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(chunk.len() / 2 + 1024);
    let start = c.total_in();
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(4096));
        }
        let consumed = usize::try_from(c.total_in() - start).map_err(io::Error::other)?;
        let status = c
            .compress_vec(&chunk[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let consumed = usize::try_from(c.total_in() - start).map_err(io::Error::other)?;
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete once all input is in and the output did not fill up.
            Status::Ok | Status::BufError
                if !last && consumed == chunk.len() && out.len() < out.capacity() =>
            {
                break;
            }
            Status::Ok | Status::BufError => {}
        }
    }
    let mut crc = Crc::new();
    crc.update(chunk);
    Ok((out, crc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Deterministic mixed data: a text-like half and a pseudo-random half.
    fn sample(len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let words = [
            "layer ", "digest ", "shipit ", "image ", "\n", "arm64 ", "0.3.1 ",
        ];
        while v.len() < len / 2 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(words[(x % words.len() as u64) as usize].as_bytes());
        }
        while v.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(len);
        v
    }

    fn gz(data: &[u8], threads: usize, write_size: usize) -> Vec<u8> {
        let mut w = ParGzWriter::with_threads(Vec::new(), LEVEL, threads);
        for part in data.chunks(write_size.max(1)) {
            w.write_all(part).unwrap();
            w.flush().unwrap();
        }
        w.finish().unwrap()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn the_bytes_do_not_depend_on_threads_or_write_sizes_and_round_trip() {
        for len in [
            0,
            1,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK,
            5 * CHUNK + 777,
        ] {
            let data = sample(len);
            let one = gz(&data, 1, 1 << 20);
            for (threads, write_size) in [(2, 4096), (3, 1), (7, CHUNK), (8, 100_003)] {
                if write_size == 1 && len > CHUNK + 1 {
                    continue; // byte-at-a-time writes of megabytes only slow the test down
                }
                assert_eq!(
                    gz(&data, threads, write_size),
                    one,
                    "len {len}, {threads} threads, writes of {write_size}"
                );
            }
            assert_eq!(gunzip(&one), data, "len {len}");
            assert_eq!(&one[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        }
    }

    /// Highly repetitive data (long matches into the dictionary) once showed that a reused
    /// compressor's history leaked into the next chunk: every thread count, many times.
    #[test]
    fn repetitive_data_gives_the_same_bytes_on_every_run_and_thread_count() {
        let data: Vec<u8> = (0..400_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let one = gz(&data, 1, 1 << 20);
        for i in 0..12 {
            let threads = 2 + i % 3;
            assert!(
                gz(&data, threads, 8192) == one,
                "run {i}, {threads} threads"
            );
        }
        assert_eq!(gunzip(&one), data);
    }

    #[test]
    fn the_ratio_stays_close_to_single_stream_gzip() {
        let data = sample(2 << 20);
        let ours = gz(&data, 2, 65536).len();
        let mut single = flate2::write::GzEncoder::new(Vec::new(), Compression::new(6));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap().len();
        assert!(
            ours as f64 <= single as f64 * 1.02,
            "parallel {ours} bytes vs single-stream {single}"
        );
    }

    /// If this fails, the compressed bytes for a given input changed (a new zlib-rs, another
    /// chunk size): change `SETTINGS` so that cached blobs made the old way are not reused as if
    /// they were what this code makes, then update the digest here.
    #[test]
    fn settings_name_the_exact_bytes() {
        let got = crate::oci::digest::Digest::of(&gz(&sample(3 * CHUNK + 5), 2, 5000));
        assert_eq!(
            (SETTINGS, got.as_str()),
            (
                SETTINGS,
                "sha256:1c2be9ad095fd421a4e76c3c25cc2eca5e595b9d0811c91c1942a5f26873c71d"
            ),
            "the compressed bytes changed"
        );
    }
}
