import { defineConfig } from "vitest/config";
import vue from "@vitejs/plugin-vue";

// The built app goes into the Python package, which `disco serve` serves at `/`.
export default defineConfig({
  plugins: [vue()],
  base: "/",
  build: {
    outDir: "../src/disco/server/static",
    emptyOutDir: true,
    chunkSizeWarningLimit: 4096,
    assetsInlineLimit: 0,
    rollupOptions: { input: { main: "index.html", bench: "bench.html" } },
  },
  server: { proxy: { "/api": "http://127.0.0.1:8000", "/ws": { target: "ws://127.0.0.1:8000", ws: true } } },
  test: { include: ["tests/**/*.test.ts"], testTimeout: 120_000 },
});
