/**
 * Reaching a disco server and joining a task on it, as every browser participant does (the
 * federated client, ./session.ts, and a decentralized peer, ../decentralized/session.ts): the
 * WebSocket endpoint, the `participant_key` that makes a reconnecting participant the one it was,
 * the `Hello` (with the invitation of a private instance's task, when the app has one), the
 * close codes and refusals after which reconnecting cannot help, and `ServerUnreachable` when the
 * server cannot be reached at all.
 */

import { AccessRefused, ServerError, SessionError } from "../errors";
import type { ErrorMessage, Hello } from "../protocol";
import type { LinkClosed } from "./link";

/** The server could not be reached within the connection budget; the session was not (re)joined. */
export class ServerUnreachable extends ServerError {
  override name = "ServerUnreachable";
  constructor(
    message: string,
    /** Connection attempts made. */
    readonly attempts: number,
    /** Whether the session had been joined before (the connection was lost mid-session). */
    readonly joined: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Close code of a private instance that refuses a participant without a valid invitation (error "forbidden"). */
export const FORBIDDEN_CLOSE = 4403;
/** Close code of a server at one of its limits, e.g. participants of a task (error "limited"): try again later. */
export const LIMITED_CLOSE = 4429;

/**
 * Close codes after which reconnecting cannot help (Python's `disco.client.link.FATAL_CLOSE`, in
 * this page's words). `LIMITED_CLOSE` is not one: the limit may be gone when the client tries
 * again, after its back-off.
 */
export const FATAL_CLOSE: Readonly<Record<number, string>> = {
  1003: "the server sent a frame this page cannot read; reload the page",
  1009: "the update is larger than the server accepts",
  4400: "this page speaks another protocol version than the server; reload the page",
  4404: "the server does not know this task",
  4426: "this task needs a newer client: update the page/app",
  [FORBIDDEN_CLOSE]: "this task is private: you need a valid invitation link to take part; ask the person who invited you for one",
};

/**
 * The error to raise for a closed link, or null when reconnecting may help (its code is not in
 * `FATAL_CLOSE`); an `AccessRefused` for `FORBIDDEN_CLOSE`.
 */
export function fatalClose(exc: LinkClosed): ServerError | null {
  const why = FATAL_CLOSE[exc.code];
  if (why === undefined) return null;
  return exc.code === FORBIDDEN_CLOSE ? new AccessRefused(`${why} (${exc.message})`) : new ServerError(`${why} (${exc.message})`);
}

/** What to add to a refusal to join with error `code`: the advice to update for "unsupported", else nothing. */
export function refusalAdvice(code: string): string {
  return code === "unsupported" ? ` (${FATAL_CLOSE[4426]})` : "";
}

/**
 * The error for the server's refusal `m` to let this participant join: an `AccessRefused` for
 * "forbidden" (no valid invitation; the server's words say which: required, expired, revoked…),
 * a plain `ServerError` for "limited" (a federated client tries again instead, ./session.ts),
 * else a `ServerError` naming the code.
 */
export function refusal(m: ErrorMessage): ServerError {
  if (m.code === "forbidden") return new AccessRefused(`${FATAL_CLOSE[FORBIDDEN_CLOSE]} (the server says: ${m.message})`);
  if (m.code === "limited") return new ServerError(`the server cannot take this participant now (${m.message}); try again later`);
  return new ServerError(`server refused to join: [${m.code}] ${m.message}${refusalAdvice(m.code)}`);
}

/** The WebSocket endpoint (`ws(s)://host/ws`) of a server given by its http(s) base URL. */
export function wsUrl(server: string): string {
  const base = server.replace(/\/+$/, "");
  if (base.startsWith("https://")) return `wss://${base.slice(8)}/ws`;
  if (base.startsWith("http://")) return `ws://${base.slice(7)}/ws`;
  return base.endsWith("/ws") ? base : `${base}/ws`;
}

/** The WebSocket class to connect with: `given`, else the global one; `SessionError` when there is none. */
export function webSocketClass(given: typeof WebSocket | undefined): typeof WebSocket {
  const WebSocketImpl = given ?? globalThis.WebSocket;
  if (WebSocketImpl === undefined) throw new SessionError("this environment has no WebSocket");
  return WebSocketImpl;
}

/** A fresh `participant_key`: 24 random bytes (`crypto.getRandomValues`) in base64url, 32 characters. */
export function newParticipantKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  const base64 = btoa(String.fromCharCode(...bytes));
  return base64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * The `Hello` a browser participant opens every connection with; it carries `joining.invitation`
 * when there is one (a private instance's task), and no `invitation` field otherwise.
 */
export function hello(
  joining: { taskId: string; name?: string | undefined; invitation?: string | null | undefined },
  participantKey: string,
  capabilities: readonly string[],
): Hello {
  const message: Hello = {
    type: "hello",
    task_id: joining.taskId,
    name: joining.name ?? "",
    kind: "browser",
    participant_key: participantKey,
    capabilities: [...capabilities],
  };
  if (joining.invitation) message.invitation = joining.invitation;
  return message;
}
