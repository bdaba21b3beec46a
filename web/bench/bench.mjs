// Runs www/bench.html in headless Chromium (WebGPU on SwiftShader, and the wasm
// CPU delegate) and prints its JSON rows: `node bench.mjs BASE_URL`, where
// BASE_URL serves www/ and web/pkg/ (web/e2e/run.sh's staging does; or
// `npx http-server -p 8000 .` from the repository root).
import { chromium } from "playwright-core";

const base = process.argv[2];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/lib/chromium/chromium",
  args: ["--headless=new", "--no-sandbox", "--no-first-run", "--enable-unsafe-webgpu",
    "--use-webgpu-adapter=swiftshader", "--enable-unsafe-swiftshader"],
});
const page = await browser.newPage();
await page.goto(`${base}www/bench.html`);
await page.waitForFunction(() => window.kinemaBench, null, { timeout: 900_000, polling: 500 });
console.log(JSON.stringify(await page.evaluate(() => window.kinemaBench)));
await browser.close();
