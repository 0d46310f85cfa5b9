/** The buyer's spending policy, checked before anything is signed. */
import { knownStablecoinDecimals, RECEIPT_PROGRAM, sameNetwork } from "./constants.js";
import type { Offer } from "./wire.js";

export type Units = bigint | string | number;

/**
 * An amount of the offer's token: base units; `{ decimal: "0.05" }` of any token, read
 * with the mint's decimals as the client knows them (its table, the caller's `mints`, or
 * the ledger), never the server's word for them; or `{ stablecoin: "1" }`, of a
 * stablecoin of the built-in table (KNOWN_MINTS) only: an offer in any other mint is
 * refused under it.
 */
export type Limit = Units | { decimal: string } | { stablecoin: string };

/**
 * The cap on one payment when the policy sets no maxPerRequest and not noLimit: 1.00 of
 * a known stablecoin (1 USDC), as the stock x402 client caps at $1. A hostile 402 would
 * otherwise be signed for whatever it asks; and since the seller picks the mint, an
 * offer in any other token (1 wSOL is no dollar) is refused unless the caller sets
 * maxPerRequest or noLimit.
 */
export const DEFAULT_MAX_PER_REQUEST: Limit = Object.freeze({ stablecoin: "1" });

/**
 * The cap on one `batch-settlement` deposit (a channel's `open` or `top_up`) when the
 * policy sets no maxDeposit and not noLimit: 5.00 of a known stablecoin. The seller
 * suggests a deposit (extra.minDeposit); the client escrows at most this, and refuses an
 * offer whose single request costs more. An offer in any other token is refused unless
 * the caller sets maxDeposit or noLimit.
 */
export const DEFAULT_MAX_DEPOSIT: Limit = Object.freeze({ stablecoin: "5" });

export interface SpendingPolicy {
  /**
   * Highest amount of one payment; default DEFAULT_MAX_PER_REQUEST (1.00 of a known
   * stablecoin, refusing any other token). Set it (base units, or `{ decimal }` with
   * rpcUrl or mints for the decimals) or noLimit to pay in another token.
   */
  maxPerRequest?: Limit;
  /**
   * Highest `batch-settlement` deposit escrowed at once (an `open`, or a `top_up` when the
   * deposit runs out); default DEFAULT_MAX_DEPOSIT (5.00 of a known stablecoin, refusing
   * any other token). The deposit is the seller's extra.minDeposit (at least one
   * request's price), clamped to this; an offer whose one request costs more is refused.
   * What is escrowed and not charged comes back when the channel closes.
   */
  maxDeposit?: Limit;
  /**
   * The longest a `batch-settlement` deposit may wait after the buyer asks to close, should
   * the seller vanish (the offer's extra.withdrawDelay, which x402 allows up to 30 days),
   * in seconds; default DEFAULT_MAX_WITHDRAW_DELAY (a day).
   */
  maxWithdrawDelay?: number;
  /**
   * Lifts the default caps: true pays any amount per request and escrows the seller's
   * suggested deposit whatever it is (maxPerRequest, maxDeposit, budget still apply).
   */
  noLimit?: boolean;
  /** Total of all payments made with this policy object, in base units (any mint). */
  budget?: Units;
  /** Allowed payTo addresses; absent: any. */
  payees?: readonly string[];
  /** Allowed mints (offer.asset); absent: any. */
  mints?: readonly string[];
  /**
   * Allowed networks, CAIP-2 ("solana:EtWT...") or v1 names ("solana-devnet"); absent:
   * any, except that without rpcUrl to check it, an offer signed over the seller's
   * blockhash (a sponsored receipt, or exact) needs its network listed here.
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

/** The `batch-settlement` scheme's name (batch.ts holds the scheme). */
const BATCH_SETTLEMENT = "batch-settlement";

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

/** A limit in base units for `offer`'s mint, or why it cannot be had. */
function limitUnits(limit: Limit, offer: Offer, decimals: number | null | undefined): bigint | string {
  if (typeof limit === "object" && limit !== null) {
    if ("stablecoin" in limit) {
      // The seller picks the mint: 1.00 of a token the ledger knows may be 1 wBTC.
      const known = knownStablecoinDecimals(offer.asset);
      if (known === null) return `mint ${offer.asset} is not a stablecoin this client knows`;
      return parseUnits(limit.stablecoin, known) ?? `${JSON.stringify(limit.stablecoin)} is not an amount of this token`;
    }
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
  return {
    limit: DEFAULT_MAX_PER_REQUEST,
    name: "the default cap (1.00 of a known stablecoin; set maxPerRequest or noLimit)",
  };
}

/** The deposit limit in force: the policy's own, the default cap, or none (noLimit). */
function depositLimit(policy: SpendingPolicy): { limit: Limit; name: string } | null {
  if (policy.maxDeposit !== undefined) return { limit: policy.maxDeposit, name: "maxDeposit" };
  if (policy.noLimit === true) return null;
  return {
    limit: DEFAULT_MAX_DEPOSIT,
    name: "the default deposit cap (5.00 of a known stablecoin; set maxDeposit or noLimit)",
  };
}

/** Whether checking `policy` needs the mints' decimals (a stablecoin limit reads only the built-in table). */
export function needsDecimals(policy: SpendingPolicy | undefined): boolean {
  const isDecimal = (limit: Limit | undefined) => typeof limit === "object" && limit !== null && "decimal" in limit;
  return isDecimal(perRequestLimit(policy ?? {})?.limit) || isDecimal(depositLimit(policy ?? {})?.limit);
}

/**
 * The most one `batch-settlement` deposit of `offer`'s mint may escrow under `policy`,
 * in base units; null when no limit applies (noLimit without maxDeposit); a string says
 * why the limit cannot be applied (a stablecoin limit on another token, unknown decimals).
 */
export function maxDepositUnits(offer: Offer, policy: SpendingPolicy | undefined, facts: TrustedFacts = {}): bigint | null | string {
  const cap = depositLimit(policy ?? {});
  if (!cap) return null;
  const limit = cap.limit;
  if (typeof limit === "object" && limit !== null && "stablecoin" in limit && knownStablecoinDecimals(offer.asset) === null) {
    return (
      `mint ${offer.asset} is not a stablecoin this client knows (USDC), and ${cap.name} applies only to those: ` +
      "to escrow it, set maxDeposit (in its base units, or { decimal } with rpcUrl or mints for its decimals) or noLimit"
    );
  }
  const max = limitUnits(limit, offer, facts.decimals);
  return typeof max === "string" ? `${cap.name} cannot be applied to mint ${offer.asset}: ${max} (give it in base units)` : max;
}

/** Why `policy`'s deposit cap forbids a `batch-settlement` channel for `offer`, or null. */
function depositRefusal(offer: Offer, policy: SpendingPolicy | undefined, facts: TrustedFacts): string | null {
  const max = maxDepositUnits(offer, policy, facts);
  if (typeof max === "string") return max;
  if (max !== null && offer.amount > max) {
    const name = policy?.maxDeposit !== undefined ? "maxDeposit" : "the default deposit cap";
    return `amount ${offer.amount} is above ${name} (${max} base units): a channel could not hold one request`;
  }
  return null;
}

/** The longest withdraw delay a `batch-settlement` deposit is escrowed under by default: a day. */
export const DEFAULT_MAX_WITHDRAW_DELAY = 86_400;

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
    const limit = cap.limit;
    if (typeof limit === "object" && limit !== null && "stablecoin" in limit && knownStablecoinDecimals(offer.asset) === null) {
      return (
        `mint ${offer.asset} is not a stablecoin this client knows (USDC), and ${cap.name} applies only to those: ` +
        "to pay in it, set maxPerRequest (in its base units, or { decimal } with rpcUrl or mints for its decimals) or noLimit"
      );
    }
    const max = limitUnits(limit, offer, facts.decimals);
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
  if (offer.scheme === BATCH_SETTLEMENT) {
    const deposit = depositRefusal(offer, policy, facts);
    if (deposit) return deposit;
  }
  if (p.payees && !p.payees.includes(offer.payTo)) return `payee ${offer.payTo} is not allowed`;
  if (p.mints && !p.mints.includes(offer.asset)) return `mint ${offer.asset} is not allowed`;
  if (p.networks && !p.networks.some((n) => sameNetwork(n, offer.network))) {
    return `network ${offer.network} is not allowed`;
  }
  // Without a ledger of its own the client signs over the seller's blockhash (a receipt
  // offer's always, an exact offer's without rpcUrl) and cannot tell which cluster the
  // payment lands on: only the user's word (networks) stands for the label.
  if (!p.networks && !facts.ledgerNetwork) {
    return `network ${offer.network} cannot be checked without rpcUrl: list it in networks to pay ${offer.scheme} offers on it`;
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
