// A/B of two Kinema builds in one headless Chromium: `node ab.mjs BASE_URL
// [rounds] [threads]`, where BASE_URL serves a/www + a/web/pkg (build A) and
// b/www + b/web/pkg (build B); web/bench/ab.sh stages them. The wasm CPU rows
// of www/bench.html, A and B interleaved `rounds` times; each row keeps its best
// round (the machine is shared) and every round is printed to stderr.
import { chromium } from "playwright-core";

const [base, rounds, threads] = [process.argv[2], Number(process.argv[3] ?? 3), process.argv[4] ?? "1"];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/lib/chromium/chromium",
  args: ["--headless=new", "--no-sandbox", "--no-first-run"],
});
const best = {};
for (let round = 0; round < rounds; round++) {
  for (const build of ["a", "b"]) {
    const page = await browser.newPage();
    page.on("pageerror", (err) => console.error(`${build}: ${err.message}`));
    await page.goto(`${base}${build}/www/bench.html?device=cpu&threads=${threads}`);
    await page.waitForFunction(() => window.kinemaBench, null, { timeout: 600_000, polling: 500 });
    for (const row of await page.evaluate(() => window.kinemaBench)) {
      if (row.error) throw new Error(`${build}: ${row.error}`);
      console.error(`round ${round} ${build} ${row.workload.padEnd(10)} ${row.gflops.toFixed(2)} GFLOP/s`);
      const key = `${row.workload} ${build}`;
      best[key] = Math.max(best[key] ?? 0, row.gflops);
    }
    await page.close();
  }
}
await browser.close();
console.log(`best of ${rounds} rounds, ${threads} thread(s), GFLOP/s:`);
for (const w of ["matmul", "conv3d", "attention"]) {
  const [a, b] = [best[`${w} a`], best[`${w} b`]];
  console.log(`${w.padEnd(10)} A ${a.toFixed(2).padStart(6)}  B ${b.toFixed(2).padStart(6)}  B/A ${(b / a).toFixed(3)}`);
}
