// The module worker behind `kinema/worker` (worker.js): Kinema runs here, off
// the page's main thread. Messages in: { id, op, args } — op "create",
// "load", "generate", "abort", "stats", "dispose"; out: { id, result } or
// { id, error }, and { id, event: "progress" | "step", … } while a call runs.
// Frames go back as transferred buffers (no copy).
import { loadKinema } from "./load.js";

let kinema = null;
const pipelines = new Map();
const running = new Map();
let next = 1;

function post(message, transfer = []) {
  self.postMessage(message, transfer);
}

const ops = {
  async create(id, { device, threads }) {
    const pkg = await loadKinema(threads ? { threads } : {});
    kinema = await pkg.Kinema.create({ device });
    return { device: kinema.device, adapter: kinema.adapter, features: kinema.features, threads: kinema.threads };
  },
  async load(id, { url, cache }) {
    const onProgress = ({ loaded, total }) => post({ id, event: "progress", loaded, total });
    const pipeline = await kinema.loadPipeline(url, { cache, onProgress });
    const handle = next++;
    pipelines.set(handle, pipeline);
    return { handle, vocabulary: pipeline.vocabulary, example: pipeline.example, defaultSteps: pipeline.defaultSteps };
  },
  async generate(id, { handle, request }) {
    const pipeline = pipelines.get(handle);
    if (!pipeline) throw new Error("this pipeline was disposed");
    const controller = new AbortController();
    running.set(id, controller);
    try {
      const onStep = (done, total) => post({ id, event: "step", done, total });
      const onDecode = (done, total) => post({ id, event: "decode", done, total });
      const video = await pipeline.generate({ ...request, onStep, onDecode, signal: controller.signal });
      return [video, video.frames.map((f) => f.buffer)];
    } finally {
      running.delete(id);
    }
  },
  async abort(id, { target }) {
    running.get(target)?.abort();
    return null;
  },
  async stats() {
    return await kinema.stats();
  },
  async dispose(id, { handle }) {
    pipelines.get(handle)?.dispose();
    pipelines.delete(handle);
    return null;
  },
};

self.onmessage = async ({ data: { id, op, args } }) => {
  try {
    if (!ops[op]) throw new Error(`unknown operation ${op}`);
    if (op !== "create" && !kinema) throw new Error("Kinema is not created in this worker yet");
    const out = await ops[op](id, args ?? {});
    const [result, transfer] = Array.isArray(out) ? out : [out, []];
    post({ id, result }, transfer);
  } catch (err) {
    post({ id, error: String(err?.message ?? err) });
  }
};
