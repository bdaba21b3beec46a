// What a Vite app needs for kinema (web/npm/README.md): nothing for the
// single-threaded build; for the threaded one, module workers and the
// cross-origin isolation headers on the dev server.
export default {
  worker: { format: "es" },
  build: { target: "es2022" },
  server: { headers: { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" } },
};
