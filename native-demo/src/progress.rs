//! The command line's progress bars, on one `MultiProgress` on stderr so that a
//! download that happens inside a stage and the stage's own bar share the
//! terminal; and the pipeline folders they watch.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use kinema_engine::Result;
use kinema_engine::diffusion::Folder;
use kinema_engine::weights::{HttpClient, Progress};

fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(MultiProgress::new)
}

/// A bar of `len` units drawn with `template` (indicatif's syntax).
pub fn bar(len: u64, template: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(template).expect("a valid template");
    multi().add(ProgressBar::new(len).with_style(style))
}

/// A spinner with `message` and the time since it started.
pub fn spinner(message: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("kinema: {msg} {spinner} {elapsed_precise}").expect("a valid template");
    let s = multi().add(ProgressBar::new_spinner().with_style(style).with_message(message.to_string()));
    s.enable_steady_tick(Duration::from_millis(120));
    s
}

/// A pipeline folder: a path, or an http(s) URL whose files are kept whole in
/// the user's cache ([`HttpClient::user_cache_dir`]; downloaded once, resumed
/// if interrupted, a second run asks the server nothing), with a bar in bytes
/// across every file whenever bytes are coming over the network.
pub fn folder(location: &str) -> Result<Folder> {
    if !(location.starts_with("http://") || location.starts_with("https://")) {
        return Folder::at(location);
    }
    let mut client = HttpClient::default();
    if let Some(dir) = HttpClient::user_cache_dir() {
        client = client.with_disk_cache(dir);
    }
    let current: Mutex<Option<ProgressBar>> = Mutex::new(None);
    let progress = Progress::new(Box::new(move |loaded, total| {
        let mut current = current.lock().unwrap_or_else(|e| e.into_inner());
        if loaded < total {
            let b = current.get_or_insert_with(|| {
                bar(total, "kinema: downloading {bar:30} {bytes}/{total_bytes} {bytes_per_sec} (eta {eta})")
            });
            b.set_length(total);
            b.set_position(loaded);
        } else if let Some(b) = current.take() {
            b.finish_and_clear();
        }
    }));
    Folder::at_with(location, client.with_progress(progress))
}
