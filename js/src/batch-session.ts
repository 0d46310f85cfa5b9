/**
 * The `batch-settlement` buyer inside fetchWithPayment: which held channel pays a
 * request, the deposit that opens (or tops up) one, the voucher for each request, what
 * the seller's answers do to the channel, and closeChannel.
 */
import { getBase64EncodedWireTransaction } from "@solana/kit";

import {
  BATCH_CHANNEL_CLOSING,
  BATCH_CHANNEL_STATE,
  BATCH_CLOSE_STATE,
  BATCH_CUMULATIVE_MISMATCH,
  BATCH_SETTLEMENT,
  batchTerms,
  buildBatchOpenTransaction,
  buildBatchTopUpTransaction,
  decimalU64,
  signVoucher,
  verifyVoucher,
  type BatchPayload,
  type BatchTerms,
} from "./batch.js";
import { channelKey, defaultChannelStore, type ChannelStore, type HeldChannel } from "./channel-store.js";
import type { MintInfo } from "./constants.js";
import { X402Error } from "./errors.js";
import {
  mintInfo,
  networkRefusal,
  signingBlockhash,
  supportRefusal,
  trustedMint,
  withLedgerNetwork,
  type Charge,
  type Payment,
  type PaymentSources,
} from "./payment.js";
import {
  DEFAULT_MAX_WITHDRAW_DELAY,
  maxDepositUnits,
  policyRefusal,
  releaseSpending,
  reserveSpending,
  type SpendingPolicy,
} from "./policy.js";
import { canSignMessages, signerAddress, signWith, type PaymentSigner } from "./signer.js";
import { randomSalt } from "./transactions.js";
import { paymentHeader, parseChallenge, readChallenge, type Challenge, type Offer, type Settlement } from "./wire.js";

/** What the batch buyer needs of fetchWithPayment's options. */
export interface BatchOptions {
  signer?: PaymentSigner | null;
  policy?: SpendingPolicy;
  rpcUrl?: string;
  mints?: Readonly<Record<string, MintInfo>>;
  /** Where channels are kept; default: in memory, shared by the process (defaultChannelStore). */
  channelStore?: ChannelStore;
}

/** A held channel after an answer, as PaidResponse.channel reports it. */
export interface ChannelReport {
  channel: string;
  /** Base units escrowed. */
  deposit: bigint;
  /** What the seller accepted, cumulatively. */
  confirmed: bigint;
  /** The most signed. */
  signed: bigint;
  /** Something the seller said that was not believed (a charge above what was signed). */
  warning?: string;
}

// One payment at a time per channel in this process: each voucher is the accepted amount
// plus the price, so two in flight would both be the same one.
const locks = new WeakMap<ChannelStore, Map<string, Promise<void>>>();

async function acquire(store: ChannelStore, key: string): Promise<() => void> {
  let held = locks.get(store);
  if (!held) locks.set(store, (held = new Map()));
  const before = held.get(key) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((resolve) => (release = resolve));
  const queued = before.then(() => mine);
  held.set(key, queued);
  await before;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    release();
    if (held.get(key) === queued) held.delete(key);
  };
}

/** The offer a held channel last paid, as a challenge would carry it. */
function heldOffer(held: HeldChannel): Offer | null {
  const challenge = parseChallenge({
    x402Version: held.x402Version,
    ...(held.resourceInfo ? { resource: held.resourceInfo } : {}),
    accepts: [held.accepted],
  });
  const offer = challenge?.offers[0];
  return offer && offer.scheme === BATCH_SETTLEMENT ? offer : null;
}

function heldChallenge(held: HeldChannel): Pick<Challenge, "version" | "resource"> {
  return { version: held.x402Version, ...(held.resourceInfo ? { resource: held.resourceInfo } : {}) };
}

function keyOf(offer: Offer, terms: BatchTerms, payer: string): string {
  return channelKey({
    payer,
    network: offer.network,
    feePayer: terms.feePayer,
    receiverAuthorizer: terms.receiverAuthorizer,
    payTo: offer.payTo,
    asset: offer.asset,
    withdrawDelay: terms.withdrawDelay,
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A field of a settlement: at its top level (the Rust verifier flattens `extra`), or in its `extra`. */
function settlementField(settlement: Settlement | null, name: string): unknown {
  if (!settlement) return undefined;
  if (settlement[name] !== undefined) return settlement[name];
  const extra = settlement.extra;
  return isObject(extra) ? extra[name] : undefined;
}

/**
 * Checks a corrective challenge's claim about `held`: its channelState names the channel,
 * its voucherState is the buyer's own voucher (an Ed25519 signature by the channel's payer
 * authorizer over the voucher message), and what the seller says it accepted is at most
 * what that voucher signs. Returns the amounts to adopt, or why not.
 */
export async function checkCorrection(
  held: HeldChannel,
  extra: Record<string, unknown>,
): Promise<{ charged: bigint; signedMax: bigint } | string> {
  const state = extra.channelState;
  const voucher = extra.voucherState;
  if (!isObject(state) || !isObject(voucher)) return "it carries no channelState and voucherState";
  if (state.channelId !== held.channel) return `its channelState is of channel ${String(state.channelId)}`;
  const charged = decimalU64(state.chargedCumulativeAmount);
  if (charged === null) return "its channelState has no chargedCumulativeAmount";
  const signedMax = decimalU64(voucher.signedMaxClaimable);
  const expiresAt = voucher.expiresAt;
  if (signedMax === null || typeof expiresAt !== "number" || !Number.isSafeInteger(expiresAt) || typeof voucher.signature !== "string") {
    return "its voucherState is malformed";
  }
  if (charged > signedMax) return `it claims ${charged} base units accepted, above the voucher it shows (${signedMax})`;
  if (!(await verifyVoucher(held.channel, signedMax, expiresAt, voucher.signature, held.channelConfig.payerAuthorizer))) {
    return "its voucher is not signed by this buyer's key";
  }
  return { charged, signedMax };
}

interface Pending {
  /** The channel as written before the payment left. */
  held: HeldChannel;
  cumulative: bigint;
  /** The deposit once this payment's deposit (if any) landed. */
  depositAfter: bigint;
  opens: boolean;
  preemptive: boolean;
  payment: Payment;
}

/** One fetchWithPayment call's use of the batch-settlement channels. */
export class BatchSession {
  private readonly store: ChannelStore;
  private pending: Pending | null = null;
  private corrected = false;
  private reopened = false;
  private fellBack = false;
  private lockedKey: string | null = null;
  private release: (() => void) | null = null;

  constructor(
    private readonly url: string,
    private readonly options: BatchOptions,
    private readonly sourcesFor: (challenge: Challenge) => Promise<PaymentSources>,
  ) {
    this.store = options.channelStore ?? defaultChannelStore;
  }

  /** Whether `payment` is this session's. */
  owns(payment: Payment): boolean {
    return this.pending?.payment === payment;
  }

  /** Lets other calls use the channel. */
  end(): void {
    this.release?.();
    this.release = null;
    this.lockedKey = null;
  }

  private async lock(key: string): Promise<void> {
    if (this.lockedKey === key) return;
    this.end();
    this.release = await acquire(this.store, key);
    this.lockedKey = key;
  }

  /**
   * The voucher for this URL's held channel, sent with the request itself (no 402 round
   * trip), when one is held for it, the voucher fits its deposit and the policy allows
   * the price; else null.
   */
  async preemptive(): Promise<Payment | null> {
    const signer = this.options.signer;
    if (!signer || !canSignMessages(signer)) return null;
    const found = await this.store.forResource(this.url);
    if (!found || found.channelConfig.payer !== signerAddress(signer)) return null;
    await this.lock(found.key);
    const held = await this.store.get(found.key);
    const offer = held && held.channel === found.channel ? heldOffer(held) : null;
    // A top-up needs a fresh blockhash: the seller's next 402 brings one.
    if (!held || !offer || typeof batchTerms(offer) === "string" || held.confirmed + offer.amount > held.deposit) {
      this.end();
      return null;
    }
    const policy = this.options.policy;
    const facts = {
      decimals: trustedMint(offer.asset, this.options.mints ? { mints: this.options.mints } : {})?.decimals ?? null,
      // Checked against the client's ledger when the channel opened.
      ledgerNetwork: this.options.rpcUrl ? held.network : null,
    };
    if (policyRefusal(offer, policy, facts)) {
      this.end();
      return null;
    }
    reserveSpending(policy, offer.amount);
    try {
      return await this.send(held, offer, heldChallenge(held), held.confirmed + offer.amount, held.deposit, null, true);
    } catch (error) {
      releaseSpending(policy, offer.amount);
      throw error;
    }
  }

  /**
   * The payment of `offer` (chosen, allowed and reserved by the caller): a voucher on the
   * open channel held for its terms; a `top_up` and the voucher when the deposit runs out;
   * else the `open` of a new channel and its first voucher.
   */
  async pay(challenge: Pick<Challenge, "version" | "resource">, offer: Offer, sources: PaymentSources): Promise<Payment> {
    const signer = this.options.signer;
    if (!signer) throw new X402Error("no_wallet", "Payment required, but no wallet or signer was given.");
    try {
      const wrongNetwork = networkRefusal(offer, await withLedgerNetwork(sources));
      if (wrongNetwork) throw new Error(wrongNetwork);
      const terms = batchTerms(offer);
      if (typeof terms === "string") throw new Error(terms);
      const payer = signerAddress(signer);
      const key = keyOf(offer, terms, payer);
      await this.lock(key);
      const held = await this.store.get(key);
      if (!held) return await this.open(signer, challenge, offer, terms, sources, key, payer);
      const cumulative = held.confirmed + offer.amount;
      if (cumulative <= held.deposit) return await this.send(held, offer, challenge, cumulative, held.deposit, null, false);
      return await this.topUp(signer, held, challenge, offer, terms, sources, cumulative);
    } catch (error) {
      if (error instanceof X402Error) throw error;
      throw new X402Error("no_payable_offer", `Cannot build the batch-settlement payment: ${(error as Error).message}`, {
        cause: error,
        offers: [{ offer, reason: (error as Error).message, policy: false }],
      });
    }
  }

  /** The deposit escrowed to cover `needed`: the seller's suggestion (at least `needed`), clamped to the policy's maxDeposit. */
  private depositFor(offer: Offer, terms: BatchTerms, sources: PaymentSources, needed: bigint): bigint {
    const facts = { decimals: trustedMint(offer.asset, sources)?.decimals ?? null, ledgerNetwork: sources.ledgerNetwork ?? null };
    const max = maxDepositUnits(offer, this.options.policy, facts);
    const refuse = (reason: string) =>
      new X402Error("policy", `The spending policy forbids the batch-settlement deposit: ${reason}`, {
        offers: [{ offer, reason, policy: true }],
      });
    if (typeof max === "string") throw refuse(max);
    if (max !== null && needed > max) throw refuse(`${needed} base units are needed, above maxDeposit (${max})`);
    const maxDelay = this.options.policy?.maxWithdrawDelay ?? DEFAULT_MAX_WITHDRAW_DELAY;
    if (terms.withdrawDelay > maxDelay) {
      throw refuse(`the deposit could wait ${terms.withdrawDelay} s after asking to close, above maxWithdrawDelay (${maxDelay} s)`);
    }
    let deposit = terms.minDeposit !== null && terms.minDeposit > needed ? terms.minDeposit : needed;
    if (max !== null && deposit > max) deposit = max;
    return deposit;
  }

  private async open(
    signer: PaymentSigner,
    challenge: Pick<Challenge, "version" | "resource">,
    offer: Offer,
    terms: BatchTerms,
    sources: PaymentSources,
    key: string,
    payer: string,
  ): Promise<Payment> {
    const deposit = this.depositFor(offer, terms, sources, offer.amount);
    const openSlot = terms.recentSlot ?? (sources.getSlot ? await sources.getSlot() : null);
    if (openSlot === null) throw new Error("no extra.recentSlot and no rpcUrl to read a slot");
    const { transaction, channel, channelConfig } = await buildBatchOpenTransaction(offer, {
      payer,
      mint: await mintInfo(offer.asset, sources),
      blockhash: await signingBlockhash(offer, sources),
      salt: randomSalt(),
      openSlot,
      deposit,
    });
    const signed = await signWith(signer, transaction, offer.network);
    const held: HeldChannel = {
      channel,
      key,
      network: offer.network,
      resource: this.url,
      x402Version: challenge.version,
      accepted: offer.raw,
      ...(challenge.resource ? { resourceInfo: challenge.resource } : {}),
      channelConfig,
      deposit,
      confirmed: 0n,
      signed: 0n,
      closed: false,
      updatedAt: Date.now(),
    };
    const wire = getBase64EncodedWireTransaction(signed) as string;
    return this.send(held, offer, challenge, offer.amount, deposit, { amount: deposit.toString(), transaction: wire }, false, true);
  }

  private async topUp(
    signer: PaymentSigner,
    held: HeldChannel,
    challenge: Pick<Challenge, "version" | "resource">,
    offer: Offer,
    terms: BatchTerms,
    sources: PaymentSources,
    cumulative: bigint,
  ): Promise<Payment> {
    const amount = this.depositFor(offer, terms, sources, cumulative - held.deposit);
    const { transaction } = await buildBatchTopUpTransaction(offer, held.channelConfig, {
      payer: held.channelConfig.payer,
      mint: await mintInfo(offer.asset, sources),
      blockhash: await signingBlockhash(offer, sources),
      amount,
    });
    const signed = await signWith(signer, transaction, offer.network);
    const wire = getBase64EncodedWireTransaction(signed) as string;
    return this.send(held, offer, challenge, cumulative, held.deposit + amount, { amount: amount.toString(), transaction: wire }, false);
  }

  /** Records `cumulative` as signed, then signs the voucher and makes the payment. */
  private async send(
    held: HeldChannel,
    offer: Offer,
    challenge: Pick<Challenge, "version" | "resource">,
    cumulative: bigint,
    depositAfter: bigint,
    deposit: { amount: string; transaction: string } | null,
    preemptive: boolean,
    opens = false,
  ): Promise<Payment> {
    const signer = this.options.signer!;
    const record: HeldChannel = {
      ...held,
      signed: cumulative > held.signed ? cumulative : held.signed,
      updatedAt: Date.now(),
    };
    // Before the voucher exists: a crash after it leaves still knows it was signed.
    await this.store.put(record);
    const voucher = await signVoucher(signer, record.channel, cumulative);
    const payload: BatchPayload = deposit
      ? { type: "deposit", channelConfig: record.channelConfig, voucher, deposit }
      : { type: "voucher", channelConfig: record.channelConfig, voucher };
    const header = paymentHeader(challenge, offer, payload);
    const payment: Payment = {
      headerName: header.name,
      headerValue: header.value,
      version: challenge.version,
      scheme: BATCH_SETTLEMENT,
      network: offer.network,
      amount: offer.amount,
      asset: offer.asset,
      payTo: offer.payTo,
      payer: record.channelConfig.payer,
      reference: null,
      payload,
      offer,
    };
    this.pending = { held: record, cumulative, depositAfter, opens, preemptive, payment };
    return payment;
  }

  /** The batch offer of `challenge` for the terms of `key`, else its first batch offer. */
  private batchOffer(challenge: Challenge, key: string, payer: string): Offer | null {
    const offers = challenge.offers.filter((o) => o.scheme === BATCH_SETTLEMENT);
    const same = offers.find((o) => {
      const terms = batchTerms(o);
      return typeof terms !== "string" && keyOf(o, terms, payer) === key;
    });
    return same ?? offers[0] ?? null;
  }

  /**
   * What to do after a 402 answered `payment`: a corrective challenge whose state the
   * buyer can prove is its own is adopted and the request paid again (once); a closing
   * or unknown channel is marked closed and a new one opened (once); a plain challenge
   * answering a voucher sent unasked is paid as any ("fallback"). Null: the refusal stands.
   */
  async refused(payment: Payment, challenge: Challenge | null, response: Response): Promise<Payment | "fallback" | null> {
    const p = this.pending;
    if (!p || p.payment !== payment) return null;
    this.pending = null;
    const held = p.held;
    const code = challenge?.error ?? null;
    if (challenge && code === BATCH_CUMULATIVE_MISMATCH && !this.corrected) {
      const offer = this.batchOffer(challenge, held.key, held.channelConfig.payer);
      if (offer) {
        const adopted = await checkCorrection(held, offer.extra);
        if (typeof adopted === "string") {
          throw new X402Error(
            "refused",
            `The seller refused the voucher (${code}) and its correction of channel ${held.channel} was not adopted: ${adopted}`,
            { reason: code, payment, response },
          );
        }
        this.corrected = true;
        await this.store.put({
          ...held,
          confirmed: adopted.charged,
          signed: adopted.signedMax > held.signed ? adopted.signedMax : held.signed,
          updatedAt: Date.now(),
        });
        return this.pay(challenge, offer, await this.sourcesFor(challenge));
      }
    }
    if (challenge && (code === BATCH_CHANNEL_CLOSING || code === BATCH_CHANNEL_STATE)) {
      await this.store.put({ ...held, closed: true, updatedAt: Date.now() });
      if (this.reopened) return null;
      this.reopened = true;
      const offer = this.batchOffer(challenge, held.key, held.channelConfig.payer);
      if (!offer) return null;
      const sources = await this.sourcesFor(challenge);
      const facts = { decimals: trustedMint(offer.asset, sources)?.decimals ?? null, ledgerNetwork: sources.ledgerNetwork ?? null };
      const why = supportRefusal(offer, sources) ?? policyRefusal(offer, this.options.policy, facts);
      if (why) {
        throw new X402Error("refused", `The seller says channel ${held.channel} is closed (${code}), and a new one cannot be opened: ${why}`, {
          reason: code,
          payment,
          response,
        });
      }
      return this.pay(challenge, offer, sources);
    }
    // A refused open opened nothing to pay through.
    if (p.opens) await this.store.put({ ...held, closed: true, updatedAt: Date.now() });
    if (p.preemptive && !this.fellBack && challenge) {
      this.fellBack = true;
      return "fallback";
    }
    return null;
  }

  /**
   * After a served request: the deposit it carried counts, and the seller's accepted
   * amount is adopted when it is at most what was signed (a claim above is reported and
   * ignored). Returns what the request was charged (extra.chargedAmount) and the channel.
   */
  async settled(payment: Payment, settlement: Settlement | null, response: Response): Promise<{ charged: Charge | null; channel: ChannelReport } | null> {
    const p = this.pending;
    if (!p || p.payment !== payment) return null;
    this.pending = null;
    const held: HeldChannel = { ...p.held, updatedAt: Date.now() };
    let warning: string | undefined;
    if (!settlement && !response.ok) {
      // Neither served nor settled: nothing was accepted, and a refused open opened nothing.
      if (p.opens) held.closed = true;
    } else {
      held.deposit = p.depositAfter;
      const state = settlementField(settlement, "channelState");
      const charged = isObject(state) ? decimalU64(state.chargedCumulativeAmount) : null;
      if (isObject(state) && state.channelId !== held.channel) {
        warning = `The seller's answer names channel ${String(state.channelId)}, not ${held.channel}: its state was ignored`;
        held.confirmed = p.cumulative;
      } else if (charged === null) {
        held.confirmed = p.cumulative;
      } else if (charged > held.signed) {
        warning = `The seller claims ${charged} base units accepted on channel ${held.channel}, more than the ${held.signed} signed: ignored`;
        held.confirmed = p.cumulative;
      } else {
        held.confirmed = charged;
      }
      held.resource = this.url;
      held.accepted = payment.offer.raw;
    }
    await this.store.put(held);
    const amount = decimalU64(settlementField(settlement, "chargedAmount"));
    return {
      charged: amount === null ? null : { amount, maximum: null },
      channel: {
        channel: held.channel,
        deposit: held.deposit,
        confirmed: held.confirmed,
        signed: held.signed,
        ...(warning ? { warning } : {}),
      },
    };
  }
}

export interface CloseChannelOptions {
  /** The channel's payer: it signs the refund's voucher. */
  signer?: PaymentSigner | null;
  /** Where the channel is held (as given to fetchWithPayment). */
  channelStore?: ChannelStore;
  /** Default: globalThis.fetch. */
  fetch?: typeof fetch;
  /** The request that carries the refund (default: a GET). */
  init?: RequestInit;
}

function withHeader(init: RequestInit | undefined, name: string, value: string): RequestInit {
  const headers = new Headers(init?.headers);
  headers.set(name, value);
  return { ...init, headers };
}

/**
 * Closes the channel held for `url` (the last URL it paid): sends a `refund` (the voucher
 * for exactly what the seller accepted) there; the seller settles that and returns the
 * rest of the deposit. Returns the base units refunded, as the seller says; the channel
 * is marked closed. A corrective answer is adopted only as fetchWithPayment adopts one.
 */
export async function closeChannel(url: string | URL, options: CloseChannelOptions = {}): Promise<bigint> {
  const store = options.channelStore ?? defaultChannelStore;
  const signer = options.signer;
  if (!signer) throw new X402Error("no_wallet", "Closing a channel needs its payer's signer.");
  const found = await store.forResource(String(url));
  if (!found || found.channelConfig.payer !== signerAddress(signer)) {
    throw new X402Error("no_channel", `No open batch-settlement channel of ${signerAddress(signer)} is held for ${String(url)}.`);
  }
  if (!canSignMessages(signer)) {
    throw new X402Error("no_wallet", "The signer cannot sign messages: a batch-settlement refund carries its voucher.");
  }
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const release = await acquire(store, found.key);
  try {
    let held = (await store.get(found.key)) ?? found;
    if (held.channel !== found.channel) held = found;
    const offer = heldOffer(held);
    if (!offer) throw new X402Error("no_channel", `The offer held for channel ${held.channel} is unreadable.`);
    for (let attempt = 0; ; attempt++) {
      const voucher = await signVoucher(signer, held.channel, held.confirmed);
      const payload: BatchPayload = { type: "refund", channelConfig: held.channelConfig, voucher };
      const header = paymentHeader(heldChallenge(held), offer, payload);
      let response: Response;
      try {
        response = await doFetch(held.resource, withHeader(options.init, header.name, header.value));
      } catch (error) {
        throw new X402Error("unavailable", `The refund of channel ${held.channel} got no answer; close it again later.`, { cause: error });
      }
      if (response.status === 402) {
        const challenge = await readChallenge(response);
        const code = challenge?.error ?? "payment refused";
        const corrective = challenge?.offers.find((o) => o.scheme === BATCH_SETTLEMENT && isObject(o.extra.voucherState));
        if (attempt === 0 && corrective && (code === BATCH_CLOSE_STATE || code === BATCH_CUMULATIVE_MISMATCH)) {
          const adopted = await checkCorrection(held, corrective.extra);
          if (typeof adopted === "string") {
            throw new X402Error("refused", `The seller refused the refund (${code}) and its correction was not adopted: ${adopted}`, {
              reason: code,
              response,
            });
          }
          held = {
            ...held,
            confirmed: adopted.charged,
            signed: adopted.signedMax > held.signed ? adopted.signedMax : held.signed,
            updatedAt: Date.now(),
          };
          await store.put(held);
          continue;
        }
        if (code === BATCH_CHANNEL_CLOSING) await store.put({ ...held, closed: true, updatedAt: Date.now() });
        throw new X402Error("refused", `The seller refused the refund of channel ${held.channel}: ${code}`, { reason: code, response });
      }
      if (!response.ok) {
        const code = response.status >= 500 ? "unavailable" : "refused";
        throw new X402Error(code, `The seller answered the refund of channel ${held.channel} with ${response.status}.`, { response });
      }
      const body: unknown = await response.json().catch(() => null);
      const refunded = isObject(body) ? decimalU64(body.refunded) : null;
      if (!isObject(body) || body.closed !== true || refunded === null) {
        throw new X402Error("refused", `The seller's answer to the refund of channel ${held.channel} does not say it closed.`, { response });
      }
      await store.put({ ...held, closed: true, updatedAt: Date.now() });
      return refunded;
    }
  } finally {
    release();
  }
}
