/** fetchWithPayment: a fetch that pays x402 challenges on Solana. */
import type { MintInfo } from "./constants.js";
import { X402Error } from "./errors.js";
import { chooseOffer, createPayment, DEFAULT_SCHEMES, type Payment, type PaymentSources } from "./payment.js";
import { recordSpending, type SpendingPolicy } from "./policy.js";
import { rpcSources } from "./rpc.js";
import type { PaymentSigner } from "./signer.js";
import { readChallenge, readSettlement, type Settlement } from "./wire.js";

export interface FetchWithPaymentOptions {
  /** Who pays; absent → X402Error "no_wallet" on a 402. */
  signer?: PaymentSigner | null;
  /** Checked before signing. */
  policy?: SpendingPolicy;
  /** Schemes in order of preference; default ["receipt", "exact"]. */
  schemes?: readonly string[];
  /** JSON-RPC endpoint for `exact` offers: blockhash and unknown mints. */
  rpcUrl?: string;
  /** Trusted mint facts (decimals, token program) by mint address. */
  mints?: Readonly<Record<string, MintInfo>>;
  /** Attempts after a 503, resending the same payment (default 3). */
  retries?: number;
  /** Longest wait honoured from Retry-After, ms (default 10000); 1000 when absent. */
  maxRetryDelayMs?: number;
  /** A payment already signed (from an "unavailable" error): sent at once, never re-signed. */
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
 * Fetches `url`; on a 402 pays the best allowed offer and retries with the payment.
 * A 503 after paying is retried with the same payment; a 402 after paying throws
 * X402Error "refused" with the server's reason.
 */
export async function fetchWithPayment(
  url: string | URL,
  init?: RequestInit,
  options: FetchWithPaymentOptions = {},
): Promise<PaidResponse> {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  let payment = options.payment ?? null;
  if (!payment) {
    const first = await doFetch(url, init);
    if (first.status !== 402) return { response: first, settlement: readSettlement(first), payment: null };
    const challenge = await readChallenge(first);
    if (!challenge) {
      throw new X402Error("no_payable_offer", "The 402 response holds no readable x402 challenge.", {
        offers: [],
        response: first,
      });
    }
    const sources: PaymentSources = {
      ...(options.rpcUrl ? rpcSources(options.rpcUrl) : {}),
      ...(options.mints ? { mints: options.mints } : {}),
    };
    const offer = chooseOffer(challenge, options.policy, options.schemes ?? DEFAULT_SCHEMES, sources);
    if (!options.signer) {
      throw new X402Error("no_wallet", "Payment required, but no wallet or signer was given.", { response: first });
    }
    payment = await createPayment(challenge, offer, options.signer, sources);
    recordSpending(options.policy, payment.amount);
    options.onPayment?.(payment);
  }

  const retries = options.retries ?? 3;
  const sleep = options.sleep ?? defaultSleep;
  for (let attempt = 0; ; attempt++) {
    const response = await doFetch(url, withHeader(init, payment.headerName, payment.headerValue));
    if (response.status === 503) {
      if (attempt < retries) {
        await sleep(retryDelay(response, options.maxRetryDelayMs ?? 10_000));
        continue;
      }
      throw new X402Error(
        "unavailable",
        "The payment could not be checked right now; resend it later (options.payment): it will not be charged twice.",
        { payment, response },
      );
    }
    if (response.status === 402) {
      const challenge = await readChallenge(response);
      const reason = challenge?.error ?? readSettlement(response)?.errorReason ?? "payment refused";
      // The budget keeps the amount: a hostile seller may have submitted the payment and
      // still answered 402, and a refund would let it be taken again and again.
      throw new X402Error("refused", `The server refused the payment: ${reason}`, { reason, payment, response });
    }
    return { response, settlement: readSettlement(response), payment };
  }
}
