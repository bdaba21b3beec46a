// Kinema in a module worker, so that generation never blocks the page:
//
//   import { KinemaWorker } from "kinema/worker";
//   const kinema = await KinemaWorker.create({ device: "auto" });
//   const pipeline = await kinema.loadPipeline("models/wan-shapes", { onProgress });
//   const video = await pipeline.generate({ prompt, steps, seed, onStep, signal });
//
// The same calls as the main-thread API (kinema.js), each a message to the
// worker (worker-main.js). URLs resolve against the page, as fetch's do; an
// aborted `signal` rejects the generation between steps (the worker lets the
// abort in after each one); frames come back transferred, not copied.

export class KinemaWorker {
  #worker;
  #calls = new Map();
  #next = 1;

  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => {
      const call = this.#calls.get(data.id);
      if (!call) return;
      if (data.event) {
        call.onEvent?.(data);
        return;
      }
      this.#calls.delete(data.id);
      if ("error" in data) call.reject(new Error(data.error));
      else call.resolve(data.result);
    };
    worker.onerror = (e) => {
      const err = new Error(`the Kinema worker failed: ${e.message ?? e}`);
      for (const call of this.#calls.values()) call.reject(err);
      this.#calls.clear();
    };
  }

  /** Starts the worker and creates Kinema in it (`device`: "auto" | "gpu" | "cpu"; `threads`, as loadKinema). */
  static async create({ device = "auto", threads } = {}) {
    const worker = new Worker(new URL("./worker-main.js", import.meta.url), { type: "module" });
    const kinema = new KinemaWorker(worker);
    Object.assign(kinema, await kinema.call("create", { device, threads }));
    return kinema;
  }

  /** One message to the worker; `onEvent` sees its progress events. */
  call(op, args, onEvent) {
    const id = this.#next++;
    return Object.assign(
      new Promise((resolve, reject) => {
        this.#calls.set(id, { resolve, reject, onEvent });
        this.#worker.postMessage({ id, op, args });
      }),
      { id },
    );
  }

  /** As `Kinema.loadPipeline`; `onProgress({ loaded, total })` runs on the page. */
  async loadPipeline(url, { cache, onProgress } = {}) {
    const absolute = new URL(url, globalThis.document?.baseURI ?? globalThis.location?.href).href;
    const event = onProgress && ((e) => onProgress({ loaded: e.loaded, total: e.total }));
    const info = await this.call("load", { url: absolute, cache }, event);
    return new WorkerPipeline(this, info);
  }

  /** As `Kinema.stats`: `{ wasmBytes, gpuBytes, cachedBytes }` of the worker's Kinema. */
  stats() {
    return this.call("stats");
  }

  /** Stops the worker (every GPU buffer and the wasm memory with it). */
  terminate() {
    this.#worker.terminate();
    for (const call of this.#calls.values()) call.reject(new Error("the Kinema worker was terminated"));
    this.#calls.clear();
  }
}

class WorkerPipeline {
  #kinema;
  #handle;

  constructor(kinema, { handle, vocabulary, example, defaultSteps }) {
    this.#kinema = kinema;
    this.#handle = handle;
    Object.assign(this, { vocabulary, example, defaultSteps });
  }

  /** As `pipeline.generate`: `onStep` and `onDecode(done, total)` on the page; `signal` aborts between steps. */
  async generate({ onStep, onDecode, signal, ...request } = {}) {
    if (signal?.aborted) throw new Error("generation cancelled");
    const event = (e) => (e.event === "decode" ? onDecode : onStep)?.(e.done, e.total);
    const call = this.#kinema.call("generate", { handle: this.#handle, request }, event);
    const abort = () => this.#kinema.call("abort", { target: call.id });
    signal?.addEventListener("abort", abort);
    try {
      return await call;
    } finally {
      signal?.removeEventListener("abort", abort);
    }
  }

  /** Frees the pipeline's GPU buffers in the worker. */
  dispose() {
    return this.#kinema.call("dispose", { handle: this.#handle });
  }
}
