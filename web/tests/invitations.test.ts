/**
 * Invitations in the web app (app/composables/invitations.ts, api.ts): a join link or token read
 * from whatever a person pastes, kept per task in the browser's storage, and presented as
 * `Authorization: Bearer` on every REST call about its task (the admin token of this tab
 * otherwise); the task list merged over every invitation held.
 */

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  ApiError,
  createInvitation,
  getModelFile,
  getRounds,
  getStatus,
  getTask,
  listInvitations,
  listTasks,
  revokeInvitation,
  serverAccess,
} from "../src/app/composables/api";
import {
  ADMIN_TOKEN_KEY,
  INVITATIONS_KEY,
  adminToken,
  forgetInvitation,
  invitationFor,
  invitationStatus,
  keepAdminToken,
  keepInvitation,
  parseInvitation,
  storedInvitations,
  taskHeaders,
  type KeyValueStore,
} from "../src/app/composables/invitations";

const TOKEN = "dinv.abcdefgh23.Qx7-_rT3kLmN0pQaZ9yW2vB4cD6eF8gHj1k2L3m4N5o";
const OTHER = "dinv.zzzzzzzz77.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const ORIGIN = "http://127.0.0.1:8000";
const LINK = `${ORIGIN}/#/join/mnist?invitation=${TOKEN}`;

/** A store backed by a map, as localStorage/sessionStorage behave. */
function memoryStore(): KeyValueStore & { map: Map<string, string> } {
  const map = new Map<string, string>();
  return {
    map,
    getItem: (k) => map.get(k) ?? null,
    setItem: (k, v) => void map.set(k, String(v)),
    removeItem: (k) => void map.delete(k),
  };
}

describe("a pasted invitation", () => {
  it("is read from the join link, the bare token, or a link in a message", () => {
    expect(parseInvitation(LINK)).toEqual({ token: TOKEN, taskId: "mnist", origin: ORIGIN });
    expect(parseInvitation(`  ${TOKEN}\n`)).toEqual({ token: TOKEN, taskId: null, origin: null });
    expect(parseInvitation(`Join us: <${LINK}> (valid 7 days)`)).toEqual({ token: TOKEN, taskId: "mnist", origin: ORIGIN });
    expect(parseInvitation(`"${LINK}&utm=mail"`)?.token).toBe(TOKEN);
    expect(parseInvitation(`https://disco.example.org/#/join/ward-4_x?invitation=${TOKEN}`)).toEqual({
      token: TOKEN,
      taskId: "ward-4_x",
      origin: "https://disco.example.org",
    });
  });

  it("is read when the mail program encoded the link", () => {
    const encoded = `${ORIGIN}/#/join/mnist?invitation%3D${TOKEN.replace(/\./g, "%2E")}`;
    expect(parseInvitation(encoded)).toEqual({ token: TOKEN, taskId: "mnist", origin: ORIGIN });
  });

  it("is not found in a link cut short, a longer code, or other text", () => {
    expect(parseInvitation(LINK.slice(0, -1))).toBeNull();
    expect(parseInvitation(`${LINK}x`)).toBeNull();
    expect(parseInvitation(`${ORIGIN}/#/join/mnist`)).toBeNull();
    expect(parseInvitation("dinv.ABCDEFGH23.Qx7-_rT3kLmN0pQaZ9yW2vB4cD6eF8gHj1k2L3m4N5o")).toBeNull(); // id is lowercase base32
    expect(parseInvitation("web-test-admin-token")).toBeNull();
    expect(parseInvitation("")).toBeNull();
  });

  it("names no task when the link's task id is not one", () => {
    expect(parseInvitation(`${ORIGIN}/#/join/Not%20A%20Task?invitation=${TOKEN}`)?.taskId).toBeNull();
  });
});

describe("invitations kept in the browser", () => {
  it("are kept per task, replaced, and forgotten", () => {
    const store = memoryStore();
    expect(invitationFor("mnist", store)).toBeNull();
    expect(keepInvitation("mnist", TOKEN, store)).toBe(true);
    expect(keepInvitation("titanic", OTHER, store)).toBe(true);
    expect(invitationFor("mnist", store)).toBe(TOKEN);
    expect(JSON.parse(store.map.get(INVITATIONS_KEY) ?? "")).toEqual({ mnist: TOKEN, titanic: OTHER });
    expect(keepInvitation("mnist", OTHER, store)).toBe(true);
    expect(invitationFor("mnist", store)).toBe(OTHER);
    forgetInvitation("mnist", store);
    expect(storedInvitations(store)).toEqual({ titanic: OTHER });
    forgetInvitation("titanic", store);
    expect(store.map.has(INVITATIONS_KEY)).toBe(false);
  });

  it("refuse what is no token or no task id, and skip unreadable entries", () => {
    const store = memoryStore();
    expect(keepInvitation("mnist", "not-a-token", store)).toBe(false);
    expect(keepInvitation("../x", TOKEN, store)).toBe(false);
    expect(store.map.size).toBe(0);
    store.setItem(INVITATIONS_KEY, JSON.stringify({ mnist: TOKEN, bad: 42, titanic: "dinv.short", "Bad Id": TOKEN }));
    expect(storedInvitations(store)).toEqual({ mnist: TOKEN });
    store.setItem(INVITATIONS_KEY, "not json");
    expect(storedInvitations(store)).toEqual({});
    expect(invitationFor("mnist", store)).toBeNull();
  });

  it("last for the page when the browser's storage is disabled", () => {
    const broken: KeyValueStore = {
      getItem: () => {
        throw new Error("SecurityError");
      },
      setItem: () => {
        throw new Error("SecurityError");
      },
      removeItem: () => {
        throw new Error("SecurityError");
      },
    };
    expect(keepInvitation("mnist", TOKEN, broken)).toBe(true);
    expect(invitationFor("mnist", broken)).toBe(TOKEN);
    forgetInvitation("mnist", broken);
    expect(invitationFor("mnist", broken)).toBeNull();
  });

  it("the admin token lasts for the tab (sessionStorage), trimmed", () => {
    const store = memoryStore();
    expect(adminToken(store)).toBe("");
    keepAdminToken("  secret  ", store);
    expect(store.map.get(ADMIN_TOKEN_KEY)).toBe("secret");
    expect(adminToken(store)).toBe("secret");
    keepAdminToken("", store);
    expect(store.map.has(ADMIN_TOKEN_KEY)).toBe(false);
  });

  it("a task's requests carry its invitation, else the admin token, else nothing", () => {
    const local = memoryStore();
    const session = memoryStore();
    expect(taskHeaders("mnist", { local, session })).toEqual({});
    keepAdminToken("secret", session);
    expect(taskHeaders("mnist", { local, session })).toEqual({ Authorization: "Bearer secret" });
    keepInvitation("mnist", TOKEN, local);
    expect(taskHeaders("mnist", { local, session })).toEqual({ Authorization: `Bearer ${TOKEN}` });
    expect(taskHeaders("titanic", { local, session })).toEqual({ Authorization: "Bearer secret" });
  });
});

describe("an invitation's state", () => {
  const now = Date.parse("2026-12-03T09:00:00Z");
  it("is revoked, expired or active", () => {
    expect(invitationStatus({ expires_at: "2026-12-10T09:00:00Z", revoked_at: null }, now)).toBe("active");
    expect(invitationStatus({ expires_at: "2026-12-03T09:00:00Z", revoked_at: null }, now)).toBe("expired");
    expect(invitationStatus({ expires_at: "2026-12-10T09:00:00Z", revoked_at: "2026-12-02T09:00:00Z" }, now)).toBe("revoked");
    expect(invitationStatus({ expires_at: "2026-12-01T09:00:00Z", revoked_at: "2026-11-30T09:00:00Z" }, now)).toBe("revoked");
  });
});

// -- the REST calls ------------------------------------------------------------------------------

interface Call {
  url: string;
  method: string;
  auth: string | null;
  body: string | null;
}

/** The answer of the fake server to one call: status and JSON body. */
type Answer = (call: Call) => { status: number; body?: unknown; headers?: Record<string, string> };

describe("REST calls", () => {
  const saved: Record<string, unknown> = {};
  let calls: Call[];
  let local: ReturnType<typeof memoryStore>;
  let session: ReturnType<typeof memoryStore>;
  let answer: Answer;
  const g = globalThis as Record<string, unknown>;

  beforeEach(() => {
    for (const k of ["fetch", "window", "localStorage", "sessionStorage"]) saved[k] = g[k];
    calls = [];
    local = memoryStore();
    session = memoryStore();
    answer = () => ({ status: 200, body: {} });
    g["window"] = { location: { origin: ORIGIN } };
    g["localStorage"] = local;
    g["sessionStorage"] = session;
    g["fetch"] = async (url: string, init: RequestInit = {}): Promise<Response> => {
      const headers = (init.headers ?? {}) as Record<string, string>;
      const call = { url, method: init.method ?? "GET", auth: headers["Authorization"] ?? null, body: (init.body as string) ?? null };
      calls.push(call);
      const { status, body, headers: extra } = answer(call);
      return new Response(body instanceof Uint8Array ? new Blob([body as Uint8Array<ArrayBuffer>]) : JSON.stringify(body ?? {}), {
        status,
        headers: { "Content-Type": "application/json", ...extra },
      });
    };
  });
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) g[k] = v;
  });

  const task = (id: string) => ({ id, display: { title: id } });

  it("about a task carry the invitation this browser holds for it", async () => {
    keepInvitation("mnist", TOKEN);
    answer = (call) =>
      call.url.endsWith("/status")
        ? { status: 200, body: { round: 2, participants: 1, min_participants: 2 } }
        : call.url.endsWith("/model")
          ? { status: 200, body: new Uint8Array([1, 2]), headers: { "X-Disco-Round": "2", "X-Disco-Digest": "d" } }
          : { status: 200, body: call.url.includes("/rounds") ? [] : task("mnist") };
    await getTask("mnist");
    await getStatus("mnist");
    await getRounds("mnist", undefined, 5);
    expect((await getModelFile("mnist")).round).toBe(2);
    await getTask("titanic"); // none held for it
    expect(calls.map((c) => [c.url.replace(ORIGIN, ""), c.auth])).toEqual([
      ["/api/tasks/mnist", `Bearer ${TOKEN}`],
      ["/api/tasks/mnist/status", `Bearer ${TOKEN}`],
      ["/api/tasks/mnist/rounds?last=5", `Bearer ${TOKEN}`],
      ["/api/tasks/mnist/model", `Bearer ${TOKEN}`],
      ["/api/tasks/titanic", null],
    ]);
  });

  it("say which refusal a private server answered", async () => {
    keepInvitation("mnist", TOKEN);
    answer = (call) =>
      call.auth === null
        ? { status: 401, body: { error: "this server is private: an invitation is needed", code: "invitation_required" } }
        : { status: 403, body: { error: "this invitation was revoked", code: "invitation_refused" } };
    await expect(getTask("mnist")).rejects.toMatchObject({ status: 403, code: "invitation_refused", message: "this invitation was revoked" });
    await expect(getTask("titanic")).rejects.toMatchObject({ status: 401, code: "invitation_required" });
  });

  it("list the public tasks without any header", async () => {
    answer = () => ({ status: 200, body: [task("mnist"), task("titanic")] });
    expect((await listTasks()).map((t) => t.id)).toEqual(["mnist", "titanic"]);
    expect(calls).toEqual([{ url: `${ORIGIN}/api/tasks`, method: "GET", auth: null, body: null }]);
  });

  it("list the tasks of every invitation held, merged, leaving out a refused one", async () => {
    keepInvitation("mnist", TOKEN);
    keepInvitation("titanic", OTHER);
    keepInvitation("cifar10", "dinv.revokedxx2.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB".replace("x", "a").replace("x", "b"));
    answer = (call) =>
      call.auth === `Bearer ${TOKEN}`
        ? { status: 200, body: [task("mnist")] }
        : call.auth === `Bearer ${OTHER}`
          ? { status: 200, body: [task("titanic"), task("mnist")] }
          : { status: 403, body: { error: "revoked", code: "invitation_refused" } };
    expect((await listTasks()).map((t) => t.id)).toEqual(["mnist", "titanic"]);
    expect(calls.map((c) => c.auth)).toHaveLength(3);
  });

  it("list nothing when every invitation held is refused: the refusal says so", async () => {
    keepInvitation("mnist", TOKEN);
    answer = (call) =>
      call.auth === null
        ? { status: 401, body: { error: "private", code: "invitation_required" } }
        : { status: 403, body: { error: "expired", code: "invitation_refused" } };
    const error = await listTasks().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 403, code: "invitation_refused" });
  });

  it("list every task with the admin token of this tab, as a participant when it is wrong", async () => {
    keepAdminToken("secret");
    keepInvitation("mnist", TOKEN);
    answer = (call) =>
      call.auth === "Bearer secret" ? { status: 200, body: [task("mnist"), task("titanic")] } : { status: 200, body: [task("mnist")] };
    expect((await listTasks()).map((t) => t.id)).toEqual(["mnist", "titanic"]);
    keepAdminToken("wrong");
    answer = (call) =>
      call.auth === "Bearer wrong" ? { status: 403, body: { error: "wrong token" } } : { status: 200, body: [task("mnist")] };
    expect((await listTasks()).map((t) => t.id)).toEqual(["mnist"]);
    expect(calls.map((c) => c.auth)).toEqual(["Bearer secret", "Bearer wrong", `Bearer ${TOKEN}`]);
  });

  it("read whether the server is private", async () => {
    answer = () => ({ status: 200, body: { status: "ok", access: "invitation" } });
    expect(await serverAccess()).toBe("invitation");
    answer = () => ({ status: 200, body: { status: "ok" } }); // an older server
    expect(await serverAccess()).toBe("unknown");
  });

  it("of the admin make, list and revoke invitations with the admin token", async () => {
    keepInvitation("mnist", TOKEN); // a participant's invitation never stands in for the admin token
    const made = {
      id: "abcdefgh23", task_id: "mnist", label: "Ward 4", created_at: "2026-12-03T09:00:00Z",
      expires_at: "2026-12-10T09:00:00Z", revoked_at: null, uses: 0, last_used_at: null, token: TOKEN, link: LINK,
    };
    answer = (call) =>
      call.method === "POST"
        ? { status: 201, body: made }
        : call.method === "DELETE"
          ? { status: 200, body: { ...made, revoked_at: "2026-12-04T09:00:00Z" } }
          : { status: 200, body: [] };
    expect((await createInvitation("mnist", { label: " Ward 4 ", expiresInS: 86_400 }, "secret")).link).toBe(LINK);
    await createInvitation("mnist", { label: "  " }, "secret");
    await listInvitations("mnist", "secret");
    expect((await revokeInvitation("abcdefgh23", "secret")).revoked_at).not.toBeNull();
    expect(calls.map((c) => [c.method, c.url.replace(ORIGIN, ""), c.auth, c.body])).toEqual([
      ["POST", "/api/tasks/mnist/invitations", "Bearer secret", JSON.stringify({ label: "Ward 4", expires_in_s: 86_400 })],
      ["POST", "/api/tasks/mnist/invitations", "Bearer secret", "{}"],
      ["GET", "/api/tasks/mnist/invitations", "Bearer secret", null],
      ["DELETE", "/api/invitations/abcdefgh23", "Bearer secret", null],
    ]);
  });

  it("of the admin fail with the server's status when the admin token is wrong", async () => {
    answer = () => ({ status: 401, body: { error: "needs the admin token" } });
    await expect(listInvitations("mnist", "")).rejects.toMatchObject({ status: 401 });
    expect(calls[0]?.auth).toBeNull();
  });
});
