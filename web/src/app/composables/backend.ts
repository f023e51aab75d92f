// The TF.js backend, started once for the whole app (wasm by default: fastest on CPU here).
import { type BackendChoice, initBackend } from "../../core/backend";

let ready: Promise<BackendChoice> | null = null;

/** Start the TF.js backend once; later calls wait for the same start. */
export function ensureBackend(): Promise<BackendChoice> {
  ready ??= initBackend("wasm");
  return ready;
}
