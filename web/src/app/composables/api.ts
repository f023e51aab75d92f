// The server's REST API (docs/protocol.md §14), as used by the pages. Same origin as the app.
import type { Task } from "../../core/task";

/** One field-level problem from the server's 422 answer. */
export interface FieldProblem {
  field: string;
  message: string;
}

/** A REST call that failed: `status` 0 means the server could not be reached at all. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    readonly fields: FieldProblem[] = [],
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** True when the server was not reached (network down, server stopped, request aborted). */
  get unreachable(): boolean {
    return this.status === 0;
  }
}

/** Base URL of the disco server: the origin that served this page. */
export function serverUrl(): string {
  return window.location.origin;
}

async function request(path: string, init?: RequestInit): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(`${serverUrl()}${path}`, init);
  } catch {
    throw new ApiError("The disco server cannot be reached.", 0, "unreachable");
  }
  if (res.ok) return res;
  let body: { error?: unknown; code?: unknown; fields?: unknown } = {};
  try {
    body = (await res.json()) as typeof body;
  } catch {
    // not JSON: keep the status line
  }
  const fields = Array.isArray(body.fields)
    ? (body.fields as unknown[]).filter(isFieldProblem)
    : [];
  const message = typeof body.error === "string" ? body.error : `${res.status} ${res.statusText}`;
  const code = typeof body.code === "string" ? body.code : `http_${res.status}`;
  throw new ApiError(message, res.status, code, fields);
}

function isFieldProblem(v: unknown): v is FieldProblem {
  return (
    typeof v === "object" &&
    v !== null &&
    typeof (v as FieldProblem).field === "string" &&
    typeof (v as FieldProblem).message === "string"
  );
}

/** Every task the server offers. */
export async function listTasks(): Promise<Task[]> {
  return (await (await request("/api/tasks")).json()) as Task[];
}

/** One task by id (ApiError 404 when unknown). */
export async function getTask(id: string): Promise<Task> {
  return (await (await request(`/api/tasks/${encodeURIComponent(id)}`)).json()) as Task;
}

/** The current global model of a task as safetensors bytes, with its round and digest. */
export async function getModelFile(
  id: string,
): Promise<{ bytes: Uint8Array; round: number; digest: string }> {
  const res = await request(`/api/tasks/${encodeURIComponent(id)}/model`, { cache: "no-store" });
  return {
    bytes: new Uint8Array(await res.arrayBuffer()),
    round: Number(res.headers.get("X-Disco-Round") ?? "0"),
    digest: res.headers.get("X-Disco-Digest") ?? "",
  };
}

/** Publish a new task (201); ApiError 401/403 without the right admin token, 409, 422 with fields. */
export async function createTask(doc: unknown, adminToken: string): Promise<Task> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (adminToken) headers.Authorization = `Bearer ${adminToken}`;
  const res = await request("/api/tasks", {
    method: "POST",
    headers,
    body: JSON.stringify(doc),
  });
  return (await res.json()) as Task;
}

/** Who is training a task right now (`GET /api/tasks/{id}/status`, the fields the pages use). */
export interface TaskStatus {
  /** The open round: the number of rounds the shared model has been through. */
  round: number;
  /** Participants connected now. */
  participants: number;
  /** Participants a round waits for. */
  min_participants: number;
}

/** The live status of one task; ApiError 404 when unknown, 0 when unreachable. */
export async function getStatus(id: string, signal?: AbortSignal): Promise<TaskStatus> {
  const res = await request(`/api/tasks/${encodeURIComponent(id)}/status`, {
    cache: "no-store",
    ...(signal ? { signal } : {}),
  });
  const body = (await res.json()) as Partial<Record<keyof TaskStatus, unknown>>;
  const count = (v: unknown): number => (typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : Number.NaN);
  const status = {
    round: count(body.round),
    participants: count(body.participants),
    min_participants: count(body.min_participants),
  };
  if (Object.values(status).some(Number.isNaN)) {
    throw new ApiError("The server's status answer is not understood.", res.status, "bad_status");
  }
  return status;
}

/**
 * The closed rounds of a task (`GET /api/tasks/{id}/rounds`), oldest first, as the server sends
 * them (`./roundReports` reads them); ApiError 404 when unknown, 0 when unreachable.
 */
export async function getRounds(id: string, signal?: AbortSignal, last?: number): Promise<unknown> {
  const query = last === undefined ? "" : `?last=${last}`;
  const res = await request(`/api/tasks/${encodeURIComponent(id)}/rounds${query}`, {
    cache: "no-store",
    ...(signal ? { signal } : {}),
  });
  try {
    return (await res.json()) as unknown;
  } catch {
    if (signal?.aborted) throw new ApiError("The disco server did not answer in time.", 0, "timeout");
    throw new ApiError("The server's round history is not understood.", res.status, "bad_rounds");
  }
}

/**
 * Whether the server answers at all (`GET /api/health`, given up after `timeoutMs`): pages that
 * work without it (the model library) say when it is out of reach.
 */
export async function serverReachable(timeoutMs = 5000): Promise<boolean> {
  try {
    await request("/api/health", { cache: "no-store", signal: AbortSignal.timeout(timeoutMs) });
    return true;
  } catch (e) {
    return !(e instanceof ApiError && e.unreachable);
  }
}

/** Whether this page may publish tasks: freely, with the admin token, not at all, or unknown. */
export type CreationAccess = "open" | "token" | "disabled" | "unknown";

/**
 * Find out, without creating anything, what publishing a task takes: an empty task (`null`) is
 * posted without a token. The server refuses it for want of a token (401), because task
 * creation is off (403 `creation_disabled`), or — when anyone may publish — as invalid (422).
 */
export async function creationAccess(): Promise<CreationAccess> {
  try {
    const health = (await (await request("/api/health")).json()) as { task_creation?: unknown };
    const mode = health.task_creation;
    return mode === "open" || mode === "token" || mode === "disabled" ? mode : "unknown";
  } catch {
    return "unknown";
  }
}
