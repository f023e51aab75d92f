import { defineConfig, type Plugin } from "vitest/config";
import vue from "@vitejs/plugin-vue";

/**
 * TF.js's threaded wasm backend gives its pthread workers the source of its Emscripten factory
 * (`factory.toString()`), which must not refer to anything outside itself. Its one outside
 * reference, `_scriptDir`, is renamed by the minifier (and its `typeof` guard folded away), and
 * the workers die with "e is not defined" (the backend then never starts). As a property of
 * `globalThis` it keeps its name: undefined in the workers, as the factory expects.
 */
function wasmThreadsSurviveMinification(): Plugin {
  return {
    name: "disco-wasm-threads",
    transform(code, id) {
      if (!/tfjs-backend-wasm-threaded-simd\.js$/.test(id)) return null;
      const fixed = code
        .replace("var _scriptDir =", "globalThis.__discoWasmScriptDir =")
        .replaceAll(/\b_scriptDir\b/g, "globalThis.__discoWasmScriptDir");
      return { code: fixed, map: null };
    },
  };
}

// The built app goes into the Python package, which `disco serve` serves at `/`.
export default defineConfig({
  plugins: [vue(), wasmThreadsSurviveMinification()],
  base: "/",
  worker: { format: "es" }, // module workers (core/text/encodeWorker.ts)
  build: {
    outDir: "../src/disco/server/static",
    emptyOutDir: true,
    chunkSizeWarningLimit: 4096,
    assetsInlineLimit: 0,
    rollupOptions: { input: { main: "index.html", bench: "bench.html" } },
  },
  server: {
    proxy: { "/api": "http://127.0.0.1:8000", "/ws": { target: "ws://127.0.0.1:8000", ws: true } },
    // cross-origin isolated like the pages `disco serve` serves: wasm on several threads
    headers: { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" },
  },
  test: { include: ["tests/**/*.test.ts"], testTimeout: 120_000 },
});
