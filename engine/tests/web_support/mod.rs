//! What the browser tests share (engine/tests/web_*.rs and web/tests/*.rs,
//! the latter by `#[path]`): where the fixture server is, and whole-tensor reads.
#![allow(dead_code)] // each test file uses what it needs

use kinema_engine::weights::Checkpoint;
use wasm_bindgen::{JsCast, JsValue};

/// The fixture server's base URL, compiled in (scripts/test.sh sets it).
pub fn base() -> &'static str {
    match option_env!("KINEMA_FIXTURES_URL") {
        Some(url) => url,
        None => panic!("build with KINEMA_FIXTURES_URL set to the fixture server (scripts/test.sh does)"),
    }
}

/// A whole tensor as f32.
pub async fn read_all(ckpt: &Checkpoint, name: &str) -> Vec<f32> {
    let mut v = vec![0f32; ckpt.get(name).unwrap().info.numel() as usize];
    ckpt.read_f32(name, &mut v).await.unwrap();
    v
}

/// The tensors `names` of the checkpoint at `url` as an object of
/// `name: Float32Array` (a program's inputs for `kinema.run`).
pub async fn inputs_at(url: &str, names: &[&str]) -> js_sys::Object {
    let held = Checkpoint::open(url).await.unwrap();
    let inputs = js_sys::Object::new();
    for name in names {
        let v = read_all(&held, name).await;
        js_sys::Reflect::set(&inputs, &JsValue::from_str(name), &js_sys::Float32Array::from(&v[..])).unwrap();
    }
    inputs
}

/// A JS options object of `pairs`.
pub fn options(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = js_sys::Object::new();
    for (k, v) in pairs {
        js_sys::Reflect::set(&o, &JsValue::from_str(k), v).unwrap();
    }
    o.into()
}

/// The message of the JS `Error` a call returned.
pub fn message(e: wasm_bindgen::JsError) -> String {
    let v: JsValue = e.into();
    v.dyn_into::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_default()
}
