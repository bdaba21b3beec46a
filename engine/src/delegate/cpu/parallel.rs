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

    /// `work` on the calling thread and on `n − 1` of the pool's.
    pub(super) fn run(n: usize, work: &(impl Fn() + Sync)) {
        rayon::in_place_scope(|s| {
            for _ in 1..n {
                s.spawn(move |_| work());
            }
            work();
        });
    }
}

/// An op's output, shared by the threads of [`for_each_share`] whose items
/// each write a part of it that no other item touches.
#[derive(Clone, Copy)]
pub struct OutPtr(pub *mut f32);

// SAFETY: the pointer is only written through where a caller's items are
// disjoint (each use says why).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Element `i` of the output.
    ///
    /// # Safety
    /// `i` must be inside the output.
    pub unsafe fn at(self, i: usize) -> *mut f32 {
        // SAFETY: as the caller promises.
        unsafe { self.0.add(i) }
    }
}

/// A thread's share of the items of [`for_each_share`]: iterating claims the
/// next item no thread has claimed yet, in order.
pub struct Share<'a, T> {
    queue: &'a std::sync::Mutex<std::vec::IntoIter<T>>,
}

impl<T> Iterator for Share<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        // A share whose thread panicked left the queue as it was: keep dealing.
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).next()
    }
}

/// Runs `f` on `threads` threads at once (the calling one among them; only it
/// when `threads <= 1`), each handed a [`Share`] of `items`. Items are claimed
/// as threads come free, not dealt ahead, so a thread on a faster or less busy
/// core — a performance core, a vCPU the host leaves alone — takes more of
/// them; callers cut work into a few items per thread for that to balance.
pub fn for_each_share<T: Send>(items: Vec<T>, threads: usize, f: impl Fn(Share<'_, T>) + Sync) {
    let n = threads.clamp(1, items.len().max(1));
    let queue = std::sync::Mutex::new(items.into_iter());
    let work = || f(Share { queue: &queue });
    if n == 1 {
        return work();
    }
    #[cfg(all(target_arch = "wasm32", feature = "threads"))]
    pool::run(n, &work);
    #[cfg(not(all(target_arch = "wasm32", feature = "threads")))]
    std::thread::scope(|s| {
        for _ in 1..n {
            s.spawn(work);
        }
        work();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item is handed to exactly one share, on any number of threads,
    /// and a thread kept busy leaves its items to the others.
    #[test]
    fn shares_claim_every_item_once() {
        for (items, threads) in [(0, 3), (1, 4), (7, 1), (10, 2), (64, 3), (5, 8)] {
            let seen: Vec<std::sync::atomic::AtomicUsize> = (0..items).map(|_| Default::default()).collect();
            let shares = std::sync::atomic::AtomicUsize::new(0);
            for_each_share((0..items).collect(), threads, |share| {
                shares.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                for i in share {
                    seen[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
            assert!(seen.iter().all(|n| n.load(std::sync::atomic::Ordering::Relaxed) == 1), "{items} on {threads}");
            assert_eq!(shares.into_inner(), threads.clamp(1, items.max(1)), "{items} on {threads}");
        }
        // The share that claims item 0 holds it until the other has claimed
        // all the rest (or ten seconds pass).
        let (took, others) = (std::sync::Mutex::new(Vec::new()), std::sync::atomic::AtomicUsize::new(0));
        for_each_share((0..20).collect::<Vec<usize>>(), 2, |share| {
            let mut mine = Vec::new();
            for i in share {
                if i == 0 {
                    let t0 = std::time::Instant::now();
                    while others.load(std::sync::atomic::Ordering::Acquire) < 19 && t0.elapsed().as_secs() < 10 {
                        std::thread::yield_now();
                    }
                } else {
                    others.fetch_add(1, std::sync::atomic::Ordering::Release);
                }
                mine.push(i);
            }
            took.lock().unwrap().push(mine);
        });
        let took = took.into_inner().unwrap();
        assert!(took.iter().any(|mine| mine == &[0]), "{took:?}");
    }
}
