//! The fuzz targets' short run, part of every `cargo test`: each property of
//! tests/fuzz_props runs on its seeds (fuzz/seeds/TARGET/, plus anything
//! saved in fuzz/regressions/TARGET/) and on a few thousand random
//! mutations of them, from a fixed seed so a failure reproduces. A
//! counting allocator bounds the memory any one case may take. The long,
//! coverage-guided run is cargo-fuzz's (docs/FUZZING.md).
mod fuzz_props;

use fuzz_props::Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

/// Counts each thread's live heap bytes and their peak, for the memory
/// bound (per thread: the tests run side by side, each case on one thread).
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + delta);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most heap one case may add: the frame reader holds at most one
/// message of 64 KiB (and its input, which the test builds, of ~200 KiB).
const CASE_HEAP: isize = 4 << 20;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut inputs = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        inputs.extend(files.iter().filter_map(|f| std::fs::read(f).ok()));
    }
    assert!(!inputs.is_empty(), "no seeds for {target}");
    inputs
}

/// A random change to `input`: flip, insert, delete, splice or truncate.
fn mutate(input: &[u8], rng: &mut Rng, others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() as u64 + 1) as usize;
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 => out.insert(at, rng.next() as u8),
            2 if at < out.len() => {
                out.remove(at);
            }
            3 => {
                let other = &others[rng.below(others.len() as u64) as usize];
                let from = rng.below(other.len() as u64 + 1) as usize;
                out.splice(at..at, other[from..].iter().copied().take(64));
            }
            4 => out.truncate(at),
            _ => out.insert(at, b"\r\n{}\":[]0 /."[rng.below(12) as usize]),
        }
    }
    out
}

fn run(target: &str, cases: usize, property: fn(&[u8])) {
    let seeds = corpus(target);
    let mut rng = Rng::new(0x5EED ^ target.len() as u64);
    let check = |input: &[u8]| {
        let before = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(before));
        property(input);
        let used = PEAK.with(Cell::get) - before;
        assert!(used < CASE_HEAP, "{target}: one case took {used} bytes");
    };
    for seed in &seeds {
        check(seed);
    }
    for _ in 0..cases {
        let base = &seeds[rng.below(seeds.len() as u64) as usize];
        let input = if rng.below(10) == 0 {
            (0..rng.below(300)).map(|_| rng.next() as u8).collect()
        } else {
            mutate(base, &mut rng, &seeds)
        };
        check(&input);
    }
}

#[test]
fn fuzz_head() {
    run("head", 20_000, fuzz_props::head);
}

#[test]
fn fuzz_names() {
    run("names", 20_000, fuzz_props::names);
}

#[test]
fn fuzz_hub_decode() {
    run("hub_decode", 20_000, fuzz_props::hub_decode);
}

#[test]
fn fuzz_frames() {
    run("frames", 3_000, fuzz_props::frames);
}
