/** Choosing an offer and building the signed payment header for it. */
import { getBase64EncodedWireTransaction, type Transaction } from "@solana/kit";

import { isSolanaNetwork, KNOWN_MINTS, type MintInfo } from "./constants.js";
import { X402Error, type OfferRefusal } from "./errors.js";
import { policyRefusal, type SpendingPolicy } from "./policy.js";
import { signerAddress, signWith, type PaymentSigner } from "./signer.js";
import { buildExactTransaction, buildReceiptTransaction, receiptTerms } from "./transactions.js";
import { paymentHeader, type Challenge, type Offer } from "./wire.js";

export const DEFAULT_SCHEMES: readonly string[] = ["receipt", "exact"];

/** Where the facts the seller must not dictate come from. */
export interface PaymentSources {
  /** Trusted mint facts by mint address; checked before KNOWN_MINTS. */
  mints?: Readonly<Record<string, MintInfo>>;
  /** Reads a mint's facts from a ledger (used when neither table knows it). */
  getMint?: (mint: string) => Promise<MintInfo>;
  /** A recent blockhash, for `exact` offers without extra.recentBlockhash. */
  getLatestBlockhash?: () => Promise<string>;
}

/** A signed payment, ready to send (and to resend after a 503). */
export interface Payment {
  /** "PAYMENT-SIGNATURE" (v2) or "X-PAYMENT" (v1). */
  headerName: string;
  headerValue: string;
  version: 1 | 2;
  scheme: string;
  network: string;
  amount: bigint;
  asset: string;
  payTo: string;
  payer: string;
  /** The scheme payload: {transaction: base64 wire transaction}. */
  payload: { transaction: string };
  offer: Offer;
}

/** Why this client cannot pay `offer` at all (policy aside), or null. */
export function supportRefusal(offer: Offer, sources: PaymentSources = {}, now = Date.now()): string | null {
  if (!isSolanaNetwork(offer.network)) return `network ${offer.network} is not Solana`;
  if (offer.amount === 0n) return "amount is zero";
  if (offer.scheme === "receipt") {
    const terms = receiptTerms(offer);
    if (typeof terms === "string") return terms;
    if (terms.expiresAt * 1000n < BigInt(now)) return "the offer has expired";
    return null;
  }
  if (offer.scheme === "exact") {
    if (typeof offer.extra.feePayer !== "string") return "no extra.feePayer";
    if (typeof offer.extra.recentBlockhash !== "string" && !sources.getLatestBlockhash) {
      return "no extra.recentBlockhash and no rpcUrl to fetch one";
    }
    if (!sources.mints?.[offer.asset] && !KNOWN_MINTS[offer.asset] && !sources.getMint) {
      return `mint ${offer.asset} is unknown (pass rpcUrl or mints)`;
    }
    return null;
  }
  return `scheme ${offer.scheme} is not supported`;
}

/**
 * The first offer, in `schemes` order, that this client can pay and `policy` allows.
 * Throws X402Error "policy" when only the policy stood in the way, else "no_payable_offer".
 */
export function chooseOffer(
  challenge: Challenge,
  policy: SpendingPolicy | undefined,
  schemes: readonly string[] = DEFAULT_SCHEMES,
  sources: PaymentSources = {},
): Offer {
  const rank = (o: Offer) => (schemes.includes(o.scheme) ? schemes.indexOf(o.scheme) : schemes.length);
  const ordered = challenge.offers.map((o, i) => ({ o, i })).sort((a, b) => rank(a.o) - rank(b.o) || a.i - b.i);
  const refusals: OfferRefusal[] = [];
  for (const { o } of ordered) {
    if (!schemes.includes(o.scheme)) {
      refusals.push({ offer: o, reason: `scheme ${o.scheme} is not among ${schemes.join(", ")}`, policy: false });
      continue;
    }
    const unsupported = supportRefusal(o, sources);
    if (unsupported) {
      refusals.push({ offer: o, reason: unsupported, policy: false });
      continue;
    }
    const forbidden = policyRefusal(o, policy);
    if (forbidden) {
      refusals.push({ offer: o, reason: forbidden, policy: true });
      continue;
    }
    return o;
  }
  const lines = refusals.map((r) => `${r.offer.scheme} ${r.offer.amount} ${r.offer.asset} on ${r.offer.network}: ${r.reason}`);
  for (const m of challenge.malformed) lines.push(`malformed offer: ${m.reason}`);
  const byPolicy = refusals.length > 0 && refusals.some((r) => r.policy);
  const code = byPolicy ? "policy" : "no_payable_offer";
  const head = byPolicy ? "The spending policy forbids every payable offer" : "No offer can be paid";
  throw new X402Error(code, `${head}${lines.length ? ":\n- " + lines.join("\n- ") : " (the challenge has no offers)"}`, {
    offers: refusals,
  });
}

async function mintInfo(asset: string, sources: PaymentSources): Promise<MintInfo> {
  const known = sources.mints?.[asset] ?? KNOWN_MINTS[asset];
  if (known) return known;
  if (sources.getMint) return sources.getMint(asset);
  throw new Error(`mint ${asset} is unknown`);
}

/** Builds the transaction for `offer`, has `signer` sign it, and returns the payment header. */
export async function createPayment(
  challenge: Pick<Challenge, "version" | "resource">,
  offer: Offer,
  signer: PaymentSigner,
  sources: PaymentSources = {},
): Promise<Payment> {
  const payer = signerAddress(signer);
  let unsigned: Transaction;
  try {
    if (offer.scheme === "receipt") {
      unsigned = await buildReceiptTransaction(offer, payer);
    } else if (offer.scheme === "exact") {
      const recent = offer.extra.recentBlockhash;
      const blockhash = typeof recent === "string" ? recent : await sources.getLatestBlockhash!();
      unsigned = await buildExactTransaction(offer, { payer, mint: await mintInfo(offer.asset, sources), blockhash });
    } else {
      throw new Error(`scheme ${offer.scheme} is not supported`);
    }
  } catch (error) {
    if (error instanceof X402Error) throw error;
    throw new X402Error("no_payable_offer", `Cannot build the ${offer.scheme} payment: ${(error as Error).message}`, {
      cause: error,
      offers: [{ offer, reason: (error as Error).message, policy: false }],
    });
  }
  const signed = await signWith(signer, unsigned, offer.network);
  const payload = { transaction: getBase64EncodedWireTransaction(signed) as string };
  const header = paymentHeader(challenge, offer, payload);
  return {
    headerName: header.name,
    headerValue: header.value,
    version: challenge.version,
    scheme: offer.scheme,
    network: offer.network,
    amount: offer.amount,
    asset: offer.asset,
    payTo: offer.payTo,
    payer,
    payload,
    offer,
  };
}
