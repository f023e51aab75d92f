/**
 * The peer's connectors and exchange: who opens a connection, one attempt per peer shared by its
 * callers, WebRTC offers and answers sent only once ICE gathering is complete (on a fake
 * `RTCPeerConnection`: Node has no WebRTC), and the peer frames (models asked and served,
 * frames a peer may not send).
 */

import { describe, expect, it } from "vitest";
import {
  MemoryConnector,
  MemoryHub,
  RtcConnector,
  type OpeningDataChannel,
  type PeerConnectionFactory,
  type PeerConnectionLike,
} from "../src/core/decentralized/connector";
import { PeerExchange } from "../src/core/decentralized/exchange";
import { compareIds, sortedIds } from "../src/core/decentralized/notify";
import { DiscoError } from "../src/core/errors";
import { decode, encode, type Signal } from "../src/core/protocol";
import { ChannelClosed, type Channel } from "../src/core/transport/channel";
import { memoryPair } from "../src/core/transport/memory";
import { WaitTimeout } from "../src/core/transport/wait";
import { Weights } from "../src/core/weights";

const model = new Weights(["w"], [[3]], [new Float32Array([1, 2, 3])]);
const nothing = (): void => undefined;

describe("peer ids", () => {
  it("order as Python orders strings (by code points)", () => {
    expect(compareIds("a", "b")).toBeLessThan(0);
    expect(compareIds("ab", "a")).toBeGreaterThan(0);
    expect(compareIds("x", "x")).toBe(0);
    // U+FF5E sorts before U+1F600 by code points, after it by UTF-16 units
    expect(compareIds("\uff5e", "\u{1f600}")).toBeLessThan(0);
    expect(["\u{1f600}", "\uff5e"].sort()).toEqual(["\u{1f600}", "\uff5e"]);
    expect(sortedIds(["\u{1f600}", "\uff5e", "a"])).toEqual(["a", "\uff5e", "\u{1f600}"]);
  });
});

describe("MemoryConnector", () => {
  it("has the smaller id open, shares one attempt between callers, and hands both ends over", async () => {
    const hub = new MemoryHub();
    const seen: string[] = [];
    const a = new MemoryConnector("a", (peer) => seen.push(`a:${peer}`), hub);
    const b = new MemoryConnector("b", (peer) => seen.push(`b:${peer}`), hub);
    const waiting = b.connect("a", 2_000); // "b" > "a": b waits for a
    expect(b.state("a")).toBe("connecting");
    const [one, two] = await Promise.all([a.connect("b", 2_000), a.connect("b", 2_000)]);
    expect(one).toBe(two);
    const theirs = await waiting;
    expect(seen.sort()).toEqual(["a:b", "b:a"]); // one channel each side
    expect(a.openPeers()).toEqual(["b"]);
    expect(a.state("b")).toBe("connected");
    await one.send(new Uint8Array([7]), 1_000);
    expect([...(await theirs.receive(1_000))]).toEqual([7]);
    expect(await a.connect("b", 10)).toBe(one); // reused
    a.close();
    b.close();
  });

  it("opens from the larger id when asked to initiate, times out otherwise, and reports failures", async () => {
    const hub = new MemoryHub();
    const a = new MemoryConnector("a", nothing, hub);
    const b = new MemoryConnector("b", nothing, hub);
    await expect(b.connect("a", 50)).rejects.toBeInstanceOf(WaitTimeout); // a never opens
    const channel = await b.connect("a", 1_000, { initiate: true });
    expect(a.channel("b")).not.toBe(null);
    channel.close();
    expect(b.state("a")).toBe("failed");
    hub.unreachable.add("c");
    const c = new MemoryConnector("c", nothing, hub);
    await expect(a.connect("c", 1_000)).rejects.toBeInstanceOf(ChannelClosed);
    expect(a.state("c")).toBe("failed");
    await expect(a.connect("a", 10)).rejects.toThrow(/itself/);
    a.close();
    b.close();
    c.close();
  });
});

// -- a fake WebRTC ------------------------------------------------------------------------------

type Listener = (event: { readonly data?: unknown; readonly candidate?: unknown; readonly channel?: OpeningDataChannel }) => void;

class Events {
  private readonly listeners = new Map<string, Listener[]>();
  addEventListener(type: string, listener: Listener): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }
  fire(type: string, event: Parameters<Listener>[0] = {}): void {
    for (const l of this.listeners.get(type) ?? []) l(event);
  }
}

class FakeDataChannel extends Events implements OpeningDataChannel {
  binaryType = "blob";
  readyState = "connecting";
  bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  other: FakeDataChannel | null = null;
  send(data: ArrayBuffer | ArrayBufferView): void {
    if (this.readyState !== "open") throw new Error("not open");
    const copy = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice() : new Uint8Array(data.slice(0));
    const to = this.other;
    setTimeout(() => to?.fire("message", { data: copy.buffer }));
  }
  open(): void {
    this.readyState = "open";
    this.fire("open");
  }
  close(): void {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.fire("close");
    this.other?.close();
  }
}

/** Peer connections that "connect" when an answer carrying candidates meets its offer. */
class FakeNetwork {
  readonly connections: FakePeerConnection[] = [];
  /** Descriptions set as remote that had no candidate in them (trickle would be needed). */
  readonly withoutCandidates: string[] = [];
  gatherMs = 20;
  /** Connections fail instead of opening. */
  fail = false;

  get Impl(): PeerConnectionFactory {
    const network = this;
    return class extends FakePeerConnection {
      constructor() {
        super(network);
      }
    } as unknown as PeerConnectionFactory;
  }
}

class FakePeerConnection extends Events implements PeerConnectionLike {
  readonly id: number;
  localDescription: { sdp: string } | null = null;
  iceGatheringState = "new";
  connectionState = "new";
  readonly sctp = { maxMessageSize: 65_536 };
  dc: FakeDataChannel | null = null;

  constructor(private readonly network: FakeNetwork) {
    super();
    this.id = network.connections.length;
    network.connections.push(this);
  }
  createDataChannel(): OpeningDataChannel {
    this.dc = new FakeDataChannel();
    return this.dc;
  }
  async createOffer(): Promise<{ type: string; sdp: string }> {
    return { type: "offer", sdp: `offer ${this.id}` };
  }
  async createAnswer(): Promise<{ type: string; sdp: string }> {
    return { type: "answer", sdp: `answer ${this.id}` };
  }
  async setLocalDescription(description?: { type: string; sdp?: string }): Promise<void> {
    const sdp = description?.sdp ?? "";
    this.localDescription = { sdp };
    this.iceGatheringState = "gathering";
    setTimeout(() => {
      this.fire("icecandidate", { candidate: { candidate: "host" } }); // trickled, ignored
      this.localDescription = { sdp: `${sdp}\na=candidate:1 1 udp 1 192.0.2.1 9 typ host` };
      this.iceGatheringState = "complete";
      this.fire("icegatheringstatechange");
      this.fire("icecandidate", { candidate: null });
    }, this.network.gatherMs);
  }
  async setRemoteDescription(description: { type: "offer" | "answer"; sdp: string }): Promise<void> {
    if (!description.sdp.includes("a=candidate")) this.network.withoutCandidates.push(description.sdp);
    if (description.type !== "answer") return;
    const answerer = this.network.connections[Number(/answer (\d+)/.exec(description.sdp)?.[1])] as FakePeerConnection;
    setTimeout(() => {
      if (this.network.fail) {
        for (const pc of [this, answerer]) {
          pc.connectionState = "failed";
          pc.fire("connectionstatechange");
        }
        return;
      }
      const mine = this.dc as FakeDataChannel;
      const theirs = new FakeDataChannel();
      mine.other = theirs;
      theirs.other = mine;
      for (const pc of [this, answerer]) {
        pc.connectionState = "connected";
        pc.fire("connectionstatechange");
      }
      answerer.fire("datachannel", { channel: theirs });
      mine.open();
      theirs.open();
    });
  }
  close(): void {
    this.connectionState = "closed";
    this.dc?.close();
  }
}

/** Two RTC connectors signalling through a fake relay (the server). */
function rtcPair(network: FakeNetwork): { a: RtcConnector; b: RtcConnector; signals: Signal[]; accepted: Channel[] } {
  const signals: Signal[] = [];
  const accepted: Channel[] = [];
  const connectors = new Map<string, RtcConnector>();
  const relay = (from: string) => (signal: Signal) => {
    signals.push(signal);
    setTimeout(() => connectors.get(signal.peer)?.onSignal({ ...signal, peer: from }));
  };
  const a = new RtcConnector("a", nothing, relay("a"), { PeerConnection: network.Impl, openTimeoutMs: 1_000 });
  const b = new RtcConnector("b", (_, channel) => accepted.push(channel), relay("b"), { PeerConnection: network.Impl, openTimeoutMs: 1_000 });
  connectors.set("a", a);
  connectors.set("b", b);
  return { a, b, signals, accepted };
}

describe("RtcConnector", () => {
  it("sends the offer and the answer only once every ICE candidate is gathered, and opens a channel", async () => {
    const network = new FakeNetwork();
    const { a, b, signals, accepted } = rtcPair(network);
    const channel = await a.connect("b", 2_000);
    await expect.poll(() => accepted.length).toBe(1);
    expect(signals.map((s) => [s.peer, s.kind])).toEqual([
      ["b", "offer"],
      ["a", "answer"],
    ]);
    expect(signals.every((s) => s.data.includes("a=candidate"))).toBe(true);
    expect(network.withoutCandidates).toEqual([]);
    expect(b.state("a")).toBe("connected");
    await channel.send(new Uint8Array([1, 2, 3]), 1_000);
    expect([...(await (accepted[0] as Channel).receive(1_000))]).toEqual([1, 2, 3]);
    b.onSignal({ type: "signal", peer: "a", kind: "candidate", data: "candidate:1" }); // ignored
    a.close();
    b.close();
  });

  it("reports a connection that fails, and tries again on the next connect", async () => {
    const network = new FakeNetwork();
    network.fail = true;
    const { a, b } = rtcPair(network);
    await expect(a.connect("b", 2_000)).rejects.toBeInstanceOf(ChannelClosed);
    expect(a.state("b")).toBe("failed");
    await expect.poll(() => b.state("a")).toBe("failed");
    network.fail = false;
    await a.connect("b", 2_000);
    expect(a.state("b")).toBe("connected");
    a.close();
    b.close();
  });

  it("refuses to start without WebRTC", () => {
    const saved = (globalThis as { RTCPeerConnection?: unknown }).RTCPeerConnection;
    delete (globalThis as { RTCPeerConnection?: unknown }).RTCPeerConnection;
    expect(() => new RtcConnector("a", nothing, nothing)).toThrow(/no WebRTC/);
    if (saved !== undefined) (globalThis as { RTCPeerConnection?: unknown }).RTCPeerConnection = saved;
  });
});

describe("PeerExchange", () => {
  it("serves the model of a round it holds, refuses one it does not, and checks what it fetches", async () => {
    const mine = new PeerExchange(model, nothing);
    const theirs = new PeerExchange(model, nothing);
    const [x, y] = memoryPair();
    mine.watch("b", x);
    theirs.watch("a", y);
    theirs.models.set(4, model);
    expect((await mine.fetch("b", x, 4, 1_000)).equals(model)).toBe(true);
    await expect(mine.fetch("b", x, 5, 1_000)).rejects.toThrow(/refused: this peer holds no model of round 5 \(it holds \[4\]\)/);
    expect(mine.traffic.bytesDown).toBeGreaterThan(12);
    expect(theirs.traffic.bytesUp).toBe(mine.traffic.bytesDown);
    mine.close();
    theirs.close();
  });

  it("refuses a model whose digest does not match it", async () => {
    const mine = new PeerExchange(model, nothing);
    const [x, y] = memoryPair();
    mine.watch("b", x);
    const fetching = mine.fetch("b", x, 1, 1_000);
    const request = decode(await y.receive(1_000));
    expect(request).toEqual({ type: "model_request", round: 1 });
    await y.send(encode({ type: "model", round: 1, weights: model, digest: "f".repeat(64) }), 1_000);
    await expect(fetching).rejects.toBeInstanceOf(DiscoError);
    await expect(mine.fetch("b", x, 1, 30)).rejects.toBeInstanceOf(WaitTimeout);
    mine.close();
  });

  it("closes a channel with 1003 on a frame a peer may not send", async () => {
    const mine = new PeerExchange(model, nothing);
    const [x, y] = memoryPair();
    mine.watch("b", x);
    await y.send(encode({ type: "exchange", round: 0, peers: [] }), 1_000);
    await expect(y.receive(1_000)).rejects.toMatchObject({ code: 1003 });
    const [p, q] = memoryPair();
    mine.watch("c", p);
    await q.send(new Uint8Array([0xc1]), 1_000);
    await expect(q.receive(1_000)).rejects.toMatchObject({ code: 1003 });
    mine.close();
  });
});
