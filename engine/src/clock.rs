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
