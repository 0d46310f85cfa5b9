/** The buyer's spending policy, checked before anything is signed. */
import { RECEIPT_PROGRAM, walletChain } from "./constants.js";
import type { Offer } from "./wire.js";

export type Units = bigint | string | number;

export interface SpendingPolicy {
  /** Highest amount of one payment, in base units. */
  maxPerRequest?: Units;
  /** Total of all payments made with this policy object, in base units (any mint). */
  budget?: Units;
  /** Allowed payTo addresses; absent: any. */
  payees?: readonly string[];
  /** Allowed mints (offer.asset); absent: any. */
  mints?: readonly string[];
  /** Allowed networks, CAIP-2 ("solana:EtWT...") or v1 names ("solana-devnet"); absent: any. */
  networks?: readonly string[];
  /** Allowed receipt programs; default: [RECEIPT_PROGRAM]. */
  programs?: readonly string[];
}

const spent = new WeakMap<object, bigint>();

function units(value: Units): bigint {
  return typeof value === "bigint" ? value : BigInt(value);
}

/** Base units already committed under `policy` (payments sent and not refused). */
export function spentUnder(policy: SpendingPolicy): bigint {
  return spent.get(policy) ?? 0n;
}

/** Counts `amount` against the policy's budget (+) or gives it back (-). */
export function recordSpending(policy: SpendingPolicy | undefined, amount: bigint): void {
  if (!policy) return;
  const next = spentUnder(policy) + amount;
  spent.set(policy, next < 0n ? 0n : next);
}

function sameNetwork(a: string, b: string): boolean {
  if (a === b) return true;
  const ca = walletChain(a);
  return ca !== "solana:localnet" && ca === walletChain(b);
}

/** Why `policy` forbids paying `offer`, or null when it allows it. */
export function policyRefusal(offer: Offer, policy: SpendingPolicy | undefined): string | null {
  const p = policy ?? {};
  if (p.maxPerRequest !== undefined && offer.amount > units(p.maxPerRequest)) {
    return `amount ${offer.amount} is above maxPerRequest ${units(p.maxPerRequest)}`;
  }
  if (p.budget !== undefined && policy) {
    const left = units(p.budget) - spentUnder(policy);
    if (offer.amount > left) return `amount ${offer.amount} is above the budget left (${left < 0n ? 0n : left})`;
  }
  if (p.payees && !p.payees.includes(offer.payTo)) return `payee ${offer.payTo} is not allowed`;
  if (p.mints && !p.mints.includes(offer.asset)) return `mint ${offer.asset} is not allowed`;
  if (p.networks && !p.networks.some((n) => sameNetwork(n, offer.network))) {
    return `network ${offer.network} is not allowed`;
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
