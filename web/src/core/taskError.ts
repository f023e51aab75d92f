// A task document is invalid: `TaskError` (Python's), and the small checks that throw it while
// a task document is parsed (`task.ts`, `aggregationTask.ts`, `secureTask.ts`, `textTask.ts`).
import { DiscoError } from "./errors";

/** A task document is invalid (mirrors Python's `TaskError`). */
export class TaskError extends DiscoError {
  override name = "TaskError";
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function check(ok: boolean, message: string): asserts ok {
  if (!ok) throw new TaskError(`invalid task: ${message}`);
}
