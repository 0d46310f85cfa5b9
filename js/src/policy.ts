/** The buyer's spending policy, checked before anything is signed. */
import { RECEIPT_PROGRAM, sameNetwork } from "./constants.js";
import type { Offer } from "./wire.js";

export type Units = bigint | string | number;

/**
 * An amount of the offer's token: base units, or `{ decimal: "0.05" }`, read with the
 * mint's decimals as the client knows them (its table, the caller's `mints`, or the
 * ledger), never the server's word for them.
 */
export type Limit = Units | { decimal: string };

/**
 * The cap on one payment when the policy sets no maxPerRequest and not noLimit: 1.00 of
 * the offer's token (1 USDC), as the stock x402 client caps at $1. A hostile 402 would
 * otherwise be signed for whatever it asks.
 */
export const DEFAULT_MAX_PER_REQUEST: Limit = Object.freeze({ decimal: "1" });

export interface SpendingPolicy {
  /** Highest amount of one payment; default DEFAULT_MAX_PER_REQUEST (1.00 of the token). */
  maxPerRequest?: Limit;
  /** Lifts the default cap: true pays any amount per request (maxPerRequest, budget still apply). */
  noLimit?: boolean;
  /** Total of all payments made with this policy object, in base units (any mint). */
  budget?: Units;
  /** Allowed payTo addresses; absent: any. */
  payees?: readonly string[];
  /** Allowed mints (offer.asset); absent: any. */
  mints?: readonly string[];
  /**
   * Allowed networks, CAIP-2 ("solana:EtWT...") or v1 names ("solana-devnet"); absent:
   * any, except that an `exact` offer needs its network listed here when no rpcUrl lets
   * the client check it.
   */
  networks?: readonly string[];
  /** Allowed receipt programs; default: [RECEIPT_PROGRAM]. */
  programs?: readonly string[];
}

/** What the client knows itself about an offer, for the policy: never the server's word. */
export interface TrustedFacts {
  /** The decimals of offer.asset; null when unknown. */
  decimals?: number | null;
  /** The network (CAIP-2) of the client's own ledger, from its genesis hash; null when there is none. */
  ledgerNetwork?: string | null;
}

const spent = new WeakMap<object, bigint>();

/** Base units of a base-units value; null when it is not a whole number of them. */
function units(value: Units): bigint | null {
  if (typeof value === "bigint") return value;
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? BigInt(value) : null;
  return /^\d+$/.test(value) ? BigInt(value) : null;
}

/** Parses a decimal amount ("0.05", "2") exactly into base units; null when it is not one. */
export function parseUnits(text: string, decimals: number): bigint | null {
  const match = /^(\d+)(?:\.(\d+))?$/.exec(text);
  if (!match) return null;
  const fraction = (match[2] ?? "").replace(/0+$/, "");
  if (fraction.length > decimals) return null;
  return BigInt(match[1]!) * 10n ** BigInt(decimals) + BigInt(fraction.padEnd(decimals, "0") || "0");
}

/** A limit in base units, or why it cannot be had. */
function limitUnits(limit: Limit, decimals: number | null | undefined): bigint | string {
  if (typeof limit === "object" && limit !== null) {
    // A server could claim 18 decimals for USDC and get a million million times the limit.
    if (decimals === null || decimals === undefined) return "the mint's decimals are unknown to this client";
    return parseUnits(limit.decimal, decimals) ?? `${JSON.stringify(limit.decimal)} is not an amount of this token`;
  }
  return units(limit) ?? `${String(limit)} is not a whole number of base units`;
}

/** The per-request limit in force: the policy's own, the default cap, or none (noLimit). */
function perRequestLimit(policy: SpendingPolicy): { limit: Limit; name: string } | null {
  if (policy.maxPerRequest !== undefined) return { limit: policy.maxPerRequest, name: "maxPerRequest" };
  if (policy.noLimit === true) return null;
  return { limit: DEFAULT_MAX_PER_REQUEST, name: "the default cap (1.00 of the token; set maxPerRequest or noLimit)" };
}

/** Whether checking `policy` needs the mints' decimals. */
export function needsDecimals(policy: SpendingPolicy | undefined): boolean {
  const limit = perRequestLimit(policy ?? {})?.limit;
  return typeof limit === "object" && limit !== null;
}

/** Base units committed under `policy`: payments signed, and those being signed (reserved). */
export function spentUnder(policy: SpendingPolicy): bigint {
  return spent.get(policy) ?? 0n;
}

/** Counts `amount` against the policy's budget (+) or gives it back (-). */
export function recordSpending(policy: SpendingPolicy | undefined, amount: bigint): void {
  if (!policy) return;
  const next = spentUnder(policy) + amount;
  spent.set(policy, next < 0n ? 0n : next);
}

/**
 * Reserves `amount` of the budget for a payment about to be signed, as the Rust client
 * does under its lock. Call it in the same synchronous step as the check that allowed
 * the payment (policyRefusal, chooseOffer), with no await between: JavaScript runs one
 * step at a time, so no other call sharing `policy` can pass the check on the same
 * budget meanwhile. Kept once the payment is signed; releaseSpending if it is not.
 */
export function reserveSpending(policy: SpendingPolicy | undefined, amount: bigint): void {
  recordSpending(policy, amount);
}

/** Gives back a reservation whose payment was never signed (nothing left the client). */
export function releaseSpending(policy: SpendingPolicy | undefined, amount: bigint): void {
  recordSpending(policy, -amount);
}

function amountRefusal(offer: Offer, p: SpendingPolicy, policy: SpendingPolicy | undefined, facts: TrustedFacts): string | null {
  const cap = perRequestLimit(p);
  if (cap) {
    const max = limitUnits(cap.limit, facts.decimals);
    if (typeof max === "string") return `${cap.name} cannot be applied to mint ${offer.asset}: ${max} (give it in base units)`;
    if (offer.amount > max) return `amount ${offer.amount} is above ${cap.name}: ${max} base units`;
  }
  if (p.budget !== undefined && policy) {
    const budget = units(p.budget);
    if (budget === null) return `budget ${String(p.budget)} is not a whole number of base units`;
    const left = budget - spentUnder(policy);
    if (offer.amount > left) return `amount ${offer.amount} is above the budget left (${left < 0n ? 0n : left})`;
  }
  return null;
}

/** Why `policy` forbids paying `offer`, or null when it allows it. */
export function policyRefusal(offer: Offer, policy: SpendingPolicy | undefined, facts: TrustedFacts = {}): string | null {
  const p = policy ?? {};
  const amount = amountRefusal(offer, p, policy, facts);
  if (amount) return amount;
  if (p.payees && !p.payees.includes(offer.payTo)) return `payee ${offer.payTo} is not allowed`;
  if (p.mints && !p.mints.includes(offer.asset)) return `mint ${offer.asset} is not allowed`;
  if (p.networks && !p.networks.some((n) => sameNetwork(n, offer.network))) {
    return `network ${offer.network} is not allowed`;
  }
  // Without a ledger of its own the client cannot tell which cluster an `exact` transfer
  // lands on: only the user's word (networks) stands for the label.
  if (offer.scheme === "exact" && !p.networks && !facts.ledgerNetwork) {
    return `network ${offer.network} cannot be checked without rpcUrl: list it in networks to pay exact offers on it`;
  }
  if (offer.scheme === "receipt") {
    const programs = p.programs ?? [RECEIPT_PROGRAM];
    const program = offer.extra.programId;
    if (typeof program !== "string" || !programs.includes(program)) {
      return `receipt program ${String(program)} is not allowed`;
    }
  }
  return null;
}
