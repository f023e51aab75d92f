/**
 * Where a training step's time goes: per-kernel times of a few steps under `tf.profile`.
 */
import * as tf from "@tensorflow/tfjs";

/** One kernel's share of a profiled training step. */
export interface KernelTime {
  name: string;
  ms_per_step: number;
  calls_per_step: number;
}

/** Wall time of one profiled step (profiling adds a little) and its kernels, slowest first. */
export interface Profiled {
  stepMs: number;
  kernels: KernelTime[];
}

/**
 * Whether a profiled entry is an op with a custom gradient (`logSoftmax__op`, an unnamed
 * `tf.customGrad`) rather than a kernel: its time is that of the kernels it ran, listed too.
 */
function isScope(name: string): boolean {
  return name.endsWith("__op") || name === "unnamed scope";
}

/** Run `steps` (one training step each, resolving when done) under `tf.profile`, after one untimed. */
export async function profileSteps(steps: ReadonlyArray<() => Promise<void>>): Promise<Profiled> {
  const first = steps[0];
  if (first === undefined) throw new Error("nothing to profile: no steps");
  await first(); // warm
  const start = performance.now();
  const info = await tf.profile(async () => {
    for (const step of steps) await step();
  });
  const stepMs = (performance.now() - start) / steps.length;
  const totals = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    if (isScope(k.name)) continue;
    const entry = totals.get(k.name) ?? { ms: 0, calls: 0 };
    entry.ms += typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
    entry.calls += 1;
    totals.set(k.name, entry);
  }
  const kernels = [...totals.entries()]
    .map(([name, t]) => ({ name, ms_per_step: t.ms / steps.length, calls_per_step: t.calls / steps.length }))
    .sort((a, b) => b.ms_per_step - a.ms_per_step);
  return { stepMs, kernels };
}
