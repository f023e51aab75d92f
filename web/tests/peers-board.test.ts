/**
 * Training directly with peers, the parts of the app that need no browser: which tasks the
 * browser can train with others, the plain words of the task page and cards, and how the peer's
 * events move the training board (phases, the round's peers and their connections).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  ICE_SERVERS_KEY,
  applyPeerEvent,
  boardPhase,
  iceServers,
  peerKindText,
  peerName,
  peerStateText,
  roundPeersText,
} from "../src/app/composables/peers";
import {
  DIRECT_NOTE,
  canTrainTogether,
  privacyShort,
  privacyText,
  schemeNote,
  schemeText,
  togetherRefusal,
} from "../src/app/composables/plain";
import { keptText, type KeptModel } from "../src/app/composables/kept";
import type { Board } from "../src/app/composables/session";
import type { PeerClientEvent } from "../src/core/decentralized/peer";
import type { AggregationConfig } from "../src/core/aggregationTask";
import type { Task } from "../src/core/task";
import { Weights } from "../src/core/weights";

const catalog = JSON.parse(readFileSync(new URL("./fixtures/catalog.json", import.meta.url), "utf8")) as { task: Task }[];
const federated = catalog.find((c) => c.task.training.scheme === "federated")?.task as Task;
const withScheme = (scheme: Task["training"]["scheme"], aggregation: AggregationConfig = { rule: "mean", max_share: 0.5 }): Task => ({
  ...federated,
  training: { ...federated.training, scheme, aggregation },
});

function board(): Board {
  return {
    mode: "together",
    phase: "preparing",
    message: "",
    problem: null,
    round: 0,
    rounds: 3,
    roundsBefore: 0,
    epoch: 0,
    epochs: 1,
    part: null,
    batch: 0,
    batches: 0,
    participants: null,
    minParticipants: 2,
    attempt: 0,
    reconnecting: false,
    sharedRound: null,
    waitUntil: null,
    sharedRoundAtJoin: null,
    peers: [],
    roundPeers: null,
    history: [],
    log: [],
  };
}

describe("which tasks the browser trains with others", () => {
  it("trains federated tasks, and decentralized ones combined with the mean, with others", () => {
    expect(canTrainTogether(federated)).toBe(true);
    expect(canTrainTogether(withScheme("decentralized"))).toBe(true);
    expect(canTrainTogether(withScheme("local"))).toBe(false);
    const median = withScheme("decentralized", { rule: "median", bucket_size: 1 });
    expect(canTrainTogether(median)).toBe(false);
    expect(togetherRefusal(median)).toBe("This task combines with median, which the browser cannot do yet; join it with disco train.");
    expect(togetherRefusal(withScheme("decentralized"))).toBe(null);
    expect(togetherRefusal(federated)).toBe(null);
  });

  it("trains a federated task with secure aggregation with others, and says what protects the updates", () => {
    const secure: Task = {
      ...federated,
      training: { ...federated.training, secure_aggregation: { clip: 1, weight_cap: 1024, threshold: null } },
    };
    expect(canTrainTogether(secure)).toBe(true);
    expect(togetherRefusal(secure)).toBe(null);
    expect(privacyText(secure)).toMatch(/^The server adds up everyone's updates without seeing any one of them/);
    expect(privacyShort(secure)).toBe("updates added up unseen");
    expect(privacyShort(federated)).toBe("files stay on your device");
    expect(privacyText(federated)).not.toMatch(/adds up/);
    const peers = withScheme("decentralized");
    const securePeers: Task = { ...peers, training: { ...peers.training, secure_aggregation: secure.training.secure_aggregation } };
    expect(canTrainTogether(securePeers)).toBe(true);
    expect(privacyText(securePeers)).toMatch(/^Each participant adds up everyone's updates without seeing any one of them/);
    expect(privacyShort(securePeers)).toBe("updates added up unseen");
  });

  it("says that the server keeps no model after the initial one, and no longer that the browser trains alone", () => {
    const task = withScheme("decentralized");
    expect(DIRECT_NOTE).toBe("The server keeps no model of this task after the initial one: models go directly between participants.");
    expect(schemeNote(task)).toBe(DIRECT_NOTE);
    expect(schemeText(task)).not.toMatch(/alone/);
    expect(schemeNote(withScheme("decentralized", { rule: "krum", f: 1, bucket_size: 1 }))).toMatch(
      /^This task combines with krum, which the browser cannot do yet; join it with disco train\. Here you can only train alone for now\.$/,
    );
    expect(schemeNote(federated)).toBe(null);
  });

  it("says which model is kept without crediting the server with a model it never had", () => {
    const k: KeptModel = {
      kind: "global", mode: "together", ended: "stopped", rounds: 1, sharedRounds: 1, continued: null,
      accuracy: null, loss: null, validationSamples: 0,
    };
    expect(keptText(k, 2)).toMatch(/^You keep the last model the server sent: everyone's updates combined over 1 of 2 rounds/);
    expect(keptText(k, 2, true)).toMatch(/^You keep the last model your browser combined with the other participants/);
    expect(keptText({ ...k, kind: "local" }, 2, true)).toMatch(/^No updates had been combined yet/);
  });
});

describe("the training board of a peer", () => {
  it("maps the peer's states to the board's phases", () => {
    expect(boardPhase("connecting_peers")).toBe("connecting_peers");
    expect(boardPhase("exchanging")).toBe("exchanging");
    expect(boardPhase("combining")).toBe("combining");
    expect(boardPhase("waiting")).toBe("waiting_for_round");
    expect(boardPhase("waiting_for_participants")).toBe("waiting_for_participants");
    expect(boardPhase("done")).toBe(null);
    expect(boardPhase("error")).toBe(null);
  });

  it("shows each peer by name, kind and connection in plain words", () => {
    expect(peerStateText("connected")).toBe("connected");
    expect(peerStateText("connecting")).toBe("connecting…");
    expect(peerStateText("failed")).toBe("could not connect");
    expect(peerKindText("python")).toBe("disco train");
    expect(peerKindText("browser")).toBe("browser");
    expect(peerName({ name: "  " })).toBe("someone");
    expect(peerName({ name: "Ada" })).toBe("Ada");
  });

  it("sums up the round's peers", () => {
    const b = board();
    expect(roundPeersText(b)).toBe(null);
    b.roundPeers = 3;
    b.peers = [
      { id: "a", name: "A", kind: "python", state: "connected" },
      { id: "b", name: "B", kind: "browser", state: "connecting" },
    ];
    expect(roundPeersText(b)).toBe("This round: you and 2 others — 1 connected, 1 connecting");
    b.roundPeers = 20; // sparse: exchanges with its neighbours only
    b.peers[1]!.state = "failed";
    expect(roundPeersText(b)).toBe("This round: you and 2 others (20 take part; you exchange with 2) — 1 connected, 1 could not connect");
    b.roundPeers = 1;
    b.peers = [];
    expect(roundPeersText(b)).toBe("This round: you alone");
  });

  it("follows the peer's events: phases, counters, the round's peers, models and logs", () => {
    const b = board();
    const logs: string[] = [];
    const models: [number, Weights][] = [];
    let sent = 0;
    const hooks = { log: (m: string) => logs.push(m), onGlobal: (r: number, w: Weights) => models.push([r, w]), onSent: () => (sent += 1) };
    const w = new Weights(["w"], [[1]], [new Float32Array([1])]);
    const events: PeerClientEvent[] = [
      { kind: "status", state: "waiting", round: 4, participants: 3, minParticipants: 2, members: null, waitUntil: 1234 },
      { kind: "status", state: "connecting_peers", round: 4, participants: 3, minParticipants: 2, members: 3, waitUntil: null },
      {
        kind: "peers", round: 4, topology: "all_to_all", members: 3,
        peers: [
          { id: "a", name: "A", kind: "python", state: "connecting" },
          { id: "b", name: "B", kind: "browser", state: "connected" },
        ],
      },
      { kind: "model", round: 4, weights: w },
      { kind: "sent", round: 4, numSamples: 10 },
      { kind: "log", level: "info", message: "hello" },
    ];
    applyPeerEvent(b, events[0]!, hooks);
    expect([b.phase, b.participants, b.waitUntil, b.roundPeers]).toEqual(["waiting_for_round", 3, 1234, null]);
    for (const e of events.slice(1)) applyPeerEvent(b, e, hooks);
    expect(b.phase).toBe("connecting_peers");
    expect(b.roundPeers).toBe(3);
    expect(b.peers.map((p) => [p.name, p.state])).toEqual([
      ["A", "connecting"],
      ["B", "connected"],
    ]);
    expect(b.sharedRound).toBe(4);
    expect(models).toEqual([[4, w]]);
    expect(sent).toBe(1);
    expect(logs).toEqual(["hello"]);
    applyPeerEvent(b, { kind: "round", round: 5, contributors: 3, weights: w, digest: "d", timing: {} as never }, hooks);
    expect(b.sharedRound).toBe(5);
    applyPeerEvent(b, { kind: "status", state: "waiting", round: 5, participants: 3, minParticipants: 2, members: null, waitUntil: null }, hooks);
    expect(b.peers).toEqual([]); // between rounds: nobody to show
    applyPeerEvent(b, { kind: "status", state: "done", round: 5, participants: 3, minParticipants: 2, members: null, waitUntil: null }, hooks);
    expect(b.phase).toBe("waiting_for_round"); // the session sets the end itself
  });

  it("takes STUN/TURN servers from the browser's storage, none by default", () => {
    const store = new Map<string, string>();
    const fake = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => store.set(k, v) };
    const saved = (globalThis as { localStorage?: unknown }).localStorage;
    (globalThis as { localStorage?: unknown }).localStorage = fake;
    try {
      expect(iceServers()).toEqual([]);
      store.set(ICE_SERVERS_KEY, JSON.stringify([{ urls: "stun:stun.example.org" }]));
      expect(iceServers()).toEqual([{ urls: "stun:stun.example.org" }]);
      store.set(ICE_SERVERS_KEY, "not json");
      expect(iceServers()).toEqual([]);
    } finally {
      (globalThis as { localStorage?: unknown }).localStorage = saved;
    }
  });
});
