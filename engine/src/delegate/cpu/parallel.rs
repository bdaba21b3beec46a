//! Work spread over the cores with scoped threads (one thread in the browser,
//! where wasm32 has no threads without cross-origin isolation).

/// Below this many multiply-adds an op runs on the calling thread.
const PARALLEL_MIN_MACS: f64 = (1 << 20) as f64;

/// Threads worth using for an op of `macs` multiply-adds on this machine.
pub fn threads_for(macs: f64) -> usize {
    if cfg!(target_arch = "wasm32") || macs < PARALLEL_MIN_MACS {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Deals `items` round-robin into `threads` shares and runs `f` on each share,
/// one scoped thread per share (on the calling thread when `threads <= 1`).
pub fn for_each_share<T: Send>(items: Vec<T>, threads: usize, f: impl Fn(Vec<T>) + Sync) {
    if threads <= 1 || items.len() <= 1 {
        return f(items);
    }
    let mut shares: Vec<Vec<T>> = (0..threads.min(items.len())).map(|_| Vec::new()).collect();
    let n = shares.len();
    for (i, item) in items.into_iter().enumerate() {
        shares[i % n].push(item);
    }
    let f = &f;
    std::thread::scope(|s| {
        for share in shares {
            s.spawn(move || f(share));
        }
    });
}
