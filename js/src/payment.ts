/** Choosing an offer and building the signed payment header for it. */
import { getBase64EncodedWireTransaction, type Transaction } from "@solana/kit";

import { isSolanaNetwork, KNOWN_MINTS, sameNetwork, type MintInfo } from "./constants.js";
import { X402Error, type OfferRefusal } from "./errors.js";
import { needsDecimals, policyRefusal, type SpendingPolicy } from "./policy.js";
import { memoReference } from "./proof.js";
import { signerAddress, signWith, type PaymentSigner } from "./signer.js";
import {
  buildExactTransaction,
  buildReceiptTransaction,
  buildUptoTransaction,
  randomSalt,
  receiptTerms,
  uptoTerms,
} from "./transactions.js";
import { paymentHeader, type Challenge, type Offer, type Settlement } from "./wire.js";
import { BATCH_SETTLEMENT, batchTerms, type BatchPayload } from "./batch.js";

/**
 * The schemes paid first, in this order; a scheme not named comes after those named, in
 * the server's order (as the Rust client ranks them). `upto` (a deposit of the maximum,
 * the seller settling what the answer cost) is paid first only when named.
 */
export const DEFAULT_SCHEMES: readonly string[] = ["receipt", "exact"];

export const UPTO = "upto";

/** Where the facts the seller must not dictate come from. */
export interface PaymentSources {
  /** Trusted mint facts by mint address; checked before KNOWN_MINTS. */
  mints?: Readonly<Record<string, MintInfo>>;
  /** Reads a mint's facts from a ledger (used when neither table knows it). */
  getMint?: (mint: string) => Promise<MintInfo>;
  /** A recent blockhash for `exact` and `upto` offers: preferred to extra.recentBlockhash. */
  getLatestBlockhash?: () => Promise<string>;
  /** The ledger's current slot: an `upto` channel's openSlot when the offer has no extra.recentSlot. */
  getSlot?: () => Promise<number>;
  /** Reads the network (CAIP-2) of the ledger the two above read, from its genesis hash. */
  getLedgerNetwork?: () => Promise<string>;
  /** That network, once read (readLedgerFacts fills it in): every offer must name it. */
  ledgerNetwork?: string;
  /**
   * Present when `batch-settlement` may be paid (fetchWithPayment sets it when the scheme
   * is named in options.schemes: it holds the channels); `signsMessages` says whether the
   * signer can sign the vouchers (Ed25519 over the voucher message). Absent: refused.
   */
  batch?: { signsMessages: boolean };
}

/** A signed payment, ready to send (and to resend after a 503). */
export interface Payment {
  /** "PAYMENT-SIGNATURE" (v2) or "X-PAYMENT" (v1). */
  headerName: string;
  headerValue: string;
  version: 1 | 2;
  scheme: string;
  network: string;
  /** Base units asked: for `upto`, the maximum (escrowed, and what the policy counted). */
  amount: bigint;
  asset: string;
  payTo: string;
  payer: string;
  /**
   * The reference it carries (base58): a receipt offer's, or the one an `exact` Memo
   * holds; null when none. Presenting the payment again proves it (X-Payment-Proof).
   */
  reference: string | null;
  /** The scheme payload: {transaction: base64 wire transaction}, an `upto` deposit, or a `batch-settlement` payment. */
  payload: { transaction: string } | UptoPayload | BatchPayload;
  offer: Offer;
}

/** The payload of an `upto` payment: the buyer's signed `open` and what it binds (x402's scheme_upto_svm.md). */
export interface UptoPayload {
  /** The buyer. */
  from: string;
  /** The ceiling, base units (decimal string). */
  maxAmount: string;
  /** Unix seconds. */
  expiresAt: number;
  validAfter: number;
  /** The channel's salt, a decimal u64. */
  nonce: string;
  /** A decimal string, as the x402 reference implementation (@x402/svm) and
   * solana-pay-kit read it (the specification's table says number; neither accepts one). */
  openSlot: string;
  /** The channel's address. */
  channelId: string;
  /** The escrowed amount: maxAmount. */
  deposit: string;
  /** The receiver authorizer, as the `open` binds it. */
  authorizedSigner: string;
  /** The buyer-signed `open` transaction, base64. */
  openTransaction: string;
}

/**
 * What a paid request cost, in base units: the offer's amount; for `upto`, what the
 * seller settled, checked to be at most `maximum`, the deposit (the rest went back to the
 * buyer). As the Rust client's Settlement { amount, maximum }.
 */
export interface Charge {
  amount: bigint;
  /** For `upto`: the maximum escrowed; null in the other schemes. */
  maximum: bigint | null;
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
    return ledgerRefusal(offer, sources);
  }
  if (offer.scheme === UPTO) {
    const terms = uptoTerms(offer);
    if (typeof terms === "string") return terms;
    if (!(offer.maxTimeoutSeconds > 0)) return "maxTimeoutSeconds leaves the payment no time to be used";
    if (terms.recentSlot === null && !sources.getSlot) return "no extra.recentSlot and no rpcUrl to read a slot";
    return ledgerRefusal(offer, sources);
  }
  if (offer.scheme === BATCH_SETTLEMENT) {
    if (!sources.batch) return "batch-settlement is paid only when named in options.schemes (it keeps a channel open)";
    if (!sources.batch.signsMessages) {
      return "the signer cannot sign messages: a batch-settlement voucher is the wallet's own Ed25519 signature";
    }
    const terms = batchTerms(offer);
    if (typeof terms === "string") return terms;
    if (terms.recentSlot === null && !sources.getSlot) return "no extra.recentSlot and no rpcUrl to read a slot";
    return ledgerRefusal(offer, sources);
  }
  return `scheme ${offer.scheme} is not supported`;
}

/** Why the blockhash or the mint facts an `exact` or `upto` transaction needs cannot be had, or null. */
function ledgerRefusal(offer: Offer, sources: PaymentSources): string | null {
  if (typeof offer.extra.recentBlockhash !== "string" && !sources.getLatestBlockhash) {
    return "no extra.recentBlockhash and no rpcUrl to fetch one";
  }
  if (!trustedMint(offer.asset, sources) && !sources.getMint) {
    return `mint ${offer.asset} is unknown (pass rpcUrl or mints)`;
  }
  return null;
}

/**
 * The first offer, in `schemes` order then the server's, that this client can pay and
 * `policy` allows (for `upto`, its maximum). Throws X402Error "policy" when only the
 * policy stood in the way, else "no_payable_offer".
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
 * `exact` and `upto` need them). Returns `sources` with them filled in; what cannot be read stays
 * unknown, and is refused when it matters (an unread network: as without rpcUrl).
 */
export async function readLedgerFacts(
  challenge: Pick<Challenge, "offers">,
  policy: SpendingPolicy | undefined,
  sources: PaymentSources = {},
): Promise<PaymentSources> {
  const candidates = challenge.offers.filter((o) => isSolanaNetwork(o.network));
  const unknown = candidates
    .filter(
      (o) =>
        (o.scheme === "exact" || o.scheme === UPTO || o.scheme === BATCH_SETTLEMENT || needsDecimals(policy)) &&
        !trustedMint(o.asset, sources),
    )
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

/** The facts of `asset` from the client's own sources (its tables, then its ledger); throws when unknown. */
export async function mintInfo(asset: string, sources: PaymentSources): Promise<MintInfo> {
  const known = trustedMint(asset, sources);
  if (known) return known;
  if (sources.getMint) return sources.getMint(asset);
  throw new Error(`mint ${asset} is unknown`);
}

/**
 * The blockhash an `exact` or `upto` payment is signed with: the client's ledger's when
 * it has one (as the Rust client), so the transfer can land only on the cluster whose
 * genesis was checked; else the offer's.
 */
export async function signingBlockhash(offer: Offer, sources: PaymentSources): Promise<string> {
  if (sources.getLatestBlockhash) return sources.getLatestBlockhash();
  const recent = offer.extra.recentBlockhash;
  if (typeof recent !== "string") throw new Error("no extra.recentBlockhash and no rpcUrl to fetch one");
  return recent;
}

/** `sources` with its ledger's network read, when the client has a ledger and it is not read yet (either scheme). */
export async function withLedgerNetwork(sources: PaymentSources): Promise<PaymentSources> {
  if (sources.ledgerNetwork || !sources.getLedgerNetwork) return sources;
  return { ...sources, ledgerNetwork: await sources.getLedgerNetwork() };
}

/** The reference a payment for `offer` carries, base58, or null. */
function paymentReference(offer: Offer): string | null {
  const { reference, memo } = offer.extra;
  if (offer.scheme === "receipt") return typeof reference === "string" ? reference : null;
  // `exact` and `upto`: the Memo.
  return typeof memo === "string" ? memoReference(memo) : null;
}

/**
 * The `open` of a fresh channel for `offer` (a random salt, the offer's slot or the
 * ledger's, usable from now for maxTimeoutSeconds), unsigned, and what the payload states.
 */
async function uptoOpening(
  offer: Offer,
  payer: string,
  sources: PaymentSources,
): Promise<{ unsigned: Transaction; upto: Omit<UptoPayload, "openTransaction"> }> {
  const terms = uptoTerms(offer);
  if (typeof terms === "string") throw new Error(terms);
  const openSlot = terms.recentSlot ?? (sources.getSlot ? await sources.getSlot() : null);
  if (openSlot === null) throw new Error("no extra.recentSlot and no rpcUrl to read a slot");
  const now = Math.floor(Date.now() / 1000);
  const expiresAt = now + offer.maxTimeoutSeconds;
  if (!(offer.maxTimeoutSeconds > 0) || !Number.isSafeInteger(expiresAt)) {
    throw new Error(`maxTimeoutSeconds ${offer.maxTimeoutSeconds} leaves the payment no time to be used`);
  }
  const salt = randomSalt();
  const { transaction, channel } = await buildUptoTransaction(offer, {
    payer,
    mint: await mintInfo(offer.asset, sources),
    blockhash: await signingBlockhash(offer, sources),
    salt,
    openSlot,
  });
  const upto = {
    from: payer,
    maxAmount: offer.amount.toString(),
    expiresAt,
    validAfter: now,
    nonce: salt.toString(),
    openSlot: openSlot.toString(),
    channelId: channel,
    deposit: offer.amount.toString(),
    authorizedSigner: terms.receiverAuthorizer,
  };
  return { unsigned: transaction, upto };
}

/**
 * What `settlement` (the answer to `payment`) says was charged; null without one. An
 * `upto` seller's `amount` above the maximum is an error ("settled_above_maximum"): the
 * chain held the charge to the deposit, but the seller's word is false. A seller that
 * does not say is taken to have settled the maximum, the most it can have taken.
 */
export function chargeOf(settlement: Settlement | null, payment: Payment, response?: Response): Charge | null {
  if (!settlement) return null;
  if (payment.scheme !== UPTO) return { amount: payment.amount, maximum: null };
  const maximum = payment.amount;
  const said = typeof settlement.amount === "string" && /^\d{1,20}$/.test(settlement.amount) ? BigInt(settlement.amount) : null;
  if (said !== null && said > maximum) {
    throw new X402Error(
      "settled_above_maximum",
      `The seller claims it settled ${said} base units, more than the maximum of ${maximum} escrowed ` +
        `(the chain took at most the deposit): check transaction ${settlement.transaction}`,
      { payment, ...(response ? { response } : {}) },
    );
  }
  return { amount: said ?? maximum, maximum };
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
  let upto: Omit<UptoPayload, "openTransaction"> | null = null;
  try {
    const wrongNetwork = networkRefusal(offer, await withLedgerNetwork(sources));
    if (wrongNetwork) throw new Error(wrongNetwork);
    if (offer.scheme === "receipt") {
      unsigned = await buildReceiptTransaction(offer, payer);
    } else if (offer.scheme === "exact") {
      unsigned = await buildExactTransaction(offer, {
        payer,
        mint: await mintInfo(offer.asset, sources),
        blockhash: await signingBlockhash(offer, sources),
      });
    } else if (offer.scheme === UPTO) {
      ({ unsigned, upto } = await uptoOpening(offer, payer, sources));
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
  const transaction = getBase64EncodedWireTransaction(signed) as string;
  const payload = upto ? { ...upto, openTransaction: transaction } : { transaction };
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
