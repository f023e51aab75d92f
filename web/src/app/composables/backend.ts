// The TF.js backend, started once for the whole app: WebGPU where the browser has a usable GPU,
// else WebAssembly (on several threads when the page is cross-origin isolated; core/backend.ts).
import { type BackendChoice, initBackend } from "../../core/backend";

export { describeBackend } from "../../core/backend";

let ready: Promise<BackendChoice> | null = null;

/** Start the TF.js backend once; later calls wait for the same start. */
export function ensureBackend(): Promise<BackendChoice> {
  ready ??= initBackend("auto");
  return ready;
}
