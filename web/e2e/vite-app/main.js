// A web app as its developers write one: every import path the package's
// README documents, bundled by Vite. `?threads=N&prompt=…&steps=…&seed=…`:
// loadKinema's build, and what to generate;
// the result (or the error) lands in window.kinemaResult for web/e2e/vite.mjs.
import init, { Kinema } from "kinema";
import { encodeGif } from "kinema/gif.js";
import { encodeGif as encodeGifBare } from "kinema/gif";
import { loadKinema } from "kinema/load";
import { KinemaWorker } from "kinema/worker";

const params = new URLSearchParams(location.search);
const status = document.querySelector("#status");

async function main() {
  const threads = Number(params.get("threads") ?? "1");
  const pkg = await loadKinema({ threads });
  const kinema = await pkg.Kinema.create({ device: "cpu" });
  // A relative URL, resolved against the page as fetch resolves it.
  const pipeline = await kinema.loadPipeline("models/wan-shapes", { cache: false });
  const [prompt, steps, seed] = [params.get("prompt"), Number(params.get("steps")), Number(params.get("seed"))];
  const video = await pipeline.generate({ prompt, steps, seed });
  const gif = encodeGif(video);
  // The plain entry point works too (a second instance of the module).
  await init();
  const plain = await Kinema.create({ device: "cpu" });
  const worker = await inWorker(threads, { prompt, steps, seed }, video);
  return {
    threads: pkg.threads(),
    device: plain.device,
    width: video.width,
    height: video.height,
    frames: video.frames.map((f) => Array.from(f)),
    gifBytes: gif.size,
    gifHeader: new TextDecoder().decode(new Uint8Array(await gif.slice(0, 6).arrayBuffer())),
    sameGif: encodeGifBare === encodeGif,
    worker,
  };
}

// The same in a module worker: the same frames; an abort rejects within one
// step of it while the page keeps painting; a generation after it works;
// dispose and stats answer.
async function inWorker(threads, request, video) {
  const same = (a, b) => a.frames.length === b.frames.length &&
    a.frames.every((f, i) => f.length === b.frames[i].length && f.every((v, j) => v === b.frames[i][j]));
  const kinema = await KinemaWorker.create({ device: "cpu", threads });
  const pipeline = await kinema.loadPipeline("models/wan-shapes", { cache: false });
  const first = await pipeline.generate(request);
  let painted = 0;
  let painting = true;
  const paint = () => { painted++; if (painting) requestAnimationFrame(paint); };
  requestAnimationFrame(paint);
  const controller = new AbortController();
  let seen = 0;
  let error = null;
  const t0 = performance.now();
  try {
    await pipeline.generate({
      ...request, steps: 40,
      onStep: (done) => { seen = done; if (done === 3) controller.abort(); },
      signal: controller.signal,
    });
  } catch (err) {
    error = err.message;
  }
  const abortMs = performance.now() - t0;
  painting = false;
  const again = await pipeline.generate(request);
  await pipeline.dispose();
  const stats = await kinema.stats();
  kinema.terminate();
  return {
    threads: kinema.threads, same: same(first, video), again: same(again, video), error, seen, painted,
    abortMs, wasmBytes: stats.wasmBytes,
  };
}

main().then(
  (result) => { window.kinemaResult = result; status.textContent = "done"; },
  (err) => { window.kinemaResult = { error: String(err?.message ?? err) }; status.textContent = "failed"; },
);
