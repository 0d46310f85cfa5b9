/**
 * The verifier's paywall page logic. The page holds #x402-challenge (the v2 PaymentRequired
 * JSON), #x402-pay, #x402-status, #x402-content (hidden) and #x402-explorer (hidden); the
 * page URL is the paid resource (GET).
 */
import { explorerTxUrl, KNOWN_MINTS, walletChain, type MintInfo } from "./constants.js";
import { X402Error } from "./errors.js";
import { createPayment, type Payment } from "./payment.js";
import { proofTarget, signProof, X_PAYMENT_PROOF } from "./proof.js";
import { canSignMessages, type WalletStandardSigner } from "./signer.js";
import { parseChallenge, readChallenge, readSettlement, type Challenge, type Offer } from "./wire.js";

export const MESSAGES = Object.freeze({
  noWallet: "No Solana wallet found. Install Phantom, Solflare or Backpack, then reload.",
  walletRejected: "You declined in your wallet. Nothing was paid.",
  insufficientFunds: "Your wallet does not hold enough USDC for this payment. Nothing was paid.",
  expired: "This offer has expired. Reload the page for a new one.",
  unavailable: "The payment could not be checked right now. Retry: you will not be charged twice.",
  failed:
    "The seller could not answer right now, and gave your payment back. Retry: the same payment is presented again, you will not be charged twice.",
  failedUnprovable:
    "The seller could not answer right now, and gave your payment back. Retry presents the same payment again, but your wallet cannot sign the proof that it is yours, so the seller may refuse it. Do not pay again.",
  proving: "Approve in your wallet the message proving this payment is yours (it pays nothing)…",
  proofDeclined: "You declined in your wallet. Your payment is kept: Retry presents it again. Do not pay again.",
  unproven:
    "The seller would not take your payment again without a proof that it is yours, which your wallet could not give. The payment was made: do not pay again, ask the seller about it.",
  paid: "Paid.",
  refusedPrefix: "The payment was refused: ",
  noOffer: "This page offers no payment that can be made from a browser wallet.",
  insecure: "Paying from a browser wallet needs this page over HTTPS (or on localhost).",
  connecting: "Connecting to your wallet…",
  signing: "Approve the payment in your wallet…",
  checking: "Checking the payment…",
  explorer: "View the payment on the explorer",
  retry: "Retry",
  alreadyUsed:
    "This payment was already accepted, but its answer was lost on the way. Nothing more was charged; reload the page to buy again.",
});

/** The full "refused" message for a server reason. */
export function refusedMessage(reason: string): string {
  return `${MESSAGES.refusedPrefix}${reason.replace(/\.+$/, "")}.`;
}

/**
 * data-state values set on #x402-status. Every step in progress is "working" (the page's
 * CSS knows it); all others are final.
 */
export const STATES = Object.freeze({
  noWallet: "no-wallet",
  walletRejected: "wallet-rejected",
  insufficientFunds: "insufficient-funds",
  expired: "expired",
  unavailable: "unavailable",
  paid: "paid",
  refused: "refused",
  alreadyUsed: "already-used",
  failed: "failed",
  proofDeclined: "wallet-rejected",
  unproven: "unproven",
  noOffer: "no-offer",
  insecure: "insecure",
  connecting: "working",
  signing: "working",
  checking: "working",
  proving: "working",
});

/** The subset of DOM elements used (so tests can fake them). */
export interface PaywallElement {
  textContent: string | null;
  hidden: boolean;
  disabled?: boolean;
  setAttribute(name: string, value: string): void;
  addEventListener(type: string, listener: () => void): void;
}

interface StandardWallet {
  name: string;
  chains: readonly string[];
  features: Readonly<Record<string, unknown>>;
  accounts: readonly { address: string; chains: readonly string[] }[];
}

export interface PaywallDeps {
  document: { getElementById(id: string): PaywallElement | null };
  fetch: typeof fetch;
  /** `getWallets()` of @wallet-standard/app. */
  wallets: { get(): readonly StandardWallet[] };
  /** The paid resource: the page's URL. */
  url: string;
  /** window.isSecureContext: WebCrypto (hashing for addresses) needs it. Default true. */
  secure?: boolean;
}

function usable(wallet: StandardWallet): boolean {
  return (
    !!wallet.features["standard:connect"] &&
    !!wallet.features["solana:signTransaction"] &&
    wallet.chains.some((c) => c.startsWith("solana:"))
  );
}

/** The offer the page pays: the first sponsored receipt offer, else the first exact offer. */
export function pageOffer(challenge: Challenge): Offer | null {
  return (
    challenge.offers.find(
      (o) => o.scheme === "receipt" && typeof o.extra.feePayer === "string" && typeof o.extra.recentBlockhash === "string",
    ) ??
    challenge.offers.find((o) => o.scheme === "exact") ??
    null
  );
}

/** Mint facts for an exact offer: the seller's own receipt offer of the same mint, else the table. */
function pageMints(challenge: Challenge): Record<string, MintInfo> {
  const mints: Record<string, MintInfo> = { ...KNOWN_MINTS };
  for (const o of challenge.offers) {
    const { decimals, tokenProgram } = o.extra;
    if (o.scheme === "receipt" && typeof decimals === "number" && typeof tokenProgram === "string") {
      mints[o.asset] = { decimals, tokenProgram };
    }
  }
  return mints;
}

/** A payment sent, with the wallet that signed it (which proves it when presented again). */
interface Kept {
  payment: Payment;
  signer: WalletStandardSigner;
  /** `<reference>:<proof>` once signed; null when it cannot be. */
  proof?: string | null;
}

/** Whether the payer of `kept` can prove it presents it: a reference, and a wallet that signs messages. */
function provable(kept: Kept): boolean {
  return kept.payment.reference !== null && canSignMessages(kept.signer);
}

/** Wires the page's button. Returns a promise-returning `pay` (the click handler) for tests. */
export function startPaywall(deps: PaywallDeps): { pay(): Promise<void> } {
  const el = (id: string) => deps.document.getElementById(id);
  const button = el("x402-pay");
  const status = el("x402-status");
  const content = el("x402-content");
  const explorer = el("x402-explorer");
  let challenge = parseChallenge(JSON.parse(el("x402-challenge")?.textContent ?? "null"));
  /** A payment sent and not served: presented again on Retry, never signed again. */
  let pending: Kept | null = null;
  let busy = false;
  /** Paid or expired: the button stays disabled. */
  let finished = false;

  const show = (state: string, text: string) => {
    if (status) {
      status.textContent = text;
      status.setAttribute("data-state", state);
    }
  };
  const setButton = (text: string | null, disabled: boolean) => {
    if (!button) return;
    if (text !== null) button.textContent = text;
    button.disabled = disabled;
  };

  /**
   * `X-Payment-Proof` for presenting `kept` again: its payer's signature over its
   * reference and this request, asked of the wallet once. Null when the wallet cannot
   * sign messages (the payment goes bare: the seller may refuse it); undefined when the
   * person declined (the payment is kept, nothing is sent).
   */
  async function proofFor(kept: Kept): Promise<string | null | undefined> {
    if (kept.proof !== undefined) return kept.proof;
    const reference = kept.payment.reference;
    if (!provable(kept)) return (kept.proof = null);
    show(STATES.proving, MESSAGES.proving);
    try {
      const proof = await signProof(kept.signer, reference!, proofTarget(deps.url, "GET"));
      return (kept.proof = `${reference}:${proof}`);
    } catch {
      setButton(MESSAGES.retry, true);
      show(STATES.proofDeclined, MESSAGES.proofDeclined);
      return undefined;
    }
  }

  async function send(kept: Kept): Promise<void> {
    const { payment } = kept;
    // Sent before, unanswered or not served: it may have been accepted, and its grant
    // given back (a 5xx), which only its payer's proof takes again.
    const resent = pending !== null;
    const headers: Record<string, string> = { [payment.headerName]: payment.headerValue };
    if (resent) {
      const proof = await proofFor(kept);
      if (proof === undefined) return;
      if (proof) headers[X_PAYMENT_PROOF] = proof;
    }
    show(STATES.checking, MESSAGES.checking);
    let response: Response;
    try {
      response = await deps.fetch(deps.url, { method: "GET", headers });
    } catch {
      pending = kept;
      setButton(MESSAGES.retry, true);
      show(STATES.unavailable, MESSAGES.unavailable);
      return;
    }
    if (response.status === 503) {
      pending = kept;
      setButton(MESSAGES.retry, true);
      show(STATES.unavailable, MESSAGES.unavailable);
      return;
    }
    if (response.status >= 500 && response.status <= 599) {
      // The seller failed to serve a paid request: the verifier gave the payment back.
      // The same payment is presented again; a second one would be a second charge.
      pending = kept;
      setButton(MESSAGES.retry, true);
      if (provable(kept)) show(STATES.failed, MESSAGES.failed);
      else show(STATES.failed, MESSAGES.failedUnprovable);
      return;
    }
    pending = null;
    if (response.status === 402) {
      const next = await readChallenge(response);
      if (next && next.version === 2 && next.offers.length) challenge = next;
      const reason = next?.error ?? readSettlement(response)?.errorReason ?? "payment refused";
      if (resent && reason === "reference_already_used") {
        // Never invite a second payment for what was already paid.
        finished = true;
        return show(STATES.alreadyUsed, MESSAGES.alreadyUsed);
      }
      if (resent && reason === "invalid_proof") {
        // Only a payment given back is refused so: it was paid. No second payment.
        finished = true;
        return show(STATES.unproven, MESSAGES.unproven);
      }
      if (reason === "transaction_failed") show(STATES.insufficientFunds, MESSAGES.insufficientFunds);
      else if (reason === "expired_reference" || reason === "expiring_reference") {
        finished = true;
        return show(STATES.expired, MESSAGES.expired);
      } else show(STATES.refused, refusedMessage(reason));
      return;
    }
    if (response.ok) {
      const settlement = readSettlement(response);
      const body = await response.text();
      if (content) {
        content.textContent = body;
        content.hidden = false;
      }
      if (explorer && settlement?.transaction) {
        explorer.setAttribute("href", explorerTxUrl(settlement.transaction, settlement.network || payment.network));
        explorer.textContent = MESSAGES.explorer;
        explorer.hidden = false;
      }
      finished = true;
      if (button) button.hidden = true;
      show(STATES.paid, MESSAGES.paid);
      return;
    }
    show(STATES.refused, refusedMessage(`HTTP ${response.status}`));
  }

  /** The resource's challenge now, or null when it cannot be had (the page's is used). */
  async function freshChallenge(): Promise<Challenge | null> {
    try {
      const response = await deps.fetch(deps.url, { method: "GET", headers: { Accept: "application/json" } });
      if (response.status !== 402) return null;
      const next = await readChallenge(response);
      return next && next.version === 2 && next.offers.length ? next : null;
    } catch {
      return null;
    }
  }

  async function payOnce(): Promise<void> {
    if (finished) return;
    if (pending) return send(pending);
    const offer = challenge ? pageOffer(challenge) : null;
    if (!challenge || !offer) return show(STATES.noOffer, MESSAGES.noOffer);
    if (deps.secure === false) return show(STATES.insecure, MESSAGES.insecure);
    const wallets = deps.wallets.get().filter(usable);
    if (!wallets.length) return show(STATES.noWallet, MESSAGES.noWallet);
    const chain = walletChain(offer.network);
    const wallet = wallets.find((w) => w.chains.includes(chain)) ?? wallets[0]!;
    show(STATES.connecting, MESSAGES.connecting);
    let accounts: readonly { address: string; chains: readonly string[] }[];
    try {
      const connect = wallet.features["standard:connect"] as {
        connect(input?: { silent?: boolean }): Promise<{ accounts: typeof accounts }>;
      };
      ({ accounts } = await connect.connect());
    } catch {
      return show(STATES.walletRejected, MESSAGES.walletRejected);
    }
    const account = accounts.find((a) => a.chains?.includes(chain)) ?? accounts[0];
    if (!account) return show(STATES.walletRejected, MESSAGES.walletRejected);
    // The page's challenge may be minutes old: its blockhash too. A fresh one to sign.
    const fresh = await freshChallenge();
    const paying = fresh ?? challenge;
    const payingOffer = (fresh && pageOffer(fresh)) ?? offer;
    show(STATES.signing, MESSAGES.signing);
    const signer: WalletStandardSigner = { wallet, account, chain };
    let payment: Payment;
    try {
      payment = await createPayment(paying, payingOffer, signer, { mints: pageMints(paying) });
    } catch (error) {
      if (error instanceof X402Error && error.code !== "wallet_rejected") {
        return show(STATES.refused, refusedMessage(error.message));
      }
      return show(STATES.walletRejected, MESSAGES.walletRejected);
    }
    return send({ payment, signer });
  }

  async function pay(): Promise<void> {
    if (busy) return;
    busy = true;
    setButton(null, true);
    try {
      await payOnce();
    } catch (error) {
      show(STATES.refused, refusedMessage(error instanceof Error ? error.message : String(error)));
    } finally {
      busy = false;
      setButton(null, finished);
    }
  }

  button?.addEventListener("click", () => void pay());
  return { pay };
}
