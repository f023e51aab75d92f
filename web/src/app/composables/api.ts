// The server's REST API (docs/protocol.md §14), as used by the pages. Same origin as the app.
// On a private instance every call about a task presents this browser's invitation to it, or
// the admin token typed in this tab (./invitations.ts).
import type { Task } from "../../core/task";
import { adminToken, bearer, storedInvitations, taskHeaders } from "./invitations";

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

/** Whether `e` is the server's refusal of the credentials given (401 or 403). */
export function refusedAccess(e: unknown): e is ApiError {
  return e instanceof ApiError && (e.status === 401 || e.status === 403);
}

/** Fetch `path` on the server with `headers` added; ApiError when it fails or answers an error. */
async function request(path: string, init: RequestInit = {}, headers: Record<string, string> = {}): Promise<Response> {
  let res: Response;
  try {
    const all = { ...(init.headers as Record<string, string> | undefined), ...headers };
    res = await fetch(`${serverUrl()}${path}`, Object.keys(all).length ? { ...init, headers: all } : init);
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

/** The tasks the server lists to a caller presenting `token` (none: to anyone). */
export async function tasksFor(token: string | null): Promise<Task[]> {
  return (await (await request("/api/tasks", {}, bearer(token))).json()) as Task[];
}

/**
 * Every task the server offers to this browser. With the admin token typed in this tab: every
 * task. Else, on a private instance, the tasks of the invitations this browser holds (one
 * listing per invitation, merged; one the server refuses is left out while another works; if
 * every one is refused, the refusal). Without any: the public listing, or ApiError 401
 * `invitation_required` from a private instance.
 */
export async function listTasks(): Promise<Task[]> {
  const admin = adminToken();
  if (admin) {
    try {
      return await tasksFor(admin);
    } catch (e) {
      if (!refusedAccess(e)) throw e; // a wrong admin token: list as a participant
    }
  }
  const tokens = [...new Set(Object.values(storedInvitations()))];
  if (!tokens.length) return tasksFor(null);
  const lists = await Promise.allSettled(tokens.map(tasksFor));
  const found = lists.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  if (!found.length) {
    const errors = lists.map((r) => (r as PromiseRejectedResult).reason as unknown);
    const other = errors.find((e) => !refusedAccess(e));
    if (other !== undefined) throw other; // e.g. unreachable
    try {
      return await tasksFor(null); // a public server that does not take these tokens
    } catch {
      throw errors[0]; // every invitation refused: say so rather than "private"
    }
  }
  const byId = new Map<string, Task>();
  for (const task of found.flat()) if (!byId.has(task.id)) byId.set(task.id, task);
  return [...byId.values()];
}

/** One task by id (ApiError 404 when unknown; 401/403 on a private instance without a valid invitation). */
export async function getTask(id: string): Promise<Task> {
  return (await (await request(`/api/tasks/${encodeURIComponent(id)}`, {}, taskHeaders(id))).json()) as Task;
}

/** The current global model of a task as safetensors bytes, with its round and digest. */
export async function getModelFile(
  id: string,
): Promise<{ bytes: Uint8Array; round: number; digest: string }> {
  const res = await request(`/api/tasks/${encodeURIComponent(id)}/model`, { cache: "no-store" }, taskHeaders(id));
  return {
    bytes: new Uint8Array(await res.arrayBuffer()),
    round: Number(res.headers.get("X-Disco-Round") ?? "0"),
    digest: res.headers.get("X-Disco-Digest") ?? "",
  };
}

/** A text task's tokenizer.json, as the exact bytes the server holds (docs/text.md). */
export async function getTokenizerBytes(id: string): Promise<Uint8Array> {
  const res = await request(`/api/tasks/${encodeURIComponent(id)}/tokenizer`, {}, taskHeaders(id));
  return new Uint8Array(await res.arrayBuffer());
}

/** Publish a new task (201); ApiError 401/403 without the right admin token, 409, 422 with fields. */
export async function createTask(doc: unknown, token: string): Promise<Task> {
  const res = await request(
    "/api/tasks",
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(doc) },
    bearer(token),
  );
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
  const res = await request(
    `/api/tasks/${encodeURIComponent(id)}/status`,
    { cache: "no-store", ...(signal ? { signal } : {}) },
    taskHeaders(id),
  );
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
  const res = await request(
    `/api/tasks/${encodeURIComponent(id)}/rounds${query}`,
    { cache: "no-store", ...(signal ? { signal } : {}) },
    taskHeaders(id),
  );
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

/** Who may see and join the server's tasks: anyone, or invited people only (a private instance). */
export type ServerAccess = "public" | "invitation" | "unknown";

/** Whether the server is a private instance (`GET /api/health`, field `access`). */
export async function serverAccess(): Promise<ServerAccess> {
  try {
    const health = (await (await request("/api/health", { cache: "no-store" })).json()) as { access?: unknown };
    return health.access === "public" || health.access === "invitation" ? health.access : "unknown";
  } catch {
    return "unknown";
  }
}

// -- invitations (the admin token's) ------------------------------------------------------------

/** An invitation to one task, as the server lists it (times in ISO 8601, UTC). */
export interface Invitation {
  id: string;
  task_id: string;
  label: string;
  created_at: string;
  expires_at: string;
  revoked_at: string | null;
  uses: number;
  last_used_at: string | null;
  /** Its state by the server's clock (absent from older servers: `invitationStatus` tells). */
  state?: "active" | "expired" | "revoked";
}

/** A new invitation: its token and join link are in this answer only. */
export interface NewInvitation extends Invitation {
  token: string;
  link: string;
}

/** Make an invitation to task `taskId` (201); ApiError 401/403 without the right admin token. */
export async function createInvitation(
  taskId: string,
  options: { label?: string; expiresInS?: number },
  token: string,
): Promise<NewInvitation> {
  const body: Record<string, unknown> = {};
  if (options.label?.trim()) body["label"] = options.label.trim();
  if (options.expiresInS !== undefined) body["expires_in_s"] = options.expiresInS;
  const res = await request(
    `/api/tasks/${encodeURIComponent(taskId)}/invitations`,
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) },
    bearer(token),
  );
  return (await res.json()) as NewInvitation;
}

/** The invitations to task `taskId`, without their tokens; ApiError 401/403 without the right admin token. */
export async function listInvitations(taskId: string, token: string): Promise<Invitation[]> {
  const res = await request(`/api/tasks/${encodeURIComponent(taskId)}/invitations`, { cache: "no-store" }, bearer(token));
  return (await res.json()) as Invitation[];
}

/** Revoke invitation `id` for good; resolves with it, `revoked_at` set. */
export async function revokeInvitation(id: string, token: string): Promise<Invitation> {
  const res = await request(`/api/invitations/${encodeURIComponent(id)}`, { method: "DELETE" }, bearer(token));
  return (await res.json()) as Invitation;
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
