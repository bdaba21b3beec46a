// The demo page: the `kinema` package (web/pkg, built by web/build.sh) and the
// embedded model (models/wan-shapes), both served by a static server from the
// repository root: `npx http-server -p 8000 .` then http://localhost:8000/www/
// The worker's load.js picks the threaded build when the server sends COOP/COEP
// (the fixture server does; a plain static server runs the CPU delegate on one thread).
// Kinema runs in a module worker (kinema/worker), so the page keeps painting
// while it denoises; the pipeline is any folder URL, relative to the page.
import { KinemaWorker } from "../web/pkg/worker.js";
import { encodeGif } from "../web/pkg/gif.js";
import { encodeMp4, encodeWebm } from "../web/pkg/video.js";

const $ = (id) => document.getElementById(id);
const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const log = (line, cls) => {
  const div = document.createElement("div");
  div.textContent = line;
  if (cls) div.className = cls;
  $("log").prepend(div);
};

let asked, kinema, created, pipeline, loaded, controller;

async function memory() {
  const { wasmBytes, gpuBytes, cachedBytes } = await kinema.stats();
  $("memory").textContent = `memory: wasm ${mib(wasmBytes)}, GPU ${mib(gpuBytes)}, cached files ${mib(cachedBytes)}`;
}

async function load(choice, url) {
  const t0 = performance.now();
  $("status").textContent = "loading the model…";
  if (created !== choice) {
    kinema?.terminate();
    kinema = await KinemaWorker.create({ device: choice, threads: asked });
    created = choice;
  } else {
    await pipeline?.dispose();
  }
  pipeline = await kinema.loadPipeline(url, {
    onProgress: ({ loaded, total }) => {
      $("progress").max = total || 1;
      $("progress").value = loaded;
      $("status").textContent = `loading the model… ${(loaded / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB`;
    },
  });
  loaded = `${choice} ${url}`;
  const n = kinema.threads;
  const cpu = kinema.device === "cpu" ? ` (${n} CPU thread${n > 1 ? "s" : ""})` : "";
  log(`loaded ${url} in ${((performance.now() - t0) / 1000).toFixed(2)} s on ${kinema.device}: ${kinema.adapter}${cpu}`);
  await memory();
  $("words").replaceChildren(...pipeline.vocabulary.map((w) => {
    const s = document.createElement("span");
    s.textContent = w;
    s.onclick = () => { $("prompt").value = `${$("prompt").value.trim()} ${w}`.trim(); };
    return s;
  }));
  $("status").textContent = `ready (${kinema.device})`;
}

function show(video, f) {
  const canvas = $("canvas");
  canvas.width = video.width;
  canvas.height = video.height;
  canvas.getContext("2d").putImageData(new ImageData(video.frames[f], video.width, video.height), 0, 0);
}

let playing = 0;
function play(video) {
  const id = ++playing;
  let f = 0;
  const tick = () => {
    if (id !== playing) return;
    show(video, f);
    f = (f + 1) % video.frames.length;
    setTimeout(tick, 1000 / video.fps);
  };
  tick();
}

$("form").onsubmit = async (e) => {
  e.preventDefault();
  $("go").disabled = true;
  $("stop").disabled = false;
  try {
    if (`${$("device").value} ${$("pipeline").value}` !== loaded) await load($("device").value, $("pipeline").value);
    const steps = Number($("steps").value);
    controller = new AbortController();
    $("progress").max = steps;
    $("progress").value = 0;
    $("status").textContent = "encoding the prompt…";
    const t0 = performance.now();
    const video = await pipeline.generate({
      prompt: $("prompt").value, steps, seed: Number($("seed").value), signal: controller.signal,
      onStep: (done) => {
        $("progress").value = done;
        $("status").textContent = `denoising: step ${done} of ${steps}`;
      },
      onDecode: (done, total) => {
        $("progress").max = total;
        $("progress").value = done;
        $("status").textContent = `decoding: ${done} of ${total}`;
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    play(video);
    $("download").href = URL.createObjectURL(encodeGif(video));
    $("download").hidden = false;
    for (const [id, encode] of [["mp4", encodeMp4], ["webm", encodeWebm]]) {
      $(id).hidden = true;
      encode(video).then(
        (blob) => { $(id).href = URL.createObjectURL(blob); $(id).hidden = false; },
        (err) => log(String(err.message ?? err)),
      );
    }
    $("status").textContent = `done in ${seconds.toFixed(2)} s on ${kinema.device}`;
    log(`"${$("prompt").value}": ${video.frames.length} frames of ${video.width}×${video.height}, ${steps} steps in ` +
        `${seconds.toFixed(2)} s (${(seconds * 1000 / steps).toFixed(0)} ms/step) on ${kinema.adapter}`);
    window.kinemaLast = video; // for tests
    await memory();
  } catch (err) {
    $("status").textContent = "error";
    log(String(err.message ?? err), "error");
  } finally {
    $("go").disabled = false;
    $("stop").disabled = true;
  }
};
$("stop").onclick = () => controller?.abort();

try {
  // `?threads=N` asks for N CPU threads (1: the single-threaded build, as on a
  // page that is not cross-origin isolated); default: the browser's cores.
  asked = Number(new URLSearchParams(location.search).get("threads")) || undefined;
  await load("auto", $("pipeline").value);
  $("go").disabled = false;
} catch (err) {
  $("status").textContent = "error";
  log(String(err.message ?? err), "error");
}
