/** Choosing an offer and building the signed payment header for it. */
import { getBase64EncodedWireTransaction, type Transaction } from "@solana/kit";

import { isSolanaNetwork, KNOWN_MINTS, sameNetwork, type MintInfo } from "./constants.js";
import { X402Error, type OfferRefusal } from "./errors.js";
import { needsDecimals, policyRefusal, type SpendingPolicy } from "./policy.js";
import { memoReference } from "./proof.js";
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
  /** A recent blockhash for `exact` offers: preferred to extra.recentBlockhash. */
  getLatestBlockhash?: () => Promise<string>;
  /** Reads the network (CAIP-2) of the ledger the two above read, from its genesis hash. */
  getLedgerNetwork?: () => Promise<string>;
  /** That network, once read (readLedgerFacts fills it in): every offer must name it. */
  ledgerNetwork?: string;
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
  /**
   * The reference it carries (base58): a receipt offer's, or the one an `exact` Memo
   * holds; null when none. Presenting the payment again proves it (X-Payment-Proof).
   */
  reference: string | null;
  /** The scheme payload: {transaction: base64 wire transaction}. */
  payload: { transaction: string };
  offer: Offer;
}

/**
 * The facts of `asset` the client trusts: the caller's `mints`, else its own table. A
 * caller's entry without a network keeps the table's: the cluster of a known mint is a fact.
 */
export function trustedMint(asset: string, sources: PaymentSources = {}): MintInfo | undefined {
  // Own keys only: an asset named "constructor" is no known mint.
  const known = Object.hasOwn(KNOWN_MINTS, asset) ? KNOWN_MINTS[asset] : undefined;
  const given = sources.mints && Object.hasOwn(sources.mints, asset) ? sources.mints[asset] : undefined;
  if (!given) return known;
  return given.network || !known?.network ? given : { ...given, network: known.network };
}

/**
 * Why `offer`'s network label is not where its money is, as far as the client knows
 * itself, or null: a known mint lives on one cluster, and with rpcUrl every offer (in
 * either scheme, as the Rust client checks) must name the network of the client's ledger:
 * its mints were read there, and an `exact` transfer is signed with its blockhash. A
 * devnet label on mainnet USDC would pass a networks policy and spend real money.
 */
export function networkRefusal(offer: Offer, sources: PaymentSources = {}): string | null {
  const mint = trustedMint(offer.asset, sources);
  if (mint?.network && !sameNetwork(mint.network, offer.network)) {
    return `mint ${offer.asset} is on ${mint.network}, but the offer names ${offer.network}`;
  }
  if (sources.ledgerNetwork && !sameNetwork(sources.ledgerNetwork, offer.network)) {
    return `the offer names ${offer.network}, but rpcUrl is on ${sources.ledgerNetwork}`;
  }
  return null;
}

/** Why this client cannot pay `offer` at all (policy aside), or null. */
export function supportRefusal(offer: Offer, sources: PaymentSources = {}, now = Date.now()): string | null {
  if (!isSolanaNetwork(offer.network)) return `network ${offer.network} is not Solana`;
  if (offer.amount === 0n) return "amount is zero";
  const wrongNetwork = networkRefusal(offer, sources);
  if (wrongNetwork) return wrongNetwork;
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
    if (!trustedMint(offer.asset, sources) && !sources.getMint) {
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
    const facts = { decimals: trustedMint(o.asset, sources)?.decimals ?? null, ledgerNetwork: sources.ledgerNetwork ?? null };
    const forbidden = policyRefusal(o, policy, facts);
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

/** Most mints of one challenge read from the ledger: a challenge cannot make the client read without bound. */
const MAX_MINT_READS = 4;

/**
 * Reads once, before choosing, what the choice needs from the client's own ledger: its
 * network (genesis hash), which every offer must name, whatever the limits; and the
 * facts of offered mints neither table knows (their decimals apply decimal limits;
 * `exact` needs them). Returns `sources` with them filled in; what cannot be read stays
 * unknown, and is refused when it matters (an unread network: as without rpcUrl).
 */
export async function readLedgerFacts(
  challenge: Pick<Challenge, "offers">,
  policy: SpendingPolicy | undefined,
  schemes: readonly string[] = DEFAULT_SCHEMES,
  sources: PaymentSources = {},
): Promise<PaymentSources> {
  const candidates = challenge.offers.filter((o) => schemes.includes(o.scheme) && isSolanaNetwork(o.network));
  const unknown = candidates
    .filter((o) => (o.scheme === "exact" || needsDecimals(policy)) && !trustedMint(o.asset, sources))
    .map((o) => o.asset);
  const toRead = sources.getMint ? [...new Set(unknown)].slice(0, MAX_MINT_READS) : [];
  const filled: PaymentSources = { ...sources };
  if (sources.getLedgerNetwork && !sources.ledgerNetwork && candidates.length) {
    filled.ledgerNetwork = await sources.getLedgerNetwork().catch(() => undefined);
  }
  const read: Record<string, MintInfo> = {};
  await Promise.all(
    toRead.map(async (mint) => {
      try {
        const info = await sources.getMint!(mint);
        // Found on the client's ledger: that is the mint's network.
        read[mint] = filled.ledgerNetwork && !info.network ? { ...info, network: filled.ledgerNetwork } : info;
      } catch {
        // Unknown it stays.
      }
    }),
  );
  if (Object.keys(read).length) filled.mints = { ...read, ...sources.mints };
  return filled;
}

async function mintInfo(asset: string, sources: PaymentSources): Promise<MintInfo> {
  const known = trustedMint(asset, sources);
  if (known) return known;
  if (sources.getMint) return sources.getMint(asset);
  throw new Error(`mint ${asset} is unknown`);
}

/**
 * The blockhash an `exact` payment is signed with: the client's ledger's when it has one
 * (as the Rust client), so the transfer can land only on the cluster whose genesis was
 * checked; else the offer's.
 */
async function exactBlockhash(offer: Offer, sources: PaymentSources): Promise<string> {
  if (sources.getLatestBlockhash) return sources.getLatestBlockhash();
  const recent = offer.extra.recentBlockhash;
  if (typeof recent !== "string") throw new Error("no extra.recentBlockhash and no rpcUrl to fetch one");
  return recent;
}

/** `sources` with its ledger's network read, when the client has a ledger and it is not read yet (either scheme). */
async function withLedgerNetwork(sources: PaymentSources): Promise<PaymentSources> {
  if (sources.ledgerNetwork || !sources.getLedgerNetwork) return sources;
  return { ...sources, ledgerNetwork: await sources.getLedgerNetwork() };
}

/** The reference a payment for `offer` carries, base58, or null. */
function paymentReference(offer: Offer): string | null {
  const { reference, memo } = offer.extra;
  if (offer.scheme === "receipt") return typeof reference === "string" ? reference : null;
  return typeof memo === "string" ? memoReference(memo) : null;
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
    const wrongNetwork = networkRefusal(offer, await withLedgerNetwork(sources));
    if (wrongNetwork) throw new Error(wrongNetwork);
    if (offer.scheme === "receipt") {
      unsigned = await buildReceiptTransaction(offer, payer);
    } else if (offer.scheme === "exact") {
      unsigned = await buildExactTransaction(offer, {
        payer,
        mint: await mintInfo(offer.asset, sources),
        blockhash: await exactBlockhash(offer, sources),
      });
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
    reference: paymentReference(offer),
    payload,
    offer,
  };
}
