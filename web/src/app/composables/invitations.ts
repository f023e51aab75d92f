// Invitations to the tasks of a private instance, as this browser holds them. A person invited
// to a task receives a join link (`<server>/#/join/<task id>?invitation=dinv.<id>.<secret>`);
// opening it, or pasting it (or the bare token) into the app, keeps the token in localStorage
// under the task's id: it is this person's credential for that task, kept across visits (as the
// Python side's `--invitation`). REST calls about the task present it as `Authorization: Bearer
// <token>` (./api.ts), and every connection to the task's sessions sends it in `Hello.invitation`
// (./together.ts, ./peers.ts). The admin token of the person who runs the server is another
// thing: typed on this page, kept for this tab only (sessionStorage), and never part of a link.
import { TASK_ID_PATTERN } from "../../core/task";

/** An invitation token: `dinv.` + the invitation's public id + `.` + its secret. */
export const INVITATION_PATTERN = /^dinv\.[a-z2-7]{10}\.[A-Za-z0-9_-]{43}$/;
/** A token inside longer text (a link, a message), not part of a longer word. */
const TOKEN_IN_TEXT = /(?<![A-Za-z0-9_.-])dinv\.[a-z2-7]{10}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/;
/** The task of a join link: `#/join/<task id>`. */
const JOIN_PATH = /#\/join\/([^/?#&\s]+)/;
/** The server a link points to: `http(s)://host[:port]`. */
const LINK_ORIGIN = /\bhttps?:\/\/[^\s/?#]+/i;

/** Where this browser keeps its invitations: one JSON object, task id → token. */
export const INVITATIONS_KEY = "disco.invitations";
/** Where this tab keeps the admin token once typed (sessionStorage, as the create page does). */
export const ADMIN_TOKEN_KEY = "disco.adminToken";

/** In plain words: the server refused the invitation this browser holds for the task. */
export const INVITATION_REFUSED =
  "This invitation is no longer valid: it was revoked or has expired. Ask the person who invited you for a new link.";
/** In plain words: the task is private and this browser holds no invitation for it. */
export const INVITATION_REQUIRED =
  "This task is private: only invited people can take part. Open the invitation link you received to join it.";

/** What a pasted join link (or bare token) holds. */
export interface PastedInvitation {
  token: string;
  /** The task the link is for; null for a bare token. */
  taskId: string | null;
  /** The server the link points to (`http(s)://host:port`); null for a bare token. */
  origin: string | null;
}

/**
 * The invitation in `text`: a join link as it was received (in a message, between quotes or
 * angle brackets, with its `invitation=` encoded or not) or the bare token; null when `text`
 * holds no whole token (e.g. a link cut short).
 */
export function parseInvitation(text: string): PastedInvitation | null {
  const raw = text.trim();
  let decoded = raw;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    // not percent-encoded text: read it as it is
  }
  const token = (TOKEN_IN_TEXT.exec(raw) ?? TOKEN_IN_TEXT.exec(decoded))?.[0];
  if (token === undefined) return null;
  const path = JOIN_PATH.exec(decoded)?.[1] ?? null;
  const taskId = path !== null && TASK_ID_PATTERN.test(path) ? path : null;
  const link = LINK_ORIGIN.exec(raw)?.[0];
  let origin: string | null = null;
  if (link !== undefined) {
    try {
      origin = new URL(link).origin;
    } catch {
      origin = null;
    }
  }
  return { token, taskId, origin };
}

/** A key-value store (localStorage, sessionStorage, or a test's). */
export type KeyValueStore = Pick<Storage, "getItem" | "setItem" | "removeItem">;

/** Kept for this page when the browser's storage is disabled (private mode, a policy). */
const memory = new Map<string, string>();
const inMemory: KeyValueStore = {
  getItem: (key) => memory.get(key) ?? null,
  setItem: (key, value) => void memory.set(key, value),
  removeItem: (key) => void memory.delete(key),
};

function local(): KeyValueStore {
  return (globalThis as { localStorage?: KeyValueStore }).localStorage ?? inMemory;
}

function session(): KeyValueStore {
  return (globalThis as { sessionStorage?: KeyValueStore }).sessionStorage ?? inMemory;
}

function read(store: KeyValueStore, key: string): string | null {
  try {
    return store.getItem(key);
  } catch {
    return inMemory.getItem(key);
  }
}

function write(store: KeyValueStore, key: string, value: string | null): void {
  try {
    if (value === null) store.removeItem(key);
    else store.setItem(key, value);
  } catch {
    // storage disabled or full: it lasts for this page only
    if (value === null) inMemory.removeItem(key);
    else inMemory.setItem(key, value);
  }
}

/** Every invitation this browser holds, task id → token (unreadable entries left out). */
export function storedInvitations(store: KeyValueStore = local()): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(read(store, INVITATIONS_KEY) ?? "{}");
  } catch {
    return {};
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return {};
  return Object.fromEntries(
    Object.entries(parsed).filter(
      (e): e is [string, string] => TASK_ID_PATTERN.test(e[0]) && typeof e[1] === "string" && INVITATION_PATTERN.test(e[1]),
    ),
  );
}

/** The invitation this browser holds for task `taskId`, or null. */
export function invitationFor(taskId: string, store: KeyValueStore = local()): string | null {
  return storedInvitations(store)[taskId] ?? null;
}

/** Keep `token` as this browser's invitation to task `taskId` (replacing an older one); false if it is no token. */
export function keepInvitation(taskId: string, token: string, store: KeyValueStore = local()): boolean {
  if (!TASK_ID_PATTERN.test(taskId) || !INVITATION_PATTERN.test(token)) return false;
  write(store, INVITATIONS_KEY, JSON.stringify({ ...storedInvitations(store), [taskId]: token }));
  return true;
}

/** Forget this browser's invitation to task `taskId`, if any. */
export function forgetInvitation(taskId: string, store: KeyValueStore = local()): void {
  const all = storedInvitations(store);
  if (!(taskId in all)) return;
  delete all[taskId];
  write(store, INVITATIONS_KEY, Object.keys(all).length ? JSON.stringify(all) : null);
}

/** The admin token typed in this tab (the create page and the invitations panel share it), or "". */
export function adminToken(store: KeyValueStore = session()): string {
  return (read(store, ADMIN_TOKEN_KEY) ?? "").trim();
}

/** Remember the admin token for this tab ("" forgets it). */
export function keepAdminToken(token: string, store: KeyValueStore = session()): void {
  write(store, ADMIN_TOKEN_KEY, token.trim() || null);
}

/** `Authorization: Bearer <token>`, or no header without a token. */
export function bearer(token: string | null | undefined): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/**
 * The headers of a REST call about task `taskId`: the invitation this browser holds for it, else
 * the admin token typed in this tab (the person who runs the server sees every task), else none.
 */
export function taskHeaders(taskId: string, stores: { local?: KeyValueStore; session?: KeyValueStore } = {}): Record<string, string> {
  return bearer(invitationFor(taskId, stores.local ?? local()) ?? (adminToken(stores.session ?? session()) || null));
}

/** The state of an invitation the server lists. */
export type InvitationStatus = "active" | "expired" | "revoked";

/** Whether an invitation (as the server lists it) still lets people in at `now` (ms since the epoch). */
export function invitationStatus(invitation: { expires_at: string; revoked_at: string | null }, now: number = Date.now()): InvitationStatus {
  if (invitation.revoked_at !== null) return "revoked";
  const expires = Date.parse(invitation.expires_at);
  return Number.isFinite(expires) && expires <= now ? "expired" : "active";
}

/** The choices of how long a new invitation lasts, in seconds. */
export const EXPIRY_CHOICES = [
  { label: "1 day", seconds: 86_400 },
  { label: "7 days", seconds: 7 * 86_400 },
  { label: "30 days", seconds: 30 * 86_400 },
] as const;
