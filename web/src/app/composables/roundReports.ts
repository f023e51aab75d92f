// How the server combined the last rounds, for the training board: each round's rule in plain
// words ("Average, no one above 50%") and each participant's share of it, with "not used" (the
// rule left the update out) and "limited" (its share capped or its update clipped). Read from
// `GET /api/tasks/{id}/rounds` after each round closes: one request at a time, each bounded, a
// failure said plainly and never in training's way.
import { toRaw } from "vue";
import { ApiError, getRounds } from "./api";
import { ruleLabel } from "./taskChoices";

/** Rounds the board shows, newest first. */
export const REPORTED_ROUNDS = 5;
/** Participants listed per round (the person's own row always among them). */
export const LISTED_PARTICIPANTS = 8;
/** Longest wait for the round history, in ms. */
export const REPORTS_TIMEOUT_MS = 10_000;

/** One participant's update in a closed round, as the server recorded it. */
export interface Contribution {
  name: string;
  kind: string;
  numSamples: number;
  /** Its share of the combined update, 0 to 1 (0 when not used). */
  share: number;
  selected: boolean;
  clipped: boolean;
}

/** One closed round: `round` as on the server (0: the round that made the first shared model). */
export interface RoundReport {
  round: number;
  /** The rule and its settings (`{"rule": "mean", "max_share": 0.5}`); {} in older records. */
  aggregation: Record<string, unknown>;
  participants: Contribution[];
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function finite(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

function contribution(value: unknown): Contribution | null {
  if (!isObject(value)) return null;
  const share = finite(value.share) ? Math.min(1, Math.max(0, value.share)) : 0;
  return {
    name: typeof value.name === "string" ? value.name : "",
    kind: typeof value.kind === "string" ? value.kind : "",
    numSamples: finite(value.num_samples) ? value.num_samples : 0,
    share,
    selected: value.selected !== false,
    clipped: value.clipped === true,
  };
}

/** The server's round history (JSON) as the last `last` rounds, newest first; bad entries left out. */
export function parseRounds(body: unknown, last = REPORTED_ROUNDS): RoundReport[] {
  if (!Array.isArray(body)) return [];
  const rounds: RoundReport[] = [];
  for (const r of body) {
    if (!isObject(r) || !finite(r.round) || !Number.isInteger(r.round) || r.round < 0) continue;
    rounds.push({
      round: r.round,
      aggregation: isObject(r.aggregation) ? r.aggregation : {},
      participants: (Array.isArray(r.participants) ? r.participants : [])
        .map(contribution)
        .filter((c): c is Contribution => c !== null),
    });
  }
  return rounds.sort((a, b) => b.round - a.round).slice(0, last);
}

/** 0.5 → "50%", 0.125 → "12.5%". */
function percentOf(x: number): string {
  return `${Number((100 * x).toFixed(1))}%`;
}

/** A participant's share: "42%", "<1%" for a sliver, "0%". */
export function shareText(share: number): string {
  if (share > 0 && share < 0.005) return "<1%";
  return `${Math.round(100 * share)}%`;
}

/**
 * A round's rule in plain words: "Average, no one above 50%", "Median", "Trimmed average, 10%
 * left out at each end", "Krum, up to 2 dishonest", …; a rule this page does not know is named
 * with its settings; "Rule not recorded" for rounds recorded before rules were kept.
 */
const num0 = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

export function ruleSummary(aggregation: unknown): string {
  if (!isObject(aggregation) || typeof aggregation.rule !== "string" || !aggregation.rule) {
    return "Rule not recorded";
  }
  const a = aggregation;
  const rule = a.rule as string;
  if (a.secure === true) {
    if (typeof a.aborted === "string") return "Not combined: too few participants were left to add up the updates securely; the model stayed as it was";
    const cap = num0(a.weight_cap);
    return `Added up securely: the server saw only the total, each participant counting for up to ${cap ?? "?"} examples`;
  }
  const num = (key: string): number | null => (finite(a[key]) ? a[key] : null);
  const dishonest = (f: number | null): string => (f === null ? "" : `up to ${f} dishonest`);
  let parts: string[];
  switch (rule) {
    case "mean": {
      const cap = num("max_share");
      parts = [cap === null || cap >= 1 ? "Average, weighted by examples" : `Average, no one above ${percentOf(cap)}`];
      break;
    }
    case "median":
      parts = ["Median"];
      break;
    case "trimmed_mean": {
      const beta = num("beta");
      const left = beta === null ? "" : beta === 0 ? "nothing left out" : `${percentOf(beta)} left out at each end`;
      parts = [ruleLabel(rule), left];
      break;
    }
    case "krum":
      parts = [ruleLabel(rule), dishonest(num("f"))];
      break;
    case "multi_krum": {
      const m = num("m");
      parts = [ruleLabel(rule), dishonest(num("f")), m === null ? "" : `best ${m} kept`];
      break;
    }
    case "centered_clipping": {
      const tau = num("tau");
      parts = [ruleLabel(rule), tau === null ? "" : `each update's pull limited to ${tau}`];
      break;
    }
    case "cosine_trust": {
      const least = num("min_cosine");
      parts = [
        ruleLabel(rule),
        least === null || least <= 0 ? "" : `agreement above ${least} needed`,
        a.reference === "median" ? "compared with the middle update (no earlier step)" : "",
        a.fallback === true ? "fewer than half went the model's way: the median was used" : "",
      ];
      break;
    }
    default: {
      const settings = Object.entries(a)
        .filter(([key, v]) => key !== "rule" && (finite(v) || v === null || typeof v === "boolean"))
        .map(([key, v]) => `${key.replace(/_/g, " ")} ${v === null ? "automatic" : String(v)}`);
      return [ruleLabel(rule), ...settings].join(", ");
    }
  }
  const bucket = num("bucket_size");
  if (bucket !== null && bucket > 1) parts.push(`in groups of ${bucket}`);
  return parts.filter(Boolean).join(", ");
}

/** Who this browser is in the records: the name and kind it joined with. */
export interface Me {
  name: string;
  kind: string;
}

/** One participant's line in a round's report. */
export interface ReportRow {
  key: string;
  /** "You" for this browser, else the participant's name ("someone" when it gave none). */
  name: string;
  /** "browser", "Python", …; "" for this browser. */
  kind: string;
  you: boolean;
  share: string;
  /** The share as a number, 0 to 1 (for its bar). */
  fraction: number;
  notUsed: boolean;
  limited: boolean;
}

/** One round as the board shows it: counted from 1, its rule in words, its participants. */
export interface ReportRound {
  round: number;
  rule: string;
  rows: ReportRow[];
  /** Participants not listed (beyond `LISTED_PARTICIPANTS`). */
  more: number;
}

const KINDS: Record<string, string> = { browser: "browser", python: "Python" };

/** The rounds' lines for the board: this browser's row first and marked, then the others. */
export function reportRounds(rounds: readonly RoundReport[], me: Me | null, listed = LISTED_PARTICIPANTS): ReportRound[] {
  return rounds.map((r) => {
    const rows = r.participants.map((p, i): ReportRow => {
      const you = me !== null && p.name === me.name && p.kind === me.kind;
      return {
        key: `${i}`,
        name: you ? "You" : p.name.trim() || "someone",
        kind: you ? "" : (KINDS[p.kind] ?? p.kind),
        you,
        share: shareText(p.selected ? p.share : 0),
        fraction: p.selected ? p.share : 0,
        notUsed: !p.selected,
        limited: p.clipped,
      };
    });
    const ordered = [...rows.filter((row) => row.you), ...rows.filter((row) => !row.you)];
    return {
      round: r.round + 1,
      rule: ruleSummary(r.aggregation),
      rows: ordered.slice(0, listed),
      more: Math.max(0, ordered.length - listed),
    };
  });
}

// -- reading them from the server -------------------------------------------------------------

/** The board's round reports: the last rounds read, and why the last read failed (or null). */
export interface RoundReports {
  rounds: RoundReport[];
  error: string | null;
  /** Whether the server answered at least once. */
  read: boolean;
}

export function newRoundReports(): RoundReports {
  return { rounds: [], error: null, read: false };
}

/** What went wrong reading the history, in plain words (training is not affected). */
function problemText(e: unknown): string {
  if (e instanceof ApiError && e.unreachable) {
    return "The server did not answer, so the last rounds cannot be shown just now.";
  }
  const why = e instanceof Error ? e.message.replace(/\.?$/, "") : String(e);
  return `The last rounds cannot be shown just now (${why}).`;
}

const reading = new WeakMap<object, { again: boolean }>();

/**
 * Read the last rounds of `taskId` into `state`. One read at a time per state: a call while one
 * runs makes it read once more when it ends (a round closed meanwhile). Never throws.
 */
export async function refreshRoundReports(
  state: RoundReports,
  taskId: string,
  timeoutMs = REPORTS_TIMEOUT_MS,
): Promise<void> {
  const key = toRaw(state);
  const running = reading.get(key);
  if (running) {
    running.again = true;
    return;
  }
  const entry = { again: false };
  reading.set(key, entry);
  try {
    do {
      entry.again = false;
      try {
        // only the rounds shown: a long session's history stays on the server
        const body = await getRounds(taskId, AbortSignal.timeout(timeoutMs), REPORTED_ROUNDS);
        state.rounds = parseRounds(body);
        state.error = null;
        state.read = true;
      } catch (e) {
        state.error = problemText(e);
      }
    } while (entry.again);
  } finally {
    reading.delete(key);
  }
}
