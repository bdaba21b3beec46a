//! Work spread over the cores: scoped threads natively; in the browser, a
//! rayon pool of Web Workers sharing the wasm memory when the page is built
//! with the `threads` feature and [`init_pool`] has run (one thread otherwise:
//! wasm32 has no threads without cross-origin isolation).

/// Below this many multiply-adds an op runs on the calling thread.
const PARALLEL_MIN_MACS: f64 = (1 << 20) as f64;

/// Threads worth using for an op of `macs` multiply-adds on this machine.
pub fn threads_for(macs: f64) -> usize {
    if macs < PARALLEL_MIN_MACS {
        return 1;
    }
    threads()
}

/// The threads the CPU delegate spreads work over: `KINEMA_THREADS` when set
/// to a number from 1 to 1024 (benchmarks against a peer on the same threads),
/// else every core.
#[cfg(not(target_arch = "wasm32"))]
pub fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        let set = std::env::var("KINEMA_THREADS").ok().and_then(|v| v.parse::<usize>().ok());
        set.filter(|n| (1..=1024).contains(n))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// The threads the CPU delegate spreads work over: the pool's, once started.
#[cfg(target_arch = "wasm32")]
pub fn threads() -> usize {
    #[cfg(feature = "threads")]
    {
        pool::THREADS.load(std::sync::atomic::Ordering::Relaxed).max(1)
    }
    #[cfg(not(feature = "threads"))]
    {
        1
    }
}

#[cfg(all(target_arch = "wasm32", feature = "threads"))]
pub use pool::init_pool;

#[cfg(all(target_arch = "wasm32", feature = "threads"))]
mod pool {
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Threads of the started pool (0: none started).
    pub(super) static THREADS: AtomicUsize = AtomicUsize::new(0);

    /// Lets the CPU delegate use `n` threads: the calling one and `n − 1`
    /// Web Workers sharing this module's memory (once; later calls return the
    /// first pool's size). The page must be cross-origin isolated
    /// (SharedArrayBuffer). The calling thread works a share itself, then waits
    /// for the workers by spinning (rayon's `web_spin_lock`), so the browser's
    /// main thread may call the delegate.
    pub async fn init_pool(n: usize) -> crate::Result<usize> {
        if let Some(running) = std::num::NonZeroUsize::new(THREADS.load(Ordering::Relaxed)) {
            return Ok(running.get());
        }
        let n = n.clamp(1, 64);
        if n > 1 {
            wasm_bindgen_futures::JsFuture::from(wasm_bindgen_rayon::init_thread_pool(n - 1))
                .await
                .map_err(|e| crate::Error::Invalid(format!("starting {} worker threads: {e:?}", n - 1)))?;
        }
        THREADS.store(n, Ordering::Relaxed);
        Ok(n)
    }

    /// The first share on the calling thread, the others on the pool.
    pub(super) fn run<T: Send>(shares: Vec<Vec<T>>, f: &(impl Fn(Vec<T>) + Sync)) {
        let mut shares = shares.into_iter();
        let first = shares.next();
        rayon::in_place_scope(|s| {
            for share in shares {
                s.spawn(move |_| f(share));
            }
            if let Some(share) = first {
                f(share);
            }
        });
    }
}

/// Deals `items` round-robin into `threads` shares and runs `f` on each share,
/// one thread per share (on the calling thread when `threads <= 1`).
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
    #[cfg(all(target_arch = "wasm32", feature = "threads"))]
    pool::run(shares, f);
    #[cfg(not(all(target_arch = "wasm32", feature = "threads")))]
    std::thread::scope(|s| {
        for share in shares {
            s.spawn(move || f(share));
        }
    });
}
