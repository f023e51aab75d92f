// What this browser has spent of a private task's guarantee: protected updates shared so far,
// counted per task across runs and reloads (localStorage), and the ε they add up to.
import { reactive } from "vue";
import { epsilon } from "../../core/privacy";
import type { Task } from "../../core/task";

const KEY = "disco.privateUpdates";
const counts = reactive<Record<string, number>>(load());

function load(): Record<string, number> {
  try {
    const parsed = JSON.parse(localStorage.getItem(KEY) ?? "{}") as unknown;
    if (typeof parsed !== "object" || parsed === null) return {};
    return Object.fromEntries(
      Object.entries(parsed).filter((e): e is [string, number] => Number.isInteger(e[1]) && e[1] > 0),
    );
  } catch {
    return {}; // storage disabled or unreadable: start from nothing
  }
}

/** Count one protected update shared for `taskId` (before it is sent: the count never lags). */
export function recordPrivateUpdate(taskId: string): void {
  counts[taskId] = (counts[taskId] ?? 0) + 1;
  try {
    localStorage.setItem(KEY, JSON.stringify(counts));
  } catch {
    // storage disabled: the count lasts for this page only
  }
}

/** Protected updates this browser has shared for the task, and the ε they add up to. */
export function privacySpent(task: Task): { updates: number; epsilon: number } | null {
  const p = task.training.privacy;
  const updates = counts[task.id] ?? 0;
  if (p === null || !(p.noise_multiplier > 0) || updates === 0) return null; // clipping alone: no ε
  return { updates, epsilon: epsilon(p, updates) };
}
