// The npm package in a fresh Vite app (vite-app/, built by run.sh from the
// `npm pack` tarball), in headless Chromium: `node vite.mjs BASE_URL PROMPT
// SEED STEPS THREADS`. BASE_URL serves the app's dist/ with models/wan-shapes
// and frames-STEPS/ (the native CLI's frames) beside it. On one thread and, when
// THREADS > 1, on the threaded build, the app generates on the CPU delegate
// and its frames must equal the native ones within 1/255; then the same in a
// module worker (kinema/worker), with an abort in the middle; and a worker on
// WebGPU (SwiftShader) whose dispose() gives its GPU memory back.
import { chromium } from "playwright-core";

const [base, prompt, seed, steps, threads] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM ?? "/usr/lib/chromium/chromium";
const ARGS = ["--headless=new", "--no-sandbox", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic",
  "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-unsafe-swiftshader"];

function fail(msg) {
  console.error(`vite: FAIL: ${msg}`);
  process.exit(1);
}

const runs = Number(threads) > 1 ? ["1", threads] : ["1"];
for (const n of runs) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const query = new URLSearchParams({ threads: n, prompt, steps, seed });
  const t0 = Date.now();
  await page.goto(`${base}index.html?${query}`);
  await page.waitForFunction(() => window.kinemaResult, null, { timeout: 600_000, polling: 250 });
  const result = await page.evaluate(async (steps) => {
    const r = window.kinemaResult;
    if (r.error) return r;
    let max = 0;
    for (let f = 0; f < r.frames.length; f++) {
      const img = new Image();
      img.src = `frames-${steps}/frame_${String(f).padStart(3, "0")}.png`;
      await img.decode();
      const c = new OffscreenCanvas(img.width, img.height);
      const ctx = c.getContext("2d");
      ctx.drawImage(img, 0, 0);
      const want = ctx.getImageData(0, 0, img.width, img.height).data;
      const got = r.frames[f];
      if (got.length !== want.length) return { error: `frame ${f}: ${got.length} vs ${want.length} values` };
      for (let i = 0; i < got.length; i++) max = Math.max(max, Math.abs(got[i] - want[i]));
    }
    return { ...r, frames: r.frames.length, max };
  }, steps);
  if (result.error) fail(`${n} thread(s): ${result.error}`);
  const seconds = (Date.now() - t0) / 1000;
  console.log(`vite: ${n} thread(s) asked, ${result.threads} ran: ${result.frames} frames ${result.width}×${result.height} ` +
    `in ${seconds.toFixed(1)} s, max difference from native ${result.max}/255, GIF ${result.gifBytes} bytes`);
  if (String(result.threads) !== n) fail(`${n} thread(s) asked for, ${result.threads} ran`);
  if (result.frames < 1 || result.max > 1) fail(`frames differ from native by ${result.max}/255`);
  if (result.gifHeader !== "GIF89a" || !result.sameGif) fail(`gif: ${result.gifHeader}, same module ${result.sameGif}`);
  if (result.device !== "cpu") fail(`the plain entry point opened ${result.device}`);
  for (const [format, f] of Object.entries(result.files)) {
    if (f.skipped) {
      console.log(`vite: ${format} export skipped: ${f.skipped}`);
      continue;
    }
    console.log(`vite: ${format} export: ${f.codec}, ${f.bytes} bytes (${f.type}), decoded back to ${f.frames} frames, ` +
      `mean difference ${f.mean.toFixed(2)}/255`);
    if (f.frames !== result.frames || !(f.mean <= 12)) fail(`${format}: ${f.frames} frames, mean difference ${f.mean}`);
  }
  const w = result.worker;
  console.log(`vite: in a worker (${w.threads} thread(s)): same frames ${w.same}, again after the abort ${w.again}; ` +
    `aborted at step 3, stopped after step ${w.seen} ("${w.error}") in ${w.abortMs.toFixed(0)} ms while the page ` +
    `painted ${w.painted} frames; its wasm memory ${(w.wasmBytes / 2 ** 20).toFixed(1)} MiB`);
  if (!w.same || !w.again) fail("the worker's frames differ from the page's");
  if (!String(w.error).includes("cancelled") || w.seen > 4) fail(`the abort: ${w.error} after step ${w.seen}`);
  if (w.painted < 2) fail(`the page did not paint while the worker ran (${w.painted} frames)`);
  if (String(w.threads) !== n) fail(`the worker runs ${w.threads} thread(s), ${n} asked`);
  const g = w.gpu;
  if (g.error) fail(`the worker on WebGPU: ${g.error}`);
  console.log(`vite: a worker on WebGPU: gpuBytes ${g.before} before, ${g.during} after a generation, ` +
    `${g.after} after dispose()`);
  if (!(g.during > g.before + 4e6) || g.after > g.before) fail(`the worker's GPU memory: ${JSON.stringify(g)}`);
  if (errors.length) fail(`page errors: ${errors.join("; ")}`);
  await browser.close();
}
console.log("vite: passed");
