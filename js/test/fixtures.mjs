// Shared fixtures: fixed keys, a v2 challenge with a sponsored receipt offer and an exact offer.
import { sha256 } from "@noble/hashes/sha2.js";
import { ed25519 } from "@noble/curves/ed25519.js";
import {
  createKeyPairSignerFromPrivateKeyBytes,
  getAddressDecoder,
  getAddressEncoder,
  getBase58Decoder,
  getBase58Encoder,
  getCompiledTransactionMessageDecoder,
  getTransactionDecoder,
} from "@solana/kit";
import { encodeHeader, RECEIPT_PROGRAM, TOKEN_PROGRAM, ASSOCIATED_TOKEN_PROGRAM } from "../dist/index.js";

export const key = (byte) => getAddressDecoder().decode(new Uint8Array(32).fill(byte));
export const BUYER_SEED = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
export const BUYER_SECRET = [...BUYER_SEED, ...ed25519.getPublicKey(BUYER_SEED)];
export const BUYER = getBase58Decoder().decode(ed25519.getPublicKey(BUYER_SEED));
export const buyerSigner = () => createKeyPairSignerFromPrivateKeyBytes(BUYER_SEED);

export const FEE_PAYER = key(8);
export const PAY_TO = key(3);
export const USDC_DEVNET = "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU";
export const DEVNET = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1";
export const BLOCKHASH = getBase58Decoder().decode(new Uint8Array(32).fill(1));
export const REFERENCE_BYTES = new Uint8Array(32).fill(5);
export const REFERENCE = getBase58Decoder().decode(REFERENCE_BYTES);
export const EXPIRES_AT = 4_000_000_000;

// An independent PDA derivation (sha256 + off-curve check), to cross-check kit's.
const P = 2n ** 255n - 19n;
function onCurve(bytes) {
  try {
    ed25519.Point.fromBytes(bytes);
    return true;
  } catch {
    return false;
  }
}
export function findPda(seeds, program) {
  const programBytes = getAddressEncoder().encode(program);
  for (let bump = 255; bump >= 0; bump--) {
    const parts = [...seeds, new Uint8Array([bump]), programBytes, new TextEncoder().encode("ProgramDerivedAddress")];
    const hash = sha256(Uint8Array.from(parts.flatMap((p) => [...p])));
    if (!onCurve(hash)) return getAddressDecoder().decode(hash);
  }
  throw new Error("no bump");
}
void P;
export const enc = (a) => getAddressEncoder().encode(a);
export const ata = (owner, mint, tokenProgram = TOKEN_PROGRAM) =>
  findPda([enc(owner), enc(tokenProgram), enc(mint)], ASSOCIATED_TOKEN_PROGRAM);
export const RECEIPT = findPda([new TextEncoder().encode("receipt"), REFERENCE_BYTES], RECEIPT_PROGRAM);

export function receiptOffer(overrides = {}) {
  return {
    scheme: "receipt",
    network: DEVNET,
    amount: "10000",
    asset: USDC_DEVNET,
    payTo: PAY_TO,
    maxTimeoutSeconds: 60,
    extra: {
      programId: RECEIPT_PROGRAM,
      reference: REFERENCE,
      receipt: RECEIPT,
      expiresAt: EXPIRES_AT,
      decimals: 6,
      tokenProgram: TOKEN_PROGRAM,
      feePayer: FEE_PAYER,
      recentBlockhash: BLOCKHASH,
    },
    ...overrides,
  };
}

export function exactOffer(overrides = {}) {
  return {
    scheme: "exact",
    network: DEVNET,
    amount: "10000",
    asset: USDC_DEVNET,
    payTo: PAY_TO,
    maxTimeoutSeconds: 60,
    extra: { feePayer: FEE_PAYER, memo: "order-42", recentBlockhash: BLOCKHASH },
    ...overrides,
  };
}

export const RESOURCE = { url: "http://127.0.0.1:8402/api/generate", description: "A poem", mimeType: "text/plain" };

export function challengeV2(accepts = [receiptOffer(), exactOffer()], error = "PAYMENT-SIGNATURE header is required") {
  return { x402Version: 2, error, resource: RESOURCE, accepts };
}

export function response402(challenge = challengeV2()) {
  return new Response(JSON.stringify({}), { status: 402, headers: { "PAYMENT-REQUIRED": encodeHeader(challenge) } });
}

/** Decodes a base64 wire transaction into {signatures, message, messageBytes}. */
export function decodeTx(base64) {
  const tx = getTransactionDecoder().decode(Uint8Array.from(Buffer.from(base64, "base64")));
  const message = getCompiledTransactionMessageDecoder().decode(tx.messageBytes);
  return { tx, message, wire: Buffer.from(base64, "base64") };
}

/** Resolves an instruction's keys. */
export function resolve(message, ix) {
  return {
    program: message.staticAccounts[ix.programAddressIndex],
    accounts: (ix.accountIndices ?? []).map((i) => message.staticAccounts[i]),
    data: Uint8Array.from(ix.data ?? []),
  };
}

export function verifyBuyer(tx) {
  const sig = tx.signatures[BUYER];
  return !!sig && ed25519.verify(sig, tx.messageBytes, getBase58Encoder().encode(BUYER));
}

export const AUTHORIZER = key(9);
export const RECENT_SLOT = 341_000_000;

export function uptoOffer(overrides = {}) {
  return {
    scheme: "upto",
    network: DEVNET,
    amount: "10000",
    asset: USDC_DEVNET,
    payTo: PAY_TO,
    maxTimeoutSeconds: 300,
    extra: {
      paymentFlow: "escrow",
      feePayer: FEE_PAYER,
      receiverAuthorizer: AUTHORIZER,
      withdrawDelay: 3600,
      tokenProgram: TOKEN_PROGRAM,
      memo: "order-42",
      recentBlockhash: BLOCKHASH,
      recentSlot: RECENT_SLOT,
    },
    ...overrides,
  };
}
