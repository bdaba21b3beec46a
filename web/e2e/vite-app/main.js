// A web app as its developers write one: every import path the package's
// README documents, bundled by Vite. `?threads=N&prompt=…&steps=…&seed=…`:
// loadKinema's build, and what to generate;
// the result (or the error) lands in window.kinemaResult for web/e2e/vite.mjs.
import init, { Kinema } from "kinema";
import { encodeGif } from "kinema/gif.js";
import { encodeGif as encodeGifBare } from "kinema/gif";
import { loadKinema } from "kinema/load";
import { KinemaWorker } from "kinema/worker";
import { encodableCodec, encodeMp4, encodeWebm } from "kinema/video";
import { ALL_FORMATS, BlobSource, Input, VideoSampleSink } from "mediabunny";

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
  const files = { mp4: await exported("mp4", encodeMp4, video), webm: await exported("webm", encodeWebm, video) };
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
    files,
    worker,
  };
}

// The video as an MP4 or WebM file, decoded back (by the browser, through
// mediabunny): its frame count, and the mean difference from the frames per
// colour value (the codecs are lossy); `skipped` where the browser cannot encode.
async function exported(format, encode, video) {
  const codec = await encodableCodec(format, video);
  if (!codec) return { skipped: `this browser has no ${format} encoder` };
  const blob = await encode(video);
  const input = new Input({ source: new BlobSource(blob), formats: ALL_FORMATS });
  const track = await input.getPrimaryVideoTrack();
  const canvas = new OffscreenCanvas(video.width, video.height);
  const ctx = canvas.getContext("2d");
  let frames = 0;
  let sum = 0;
  let count = 0;
  for await (const sample of new VideoSampleSink(track).samples()) {
    sample.draw(ctx, 0, 0);
    sample.close();
    const got = ctx.getImageData(0, 0, video.width, video.height).data;
    const want = video.frames[frames++];
    if (!want) break;
    for (let i = 0; i < got.length; i++) {
      if (i % 4 !== 3) {
        sum += Math.abs(got[i] - want[i]);
        count++;
      }
    }
  }
  return { codec, bytes: blob.size, type: blob.type, frames, mean: sum / count };
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
    abortMs, wasmBytes: stats.wasmBytes, gpu: await gpuInWorker(request),
  };
}

// A worker on WebGPU: `gpuBytes` before loading, after a generation (the
// weights and arenas), and after `dispose()` (back to the baseline).
async function gpuInWorker(request) {
  const kinema = await KinemaWorker.create({ device: "gpu" });
  try {
    const before = (await kinema.stats()).gpuBytes;
    const pipeline = await kinema.loadPipeline("models/wan-shapes", { cache: false });
    await pipeline.generate({ ...request, steps: 1 });
    const during = (await kinema.stats()).gpuBytes;
    await pipeline.dispose();
    const after = (await kinema.stats()).gpuBytes;
    return { before, during, after };
  } catch (err) {
    return { error: String(err?.message ?? err) };
  } finally {
    kinema.terminate();
  }
}

main().then(
  (result) => { window.kinemaResult = result; status.textContent = "done"; },
  (err) => { window.kinemaResult = { error: String(err?.message ?? err) }; status.textContent = "failed"; },
);
