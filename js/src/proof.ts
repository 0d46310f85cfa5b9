/**
 * The payer's proof that it presents a payment's reference, for one request, as
 * protocol/src/proof.rs makes it: its ed25519 signature, base58, over
 * `x402-receipt-proof\n<reference>\n<METHOD>\n<path>\n<host>`. A seller that gave a
 * payment's grant back (a 5xx) takes the payment again only with it: whoever else read
 * the payment (a proxy, a log) cannot redeem it first.
 */
import { getBase58Decoder, getBase58Encoder } from "@solana/kit";

import { signMessageWith, type PaymentSigner } from "./signer.js";
import { base64ToBytes } from "./wire.js";

export const X_PAYMENT_PROOF = "X-Payment-Proof";

/** The request a proof is for. */
export interface ProofTarget {
  method: string;
  path: string;
  /** `host[:port]`, the port only when not the scheme's default, as the URL names it. */
  host: string;
}

/** The target of a request to `url` with `method` (relative URLs against the page's). */
export function proofTarget(url: string | URL, method = "GET"): ProofTarget {
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  const parsed = new URL(url, base);
  return { method, path: parsed.pathname, host: parsed.host };
}

/** The bytes the payer signs. */
export function proofMessage(reference: string, target: ProofTarget): Uint8Array {
  const text = `x402-receipt-proof\n${reference}\n${target.method.toUpperCase()}\n${target.path}\n${target.host.toLowerCase()}`;
  return new TextEncoder().encode(text);
}

/** `signer`'s proof for `reference` at `target`, base58. */
export async function signProof(signer: PaymentSigner, reference: string, target: ProofTarget): Promise<string> {
  return getBase58Decoder().decode(await signMessageWith(signer, proofMessage(reference, target)));
}

/**
 * The reference an `exact` Memo holds (base58), as Reference::from_memo reads it: 32
 * characters are the compact form (URL-safe base64 of 24 bytes: bytes 4..12 and 16..32,
 * the others zero), anything else the base58 reference itself; null when neither.
 */
export function memoReference(memo: string): string | null {
  if (memo.length === 32) {
    if (!/^[A-Za-z0-9_-]{32}$/.test(memo)) return null;
    const compact = base64ToBytes(memo);
    const bytes = new Uint8Array(32);
    bytes.set(compact.subarray(0, 8), 4);
    bytes.set(compact.subarray(8), 16);
    return getBase58Decoder().decode(bytes);
  }
  if (memo.length > 44 || !/^[1-9A-HJ-NP-Za-km-z]+$/.test(memo)) return null;
  const bytes = getBase58Encoder().encode(memo);
  return bytes.length === 32 ? getBase58Decoder().decode(bytes) : null;
}
