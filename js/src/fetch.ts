/** fetchWithPayment: a fetch that pays x402 challenges on Solana. */
import type { MintInfo } from "./constants.js";
import { X402Error } from "./errors.js";
import {
  chargeOf,
  chooseOffer,
  createPayment,
  DEFAULT_SCHEMES,
  readLedgerFacts,
  type Charge,
  type Payment,
  type PaymentSources,
} from "./payment.js";
import { releaseSpending, reserveSpending, type SpendingPolicy } from "./policy.js";
import { BATCH_SETTLEMENT } from "./batch.js";
import { BatchSession, type ChannelReport } from "./batch-session.js";
import type { ChannelStore } from "./channel-store.js";
import { proofTarget, signProof, X_PAYMENT_PROOF } from "./proof.js";
import { rpcSources } from "./rpc.js";
import { canSignMessages, signerAddress, type PaymentSigner } from "./signer.js";
import { readChallenge, readSettlement, type Challenge, type Settlement } from "./wire.js";

export interface FetchWithPaymentOptions {
  /** Who pays; absent → X402Error "no_wallet" on a 402. */
  signer?: PaymentSigner | null;
  /**
   * Checked before signing; without one, the default cap applies: 1.00 per request of a
   * known stablecoin (USDC), any other token refused; and without rpcUrl, no network is
   * allowed (list the networks to pay on).
   */
  policy?: SpendingPolicy;
  /**
   * Schemes to pay first, in this order; default ["receipt", "exact"]. A scheme not named
   * comes after those named (as the Rust client's `prefer`): `upto` is paid first only
   * when named, and when it is all a seller offers. `batch-settlement` is paid only when
   * named: it keeps a channel open across requests (see channelStore).
   */
  schemes?: readonly string[];
  /**
   * Where `batch-settlement` channels are kept between requests; default: in memory,
   * shared by the process (defaultChannelStore). fileChannelStore(dir) keeps them across
   * restarts.
   */
  channelStore?: ChannelStore;
  /**
   * JSON-RPC endpoint of the client's own ledger: its network (genesis hash), which every
   * offer must name; and for `exact` and `upto` offers, the blockhash and unknown mints
   * (for `upto`, the slot when the offer gives none).
   */
  rpcUrl?: string;
  /** Trusted mint facts (decimals, token program) by mint address. */
  mints?: Readonly<Record<string, MintInfo>>;
  /** Attempts after a 5xx (503 among them), resending the same payment (default 3). */
  retries?: number;
  /** Longest wait honoured from Retry-After, ms (default 10000); 1000 when absent. */
  maxRetryDelayMs?: number;
  /**
   * A payment already signed (from an "unavailable" error): sent at once with its payer's
   * proof (X-Payment-Proof, signed by `signer`), never re-signed nor charged again.
   */
  payment?: Payment;
  /** Default: globalThis.fetch. */
  fetch?: typeof fetch;
  /** Default: setTimeout. */
  sleep?: (ms: number) => Promise<void>;
  /** Called once a payment is signed, before it is sent. */
  onPayment?: (payment: Payment) => void;
}

export interface PaidResponse {
  response: Response;
  /** The decoded PAYMENT-RESPONSE / X-PAYMENT-RESPONSE; null when nothing was paid. */
  settlement: Settlement | null;
  /** The payment sent, if any. */
  payment: Payment | null;
  /**
   * What it cost, from the settlement; null when nothing was paid or the seller did not
   * say. For `upto`: the amount settled and the maximum escrowed (the rest came back).
   * For `batch-settlement`: the seller's extra.chargedAmount.
   */
  charged: Charge | null;
  /** For `batch-settlement`: the channel that paid, as the answer left it. */
  channel?: ChannelReport;
}

function withHeader(init: RequestInit | undefined, name: string, value: string): RequestInit {
  const headers = new Headers(init?.headers);
  headers.set(name, value);
  return { ...init, headers };
}

function retryDelay(response: Response, maxMs: number): number {
  const header = response.headers.get("Retry-After");
  let ms = 1000;
  if (header) {
    const seconds = Number(header);
    if (Number.isFinite(seconds)) ms = seconds * 1000;
    else {
      const date = Date.parse(header);
      if (!Number.isNaN(date)) ms = date - Date.now();
    }
  }
  return Math.min(Math.max(ms, 0), maxMs);
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A paid request answered so was not served, and the seller gives the payment back (the
 * verifier releases the grant on a 5xx; a 503 could not check it): present the same
 * payment again, never a new one.
 */
function givenBack(status: number): boolean {
  return status >= 500 && status <= 599;
}

/** The same error, now holding the payment it must not lose. */
function keeping(error: unknown, payment: Payment): unknown {
  if (!(error instanceof X402Error) || error.payment) return error;
  return new X402Error(error.code, error.message, { payment, cause: error, ...(error.response ? { response: error.response } : {}) });
}

/**
 * `X-Payment-Proof: <reference>:<proof>` for presenting `payment` again at this request:
 * its payer's signature over its reference and the request. Null when the payment carries
 * no reference (a stock seller's `exact` offer without one has nothing to prove), or when
 * no signer of its payer can sign messages: the payment is then presented bare, and the
 * seller says whether it needs the proof (a 503's payment was never given back).
 */
async function paymentProof(
  payment: Payment,
  signer: PaymentSigner | null | undefined,
  url: string | URL,
  init: RequestInit | undefined,
): Promise<string | null> {
  if (!payment.reference || !signer || signerAddress(signer) !== payment.payer || !canSignMessages(signer)) return null;
  try {
    return `${payment.reference}:${await signProof(signer, payment.reference, proofTarget(url, init?.method ?? "GET"))}`;
  } catch (error) {
    throw keeping(error, payment);
  }
}

/** The client's own sources for `challenge`: its ledger (rpcUrl) and trusted mints, read before the policy. */
function sourcesFor(challenge: Challenge, options: FetchWithPaymentOptions, batch: BatchSession | null): Promise<PaymentSources> {
  const signer = options.signer;
  const given: PaymentSources = {
    ...(options.rpcUrl ? rpcSources(options.rpcUrl) : {}),
    ...(options.mints ? { mints: options.mints } : {}),
    ...(batch ? { batch: { signsMessages: !signer || canSignMessages(signer) } } : {}),
  };
  // Decimals and the ledger's network from the client's own sources, before the policy.
  return readLedgerFacts(challenge, options.policy, given);
}

/** Signs a payment for `challenge` (of the 402 `first`), after the policy allowed it. */
async function pay(
  challenge: Challenge | null,
  first: Response,
  options: FetchWithPaymentOptions,
  batch: BatchSession | null,
): Promise<Payment> {
  if (!challenge) {
    throw new X402Error("no_payable_offer", "The 402 response holds no readable x402 challenge.", {
      offers: [],
      response: first,
    });
  }
  const schemes = options.schemes ?? DEFAULT_SCHEMES;
  const sources = await sourcesFor(challenge, options, batch);
  // From the budget check in chooseOffer to the reservation, nothing awaits: two calls
  // sharing the policy cannot both pass the check before either counts its amount.
  const offer = chooseOffer(challenge, options.policy, schemes, sources);
  if (!options.signer) {
    throw new X402Error("no_wallet", "Payment required, but no wallet or signer was given.", { response: first });
  }
  reserveSpending(options.policy, offer.amount);
  let payment: Payment;
  try {
    payment =
      batch && offer.scheme === BATCH_SETTLEMENT
        ? await batch.pay(challenge, offer, sources)
        : await createPayment(challenge, offer, options.signer, sources);
  } catch (error) {
    // Nothing was signed, or what was signed never left the client: nothing was spent.
    releaseSpending(options.policy, offer.amount);
    throw error;
  }
  options.onPayment?.(payment);
  return payment;
}

/**
 * Fetches `url`; on a 402 pays the best allowed offer and retries with the payment.
 * A 5xx after paying (503 among them) is retried with the same payment and its payer's
 * proof, then thrown as X402Error "unavailable" holding the payment; a 402 after paying
 * throws X402Error "refused" with the server's reason.
 *
 * With `batch-settlement` named in options.schemes, a request to a URL whose channel is
 * held carries its voucher at once (no 402 first); a seller's corrective 402 is adopted
 * only when it shows the buyer's own voucher, and a closed channel is replaced, each once.
 */
export async function fetchWithPayment(
  url: string | URL,
  init?: RequestInit,
  options: FetchWithPaymentOptions = {},
): Promise<PaidResponse> {
  const batch: BatchSession | null =
    !options.payment && options.schemes?.includes(BATCH_SETTLEMENT)
      ? new BatchSession(String(url), options, (challenge): Promise<PaymentSources> => sourcesFor(challenge, options, batch))
      : null;
  try {
    return await paidFetch(url, init, options, batch);
  } finally {
    batch?.end();
  }
}

async function paidFetch(
  url: string | URL,
  init: RequestInit | undefined,
  options: FetchWithPaymentOptions,
  batch: BatchSession | null,
): Promise<PaidResponse> {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  let payment = options.payment ?? null;
  if (!payment && batch) {
    payment = await batch.preemptive();
    if (payment) options.onPayment?.(payment);
  }
  if (!payment) {
    const first = await doFetch(url, init);
    if (first.status !== 402) return { response: first, settlement: readSettlement(first), payment: null, charged: null };
    payment = await pay(await readChallenge(first), first, options, batch);
  }

  const retries = options.retries ?? 3;
  const sleep = options.sleep ?? defaultSleep;
  // A kept payment is being presented again: the seller may have given its grant back.
  let presented = options.payment !== undefined;
  let proof: string | null | undefined;
  for (let attempt = 0; ; attempt++) {
    let request = withHeader(init, payment.headerName, payment.headerValue);
    if (presented) {
      if (proof === undefined) proof = await paymentProof(payment, options.signer, url, init);
      if (proof) request = withHeader(request, X_PAYMENT_PROOF, proof);
    }
    let response: Response;
    try {
      response = await doFetch(url, request);
    } catch (error) {
      // No answer: the payment may have been taken, or not. Kept, never signed again.
      throw new X402Error("unavailable", "The paid request got no answer; resend the same payment (options.payment).", {
        payment,
        cause: error,
      });
    }
    presented = true;
    if (givenBack(response.status)) {
      if (attempt < retries) {
        await sleep(retryDelay(response, options.maxRetryDelayMs ?? 10_000));
        continue;
      }
      const why =
        response.status === 503 ? "The payment could not be checked right now" : `The seller answered ${response.status} and gave the payment back`;
      throw new X402Error(
        "unavailable",
        `${why}; resend it later (options.payment): it will not be charged twice.`,
        { payment, response },
      );
    }
    if (response.status === 402) {
      const challenge = await readChallenge(response);
      if (batch?.owns(payment)) {
        const next = await batch.refused(payment, challenge, response);
        if (next) {
          payment = next === "fallback" ? await pay(challenge, response, options, batch) : next;
          if (next !== "fallback") options.onPayment?.(payment);
          // A new payment: its own attempts, and nothing to prove yet.
          attempt = -1;
          presented = false;
          proof = undefined;
          continue;
        }
      }
      const reason = challenge?.error ?? readSettlement(response)?.errorReason ?? "payment refused";
      // The budget keeps the amount: a hostile seller may have submitted the payment and
      // still answered 402, and a refund would let it be taken again and again.
      throw new X402Error("refused", `The server refused the payment: ${reason}`, { reason, payment, response });
    }
    const settlement = readSettlement(response);
    if (batch?.owns(payment)) {
      const done = await batch.settled(payment, settlement, response);
      if (done) return { response, settlement, payment, charged: done.charged, channel: done.channel };
    }
    return { response, settlement, payment, charged: chargeOf(settlement, payment, response) };
  }
}
