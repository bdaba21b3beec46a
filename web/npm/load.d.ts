/**
 * Loads and initialises Kinema: the threaded build (with `threads` Web Workers
 * for the CPU delegate) on a cross-origin isolated page, else the
 * single-threaded build. Returns the package's module.
 */
export function loadKinema(options?: { threads?: number }): Promise<typeof import("./kinema.js")>;
