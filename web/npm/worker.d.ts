/** A generated clip: RGBA frames. */
export interface Video {
  width: number;
  height: number;
  fps: number;
  frames: Uint8ClampedArray[];
}

/** Kinema in a module worker: the main-thread API's calls, each a message. */
export class KinemaWorker {
  static create(options?: { device?: "auto" | "gpu" | "cpu"; threads?: number }): Promise<KinemaWorker>;
  readonly device: string;
  readonly adapter: string;
  readonly features: string[];
  readonly threads: number;
  loadPipeline(
    url: string,
    options?: { cache?: string | boolean; onProgress?: (p: { loaded: number; total: number }) => void },
  ): Promise<WorkerPipeline>;
  stats(): Promise<{ wasmBytes: number; gpuBytes: number; cachedBytes: number }>;
  terminate(): void;
}

export interface WorkerPipeline {
  readonly vocabulary: string[];
  readonly example: string;
  readonly defaultSteps: number;
  generate(request: {
    prompt: string;
    steps?: number;
    guidance?: number;
    seed?: number;
    frames?: number;
    onStep?: (done: number, total: number) => void;
    onDecode?: (done: number, total: number) => void;
    signal?: AbortSignal;
  }): Promise<Video>;
  dispose(): Promise<null>;
}
