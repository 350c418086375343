//! Timing a path against the raw crypto it cannot avoid, in the same process, for the
//! ratios the benchmarks print. Shared by `tollgate-crypto`'s and `tollgate-server`'s
//! benches (included with `#[path]`; a subdirectory, so Cargo does not take it for a bench).

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Total time each side of a pair is measured for.
pub const RATIO_TIME: Duration = Duration::from_secs(1);
/// Alternating slices per pair; each side keeps its fastest slice.
pub const RATIO_SLICES: u32 = 10;

/// Mean time of one `op` over about `budget` on this thread.
pub fn time_per_op<T>(budget: Duration, op: &mut impl FnMut() -> T) -> Duration {
    // Reading the clock after every call would add its own cost to the fastest operations.
    const BATCH: u32 = 16;
    let started = Instant::now();
    let mut batches = 0u32;
    while batches == 0 || started.elapsed() < budget {
        for _ in 0..BATCH {
            black_box(op());
        }
        batches += 1;
    }
    started.elapsed() / (batches * BATCH)
}

/// Times `path` and `raw` in alternating slices, [`RATIO_TIME`] each in all, and keeps each
/// one's fastest slice: both then meet the same machine, and a busy moment (other processes
/// share these cores) does not land on one side only.
pub fn time_pair<T, R>(mut path: impl FnMut() -> T, mut raw: impl FnMut() -> R) -> (Duration, Duration) {
    let slice = RATIO_TIME / RATIO_SLICES;
    // Warm-up: caches, branch predictors, CPU frequency.
    time_per_op(slice, &mut path);
    time_per_op(slice, &mut raw);
    let (mut best_path, mut best_raw) = (Duration::MAX, Duration::MAX);
    for _ in 0..RATIO_SLICES {
        best_path = best_path.min(time_per_op(slice, &mut path));
        best_raw = best_raw.min(time_per_op(slice, &mut raw));
    }
    (best_path, best_raw)
}
