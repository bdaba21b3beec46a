//! A monotonic clock on both targets: `std::time::Instant` natively (which
//! panics in `wasm32-unknown-unknown`), `performance.now()` in the browser
//! (a page or a worker; `Date.now()` where neither has it).

/// Seconds since an arbitrary origin fixed for the process (or page).
#[cfg(not(target_arch = "wasm32"))]
pub fn seconds() -> f64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(std::time::Instant::now).elapsed().as_secs_f64()
}

/// Seconds since an arbitrary origin fixed for the process (or page).
#[cfg(target_arch = "wasm32")]
pub fn seconds() -> f64 {
    use wasm_bindgen::JsCast;
    let ms = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .and_then(|p| js_sys::Reflect::get(&p, &"now".into()).ok().map(|f| (p, f)))
        .and_then(|(p, f)| f.dyn_into::<js_sys::Function>().ok()?.call0(&p).ok()?.as_f64())
        .unwrap_or_else(js_sys::Date::now);
    ms / 1e3
}

/// Lets the browser's event loop run (a macrotask: `setTimeout(0)`), so
/// messages and events queued behind a long computation — a worker's
/// `abort` — are handled; natively nothing. The denoising loop calls it
/// between steps.
pub async fn yield_now() {
    #[cfg(target_arch = "wasm32")]
    {
        use wasm_bindgen::JsCast;
        let global = js_sys::global();
        let Ok(set_timeout) = js_sys::Reflect::get(&global, &"setTimeout".into()) else { return };
        let Ok(set_timeout) = set_timeout.dyn_into::<js_sys::Function>() else { return };
        let wait = js_sys::Promise::new(&mut |resolve, _| {
            let _ = set_timeout.call2(&global, &resolve, &0.into());
        });
        let _ = wasm_bindgen_futures::JsFuture::from(wait).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_moves_forward() {
        let t0 = super::seconds();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let dt = super::seconds() - t0;
        assert!((0.019..1.0).contains(&dt), "{dt}");
    }
}
