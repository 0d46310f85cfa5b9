export type X402ErrorCode =
  | "no_payable_offer"
  | "policy"
  | "refused"
  | "unavailable"
  | "wallet_rejected"
  | "no_wallet"
  | "settled_above_maximum"
  | "no_channel";

import type { Offer } from "./wire.js";
import type { Payment } from "./payment.js";

/** Why one offer of a challenge was not paid. */
export interface OfferRefusal {
  offer: Offer;
  reason: string;
  /** True when the client could pay it but the spending policy forbids it. */
  policy: boolean;
}

export interface X402ErrorDetails {
  /** "refused": the server's reason (the `error` of its new challenge). */
  reason?: string;
  /** "no_payable_offer" / "policy": each offer and why it was not paid. */
  offers?: OfferRefusal[];
  /**
   * The payment already signed and not yet accepted ("unavailable", or a proof that could
   * not be signed): resend it with `fetchWithPayment(url, init, {...options, payment})`.
   */
  payment?: Payment;
  /** The last response, when there was one. */
  response?: Response;
  cause?: unknown;
}

export class X402Error extends Error {
  readonly code: X402ErrorCode;
  readonly reason?: string;
  readonly offers?: OfferRefusal[];
  readonly payment?: Payment;
  readonly response?: Response;

  constructor(code: X402ErrorCode, message: string, details: X402ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "X402Error";
    this.code = code;
    this.reason = details.reason;
    this.offers = details.offers;
    this.payment = details.payment;
    this.response = details.response;
  }
}
