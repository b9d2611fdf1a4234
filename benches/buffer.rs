//! Output-buffer benchmarks: write throughput by chunk size and data shape, against a plain copy
//! of the same bytes into a 32 KiB ring (the baseline), and the cost of rendering a full buffer.
//!
//! Run: `cargo bench --bench buffer`. The acceptance ratio is
//! `write/64KiB/*` throughput over `ring_copy/64KiB/*` throughput of the same run.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use procwarden::HeadTailBuffer;

/// Bytes written per measured iteration, whatever the chunk size.
const VOLUME: usize = 1 << 20;
/// Size of the baseline ring: what the buffer keeps (head + tail).
const RING: usize = 32 * 1024;
const CHUNKS: [(usize, &str); 3] = [(64, "64B"), (4096, "4KiB"), (65536, "64KiB")];

/// 80-byte lines (79 printable bytes and a newline).
fn lines(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            if i % 80 == 79 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect()
}

/// Printable bytes with no newline at all.
fn no_newlines(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The baseline: copy every byte of a chunk into a fixed ring, wrapping.
struct Ring {
    bytes: Vec<u8>,
    next: usize,
}

impl Ring {
    fn write(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let n = chunk.len().min(self.bytes.len() - self.next);
            self.bytes[self.next..self.next + n].copy_from_slice(&chunk[..n]);
            self.next = (self.next + n) % self.bytes.len();
            chunk = &chunk[n..];
        }
    }
}

fn writes(c: &mut Criterion) {
    for (shape, data) in [
        ("lines80", lines(VOLUME)),
        ("no_newline", no_newlines(VOLUME)),
    ] {
        let mut group = c.benchmark_group(format!("write_{shape}"));
        group.throughput(Throughput::Bytes(VOLUME as u64));
        for (chunk, label) in CHUNKS {
            group.bench_with_input(BenchmarkId::new("buffer", label), &chunk, |b, &chunk| {
                let buffer = HeadTailBuffer::new();
                b.iter(|| {
                    for part in data.chunks(chunk) {
                        buffer.write(black_box(part));
                    }
                });
            });
            group.bench_with_input(BenchmarkId::new("ring_copy", label), &chunk, |b, &chunk| {
                let mut ring = Ring {
                    bytes: vec![0; RING],
                    next: 0,
                };
                b.iter(|| {
                    for part in data.chunks(chunk) {
                        ring.write(black_box(part));
                    }
                    black_box(&ring.bytes);
                });
            });
        }
        group.finish();
    }
}

fn renders(c: &mut Criterion) {
    let mut group = c.benchmark_group("render_full");
    // Lines of 2548 bytes: every line in head and tail is cut.
    let long: Vec<u8> = (0..200_000)
        .map(|i| if i % 2549 == 2548 { b'\n' } else { b'x' })
        .collect();
    let mixed: Vec<u8> = "héllo wörld € 🙂 "
        .bytes()
        .cycle()
        .take(200_000)
        .enumerate()
        .map(|(i, b)| if i % 3000 == 2999 { b'\n' } else { b })
        .collect();
    for (name, data) in [
        ("long_lines", long),
        ("lines80", lines(200_000)),
        ("multibyte_long_lines", mixed),
    ] {
        let buffer = HeadTailBuffer::new();
        buffer.write(&data);
        group.bench_function(name, |b| b.iter(|| black_box(buffer.render())));
    }
    group.finish();
}

criterion_group!(benches, writes, renders);
criterion_main!(benches);
