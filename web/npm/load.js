// Loads Kinema and returns its module (`Kinema`, `benchmark`, `threads`, …),
// already initialised. On a cross-origin isolated page (COOP/COEP headers,
// so memory may be shared with Web Workers) it loads the threaded build and
// starts `threads` workers for the CPU delegate (default: the browser's
// hardwareConcurrency, at most 8); elsewhere, or when that fails, the
// single-threaded build. `threads: 1` asks for the single-threaded build.
export async function loadKinema({ threads } = {}) {
  const wanted = threads ?? Math.min(globalThis.navigator?.hardwareConcurrency || 1, 8);
  if (globalThis.crossOriginIsolated === true && wanted > 1) {
    try {
      const pkg = await import("./threads/kinema.js");
      await pkg.default();
      await pkg.initThreads(wanted);
      return pkg;
    } catch (err) {
      console.warn(`kinema: no worker threads (${err?.message ?? err}); running on one thread`);
    }
  }
  const pkg = await import("./kinema.js");
  await pkg.default();
  return pkg;
}
