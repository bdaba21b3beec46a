// Kinema's browser benchmark side by side with onnxruntime-web, in one headless
// Chromium (WebGPU on SwiftShader): `node bench.mjs BASE_URL [--json]`, where
// BASE_URL serves www/, web/pkg/ and ort/ (web/bench/run.sh stages them).
// Pages run one after another, never together; every row is measured now.
// Flags: --json, --cpu (wasm rows only), --1t (one thread only), --rounds N,
// --tune (Kinema's WebGPU matmul and conv3d with every candidate tiling, alone).
import { chromium } from "playwright-core";

const base = process.argv[2];
const json = process.argv.includes("--json");
// --cpu: the wasm rows only (1 and 2 threads, Kinema and ORT-Web); --1t: one thread only.
const cpuOnly = process.argv.includes("--cpu") || process.argv.includes("--1t");
const oneThread = process.argv.includes("--1t");
// --rounds N: the pages N times over, interleaved; each row keeps its best round
// (the machine is shared: one slow moment should not decide a ratio).
const roundsAt = process.argv.indexOf("--rounds");
const rounds = roundsAt > 0 ? Math.max(1, Number(process.argv[roundsAt + 1]) || 1) : 1;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/lib/chromium/chromium",
  args: ["--headless=new", "--no-sandbox", "--no-first-run", "--enable-unsafe-webgpu",
    "--use-webgpu-adapter=swiftshader", "--enable-unsafe-swiftshader"],
});

async function rowsOf(path, global) {
  const page = await browser.newPage();
  page.on("pageerror", (err) => console.error(`${path}: ${err.message}`));
  await page.goto(`${base}${path}`);
  await page.waitForFunction((g) => window[g], global, { timeout: 1_800_000, polling: 500 });
  const rows = await page.evaluate((g) => window[g], global);
  await page.close();
  return rows;
}

const tune = process.argv.includes("--tune");
const pages = tune ? [["www/bench.html?device=gpu&tune=1", "kinemaBench"]] : [
  ["www/bench.html?device=cpu&threads=1", "kinemaBench"],
  ["ort/index.html?ep=wasm&threads=1", "peerBench"],
  ...(oneThread ? [] : [
    ["www/bench.html?device=cpu&threads=2", "kinemaBench"],
    ["ort/index.html?ep=wasm&threads=2", "peerBench"],
  ]),
  ...(cpuOnly ? [] : [
    ["www/bench.html?device=gpu", "kinemaBench"],
    ["ort/index.html?ep=webgpu", "peerBench"],
  ]),
];
const rows = [];
for (let round = 0; round < rounds; round++) {
  for (const [path, global] of pages) {
    for (const r of await rowsOf(path, global)) {
      const i = rows.findIndex((o) => o.workload === r.workload && o.device === r.device && o.adapter === r.adapter);
      if (i < 0) rows.push(r);
      else if (!r.error && (rows[i].error || r.ms_min < rows[i].ms_min)) rows[i] = r;
    }
  }
}
await browser.close();

if (json) {
  console.log(JSON.stringify(rows));
} else {
  const gflops = (device, workload) => rows.find((r) => r.device === device && r.workload === workload)?.gflops;
  for (const r of rows) {
    const what = r.error ? `error: ${r.error}` : `min ${r.ms_min.toFixed(1).padStart(9)} ms  ${r.gflops.toFixed(2).padStart(7)} GFLOP/s`;
    console.log(`${(r.workload ?? "").padEnd(10)} ${(tune ? r.adapter : r.device).padEnd(28)} ${what}`);
  }
  if (tune) process.exit(0);
  console.log("\nratios (Kinema / peer, GFLOP/s at the min time):");
  for (const workload of ["matmul", "conv3d", "attention"]) {
    // Kinema's rows are named after the delegate: "cpu-1t", "cpu-2t" (wasm) and "gpu".
    const cpu1 = gflops("cpu-1t", workload);
    const cpu2 = gflops("cpu-2t", workload);
    const gpu = gflops("gpu", workload);
    const w1 = gflops("onnxruntime-web-wasm-1t", workload);
    const w2 = gflops("onnxruntime-web-wasm-2t", workload);
    const wg = gflops("onnxruntime-web-webgpu", workload);
    const r = (a, b) => (a && b ? (a / b).toFixed(2) : "—");
    console.log(`${workload.padEnd(10)} wasm 1t vs ORT wasm 1t ${r(cpu1, w1)}, 2t vs 2t ${r(cpu2, w2)}; WebGPU vs ORT WebGPU ${r(gpu, wg)}`);
  }
}
