/**
 * The round reports of the training board: the server's round history read defensively (older
 * records without a rule), each rule in plain words, each participant's share and badges, this
 * browser's row first and marked; reading it bounded, one request at a time, failures in words.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  newRoundReports,
  parseRounds,
  refreshRoundReports,
  reportRounds,
  ruleSummary,
  shareText,
} from "../src/app/composables/roundReports";

/** A record as `GET /api/tasks/{id}/rounds` sends it (`RoundRecord.to_json`). */
function record(round: number, aggregation: Record<string, unknown> | undefined, participants: unknown[]): unknown {
  return {
    round,
    contributors: participants.length,
    num_samples: 100,
    digest: "ab",
    duration_s: 1.5,
    closed_at: 1_700_000_000,
    metrics: {},
    participants,
    ...(aggregation ? { aggregation } : {}),
  };
}

function who(name: string, kind: string, share: number, extra: Record<string, unknown> = {}): unknown {
  return { name, kind, num_samples: 50, share, selected: true, clipped: false, score: null, ...extra };
}

describe("a rule in plain words", () => {
  it("names each known rule with its settings", () => {
    expect(ruleSummary({ rule: "mean", max_share: 0.5 })).toBe("Average, no one above 50%");
    expect(ruleSummary({ rule: "mean", max_share: 1 })).toBe("Average, weighted by examples");
    expect(ruleSummary({ rule: "mean", secure: true, clip: 1, weight_cap: 1024 })).toBe(
      "Added up securely: the server saw only the total, each participant counting for up to 1024 examples",
    );
    expect(ruleSummary({ rule: "mean", secure: true, aborted: "only 2 masked inputs arrived" })).toMatch(/^Not combined: too few/);
    expect(ruleSummary({ rule: "median" })).toBe("Median");
    expect(ruleSummary({ rule: "median", bucket_size: 2 })).toBe("Median, in groups of 2");
    expect(ruleSummary({ rule: "trimmed_mean", beta: 0.2, bucket_size: 1 })).toBe(
      "Trimmed average, 20% left out at each end",
    );
    expect(ruleSummary({ rule: "trimmed_mean", beta: 0 })).toBe("Trimmed average, nothing left out");
    expect(ruleSummary({ rule: "krum", f: 2, bucket_size: 1 })).toBe("Krum, up to 2 dishonest");
    expect(ruleSummary({ rule: "multi_krum", f: 1, m: 3 })).toBe("Multi-Krum, up to 1 dishonest, best 3 kept");
    expect(ruleSummary({ rule: "multi_krum", f: 1, m: null })).toBe("Multi-Krum, up to 1 dishonest");
    expect(ruleSummary({ rule: "centered_clipping", tau: 10, iterations: 1, momentum: 0.9 })).toBe(
      "Centred clipping, each update's pull limited to 10",
    );
    expect(ruleSummary({ rule: "cosine_trust", min_cosine: 0, reference: "recent_steps", fallback: false })).toBe("Trust by direction");
    expect(ruleSummary({ rule: "cosine_trust", min_cosine: 0.2, reference: "median", fallback: false })).toBe(
      "Trust by direction, agreement above 0.2 needed, compared with the middle update (no earlier step)",
    );
    expect(ruleSummary({ rule: "cosine_trust", min_cosine: 0, reference: "recent_steps", fallback: true })).toBe(
      "Trust by direction, fewer than half went the model's way: the median was used",
    );
  });

  it("names a rule it does not know with its settings, and says when none was recorded", () => {
    expect(ruleSummary({ rule: "geometric_median", eps: 0.001, max_iter: null })).toBe(
      "Geometric median, eps 0.001, max iter automatic",
    );
    expect(ruleSummary({})).toBe("Rule not recorded");
    expect(ruleSummary(undefined)).toBe("Rule not recorded");
  });
});

describe("the rounds' reports", () => {
  it("keep the last 5 rounds, newest first, older records included", () => {
    const body = Array.from({ length: 8 }, (_, r) => record(r, r < 5 ? undefined : { rule: "median" }, [who("a", "python", 1)]));
    const rounds = parseRounds(body);
    expect(rounds.map((r) => r.round)).toEqual([7, 6, 5, 4, 3]);
    expect(rounds[4]?.aggregation).toEqual({});
    expect(parseRounds({ error: "nope" })).toEqual([]);
    expect(parseRounds([null, { round: -1 }, { round: "2" }, record(1, undefined, ["bad", who("b", "python", 1)])])).toHaveLength(1);
  });

  it("show each share as a percent with its badges, this browser first and marked", () => {
    const rounds = parseRounds([
      record(2, { rule: "mean", max_share: 0.5 }, [
        who("python-1", "python", 0.5, { clipped: true }),
        who("browser-abc12", "browser", 0.3333333),
        who("python-2", "python", 0.1666667),
        who("python-3", "python", 0, { selected: false }),
      ]),
    ]);
    const [round] = reportRounds(rounds, { name: "browser-abc12", kind: "browser" });
    expect(round?.round).toBe(3); // counted from 1, as "trained for 3 rounds"
    expect(round?.rule).toBe("Average, no one above 50%");
    expect(round?.rows.map((r) => [r.name, r.kind, r.you, r.share, r.notUsed, r.limited])).toEqual([
      ["You", "", true, "33%", false, false],
      ["python-1", "Python", false, "50%", false, true],
      ["python-2", "Python", false, "17%", false, false],
      ["python-3", "Python", false, "0%", true, false],
    ]);
  });

  it("mark nobody when this browser is unknown or took no part, and list at most a few", () => {
    const many = Array.from({ length: 12 }, (_, i) => who(`p${i}`, "python", 1 / 12));
    const [round] = reportRounds(parseRounds([record(0, { rule: "median" }, many)]), null, 8);
    expect(round?.rows).toHaveLength(8);
    expect(round?.more).toBe(4);
    expect(round?.rows.some((r) => r.you)).toBe(false);
    // a Python participant with the browser's name is not this browser
    const [other] = reportRounds(parseRounds([record(0, {}, [who("me", "python", 1)])]), { name: "me", kind: "browser" });
    expect(other?.rows[0]?.you).toBe(false);
    expect(other?.rule).toBe("Rule not recorded");
  });

  it("write slivers and whole shares readably", () => {
    expect([shareText(0), shareText(0.004), shareText(0.005), shareText(1)]).toEqual(["0%", "<1%", "1%", "100%"]);
  });
});

describe("reading the reports", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  function stubServer(answer: (init: RequestInit) => Promise<Response>): { calls: string[] } {
    const calls: string[] = [];
    vi.stubGlobal("window", { location: { origin: "http://disco.test" } });
    vi.stubGlobal("fetch", (url: string, init: RequestInit) => {
      calls.push(url);
      return answer(init);
    });
    return { calls };
  }

  it("reads the history into the state, and says plainly when the server does not answer", async () => {
    let up = true;
    const { calls } = stubServer(async () => {
      if (!up) throw new TypeError("Failed to fetch");
      return new Response(JSON.stringify([record(0, { rule: "median" }, [who("a", "python", 1)])]));
    });
    const state = newRoundReports();
    await refreshRoundReports(state, "my task");
    expect(calls).toEqual(["http://disco.test/api/tasks/my%20task/rounds?last=5"]);
    expect([state.read, state.error, state.rounds.length]).toEqual([true, null, 1]);
    up = false;
    await refreshRoundReports(state, "my task");
    expect(state.error).toBe("The server did not answer, so the last rounds cannot be shown just now.");
    expect(state.rounds).toHaveLength(1); // what was read stays
  });

  it("asks one at a time: a round closing meanwhile makes it ask once more", async () => {
    const pending: ((r: Response) => void)[] = [];
    const { calls } = stubServer(() => new Promise<Response>((resolve) => pending.push(resolve)));
    const state = newRoundReports();
    const first = refreshRoundReports(state, "t");
    await refreshRoundReports(state, "t"); // returns at once: one read is under way
    await refreshRoundReports(state, "t");
    expect(calls).toHaveLength(1);
    pending.shift()?.(new Response("[]"));
    await vi.waitFor(() => expect(pending).toHaveLength(1));
    pending.shift()?.(new Response(JSON.stringify([record(4, { rule: "median" }, [])])));
    await first;
    expect(calls).toHaveLength(2);
    expect(state.rounds.map((r) => r.round)).toEqual([4]);
  });

  it("gives up after its time limit", async () => {
    // a server that never answers: only the time limit ends the request
    stubServer(
      (init) =>
        new Promise<Response>((_resolve, reject) => {
          init.signal?.addEventListener("abort", () => reject(init.signal?.reason));
        }),
    );
    const state = newRoundReports();
    await refreshRoundReports(state, "t", 50);
    expect(state.error).toContain("did not answer");
    expect(state.read).toBe(false);
  });
});
