/** Addresses and numbers of the schemes, as the Rust verifier uses them. */

import { X402_RECEIPTS_PROGRAM_ADDRESS } from "./generated/index.js";

/** The receipt program, and its `pay` discriminator, as its IDL names them (src/generated/). */
export const RECEIPT_PROGRAM: string = X402_RECEIPTS_PROGRAM_ADDRESS;
export { PAY_DISCRIMINATOR } from "./generated/index.js";
export const RECEIPT_SEED = "receipt";

export const SYSTEM_PROGRAM = "11111111111111111111111111111111";
export const TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";
export const TOKEN_2022_PROGRAM = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb";
export const ASSOCIATED_TOKEN_PROGRAM = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL";
export const COMPUTE_BUDGET_PROGRAM = "ComputeBudget111111111111111111111111111111";
export const MEMO_PROGRAM = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr";

/** What the `exact` client asks for, as the Rust client does. */
export const EXACT_COMPUTE_UNIT_LIMIT = 20_000;
export const EXACT_COMPUTE_UNIT_PRICE = 1n;

/**
 * The payment-channels program that `upto` escrows in: a network constant, never taken
 * from an offer.
 */
export const PAYMENT_CHANNELS_PROGRAM = "CHNLxYvVA28MJP9PrFuDXccuoGXAx7jBacfLEkahyGsX";
export const RENT_SYSVAR = "SysvarRent111111111111111111111111111111111";
/** What the channel clients ask for, as the Rust client does: `open` creates two accounts and moves the deposit, with room for its address searches (they vary with the salt) and the Memos. */
export const UPTO_COMPUTE_UNIT_LIMIT = 200_000;
/** The longest Memo an offer may ask for (`exact`'s limit, which `upto` shares in Rust). */
export const MAX_MEMO_BYTES = 256;

export const MAINNET = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp";
export const DEVNET = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1";
export const TESTNET = "solana:4uhcVJyU9pJkvQyS88uRDiswHXSCkY3z";

export interface MintInfo {
  decimals: number;
  tokenProgram: string;
  /**
   * The network (CAIP-2) the mint lives on, when known: an offer naming another network
   * for it is refused, since the label would not be the cluster the money moves on.
   */
  network?: string;
  /**
   * A stablecoin (1.00 is about a dollar). Only KNOWN_MINTS' own entries count: the
   * default cap (1.00 per request) applies to those alone, never to a mint the caller or
   * a ledger describes, since 1.00 of another token (wSOL, wBTC) may be worth anything.
   */
  stablecoin?: boolean;
  /**
   * False for a Token-2022 mint with a transfer fee or a transfer hook (a transfer would
   * not deliver the whole amount, or would run foreign code): `exact` refuses it, as the
   * Rust client does. Absent means it delivers in full.
   */
  deliversInFull?: boolean;
}

/** Mints whose facts the client knows without asking a ledger (as the Rust client's KNOWN_MINTS). */
export const KNOWN_MINTS: Readonly<Record<string, Readonly<MintInfo>>> = Object.freeze({
  // USDC, mainnet.
  EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v: Object.freeze({
    decimals: 6,
    tokenProgram: TOKEN_PROGRAM,
    network: MAINNET,
    stablecoin: true,
  }),
  // USDC, devnet.
  "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU": Object.freeze({
    decimals: 6,
    tokenProgram: TOKEN_PROGRAM,
    network: DEVNET,
    stablecoin: true,
  }),
});

/**
 * The decimals of `mint` when it is a stablecoin of the built-in table (KNOWN_MINTS),
 * else null: never the caller's nor a ledger's word that a token is worth a dollar.
 */
export function knownStablecoinDecimals(mint: string): number | null {
  const known = Object.hasOwn(KNOWN_MINTS, mint) ? KNOWN_MINTS[mint] : undefined;
  return known?.stablecoin === true ? known.decimals : null;
}

/** The network (CAIP-2) of a ledger whose genesis hash (base58) is `genesisHash`. */
export function networkOfGenesis(genesisHash: string): string {
  return `solana:${genesisHash.slice(0, 32)}`;
}

/** The Wallet Standard chain (`solana:mainnet`, ...) of an x402 network (CAIP-2 or v1 name). */
export function walletChain(network: string): string {
  switch (network) {
    case MAINNET:
    case "solana":
    case "solana-mainnet":
    case "mainnet-beta":
      return "solana:mainnet";
    case DEVNET:
    case "solana-devnet":
    case "devnet":
      return "solana:devnet";
    case TESTNET:
    case "solana-testnet":
      return "solana:testnet";
    default:
      return "solana:localnet";
  }
}

/**
 * Whether two names (CAIP-2 or v1) are the same network. Local networks match only
 * when named alike: "solana-localnet" names no genesis, so it is no particular one.
 */
export function sameNetwork(a: string, b: string): boolean {
  if (a === b) return true;
  const chain = walletChain(a);
  return chain !== "solana:localnet" && chain === walletChain(b);
}

/** Whether `network` names a Solana cluster (CAIP-2 `solana:...` or a v1 `solana*` name). */
export function isSolanaNetwork(network: string): boolean {
  return network === "solana" || network.startsWith("solana:") || network.startsWith("solana-") ||
    network === "devnet" || network === "mainnet-beta";
}

/** The explorer page of a transaction on `network`. */
export function explorerTxUrl(signature: string, network: string): string {
  const base = `https://explorer.solana.com/tx/${encodeURIComponent(signature)}`;
  const chain = walletChain(network);
  if (chain === "solana:mainnet") return base;
  if (chain === "solana:devnet") return `${base}?cluster=devnet`;
  if (chain === "solana:testnet") return `${base}?cluster=testnet`;
  return `${base}?cluster=custom`;
}
