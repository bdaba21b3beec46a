// End-to-end test of the demo page (www/) in headless Chromium, driven by
// Playwright: `node e2e.mjs BASE_URL PROMPT SEED GPU_STEPS CPU_STEPS`. BASE_URL
// serves www/, web/pkg/, models/ and frames-N/ (the native `kinema generate
// --frames-dir` PNGs for the same prompt and seed in N steps). For WebGPU
// (SwiftShader, GPU_STEPS) and for the wasm CPU delegate (WebGPU off,
// CPU_STEPS) it types the prompt, generates, and checks
// that the page's frames equal the native ones (CPU: within 1/255 — the same
// arithmetic; WebGPU: within 8/255, SwiftShader sums in other orders) and that
// the canvas shows the video; it saves a screenshot of each run to $OUT_DIR.
import { chromium } from "playwright-core";

const [base, prompt, seed, gpuSteps, cpuSteps] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM ?? "/usr/lib/chromium/chromium";
const COMMON = ["--headless=new", "--no-sandbox", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic"];
const WEBGPU = ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-unsafe-swiftshader"];
const outDir = process.env.OUT_DIR ?? ".";

function fail(msg) {
  console.error(`e2e: FAIL: ${msg}`);
  process.exit(1);
}

// The CPU delegate twice: on every thread the page may use, and on one
// (`?threads=1`, the single-threaded build a page without cross-origin isolation gets).
const runs = [["gpu", WEBGPU, 8, gpuSteps, ""], ["cpu", [], 1, cpuSteps, ""], ["cpu", [], 1, cpuSteps, "?threads=1"]];
for (const [mode, flags, tolerance, steps, query] of runs) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...COMMON, ...flags] });
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${base}www/index.html${query}`);
  await page.waitForSelector("#go:not([disabled])", { timeout: 120_000 });
  // "auto" takes the CPU over a software GPU (SwiftShader): ask for the delegate.
  await page.selectOption("#device", mode);
  await page.fill("#prompt", prompt);
  await page.fill("#steps", steps);
  await page.fill("#seed", seed);
  const t0 = Date.now();
  await page.click("#go");
  await page.waitForFunction(() => window.kinemaLast || document.querySelector(".error"), null,
    { timeout: 600_000, polling: 250 });
  const err = await page.$eval("#log", (el) => el.querySelector(".error")?.textContent ?? null);
  if (err) fail(`${mode}: ${err}`);
  const seconds = (Date.now() - t0) / 1000;
  const status = await page.textContent("#status");
  if (!status.includes(`on ${mode}`)) fail(`${mode}: the page says "${status}"`);
  // The native frames, decoded by the browser itself.
  const result = await page.evaluate(async (steps) => {
    const video = window.kinemaLast;
    let max = 0;
    for (let f = 0; f < video.frames.length; f++) {
      const img = new Image();
      img.src = `../frames-${steps}/frame_${String(f).padStart(3, "0")}.png`;
      await img.decode();
      const c = new OffscreenCanvas(img.width, img.height);
      const ctx = c.getContext("2d");
      ctx.drawImage(img, 0, 0);
      const want = ctx.getImageData(0, 0, img.width, img.height).data;
      const got = video.frames[f];
      if (got.length !== want.length) return { error: `frame ${f}: ${got.length} vs ${want.length} values` };
      for (let i = 0; i < got.length; i++) max = Math.max(max, Math.abs(got[i] - want[i]));
    }
    // The canvas shows a frame of the video: not one flat colour.
    const canvas = document.getElementById("canvas");
    const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let distinct = new Set();
    for (let i = 0; i < px.length; i += 4) distinct.add(`${px[i]},${px[i + 1]},${px[i + 2]}`);
    return { frames: video.frames.length, max, distinct: distinct.size };
  }, steps);
  if (result.error) fail(`${mode}: ${result.error}`);
  // With the threaded build staged (run.sh says how many threads to expect),
  // the CPU delegate ran on that many: the frames above came from the workers.
  const threads = query ? "1" : process.env.KINEMA_E2E_THREADS;
  if (mode === "cpu" && threads) {
    const text = await page.textContent("#log");
    const want = threads === "1" ? "(1 CPU thread)" : `(${threads} CPU threads)`;
    if (!text.includes(want)) fail(`cpu: expected ${want}; the log says: ${text}`);
  }
  // The clip as MP4 and WebM (WebCodecs): each link appears with a file of its format.
  for (const [id, magic, at] of [["mp4", "ftyp", 4], ["webm", "\x1aE\xdf\xa3", 0]]) {
    await page.waitForSelector(`#${id}:not([hidden])`, { timeout: 60_000 });
    const head = await page.evaluate(async ([id, n]) => {
      const bytes = new Uint8Array(await (await fetch(document.getElementById(id).href)).arrayBuffer());
      return [bytes.length, String.fromCharCode(...bytes.slice(0, n))];
    }, [id, at + magic.length]);
    if (head[1].slice(at) !== magic) fail(`${mode}: the ${id} file starts ${JSON.stringify(head[1])}`);
    console.log(`e2e: ${mode}: ${id} download, ${head[0]} bytes`);
  }
  const label = `${mode}${query ? " (1 thread)" : ""}`;
  await page.locator("#canvas").screenshot({ path: `${outDir}/e2e-${mode}${query ? "-1" : ""}.png` });
  console.log(`e2e: ${label}: "${prompt}", ${steps} steps in ${seconds.toFixed(1)} s; ${result.frames} frames, ` +
    `max difference from native ${result.max}/255, ${result.distinct} colours on the canvas`);
  if (result.max > tolerance) fail(`${mode}: frames differ from native by ${result.max}/255 (> ${tolerance})`);
  if (result.distinct < 2) fail(`${mode}: the canvas is blank`);
  if (errors.length) fail(`${mode}: page errors: ${errors.join("; ")}`);
  await browser.close();
}
console.log("e2e: passed");
