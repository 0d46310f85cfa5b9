/** Who signs: a @solana/kit signer, or a Wallet Standard wallet and account. */
import {
  createSignableMessage,
  getTransactionDecoder,
  getTransactionEncoder,
  type MessagePartialSigner,
  type SignatureBytes,
  type Transaction,
  type TransactionModifyingSigner,
  type TransactionPartialSigner,
} from "@solana/kit";

import { walletChain } from "./constants.js";
import { X402Error } from "./errors.js";

/** The parts of a Wallet Standard wallet and account that paying needs. */
export interface WalletStandardSigner {
  wallet: { name?: string; features: Readonly<Record<string, unknown>> };
  account: { address: string; chains?: readonly string[] };
  /** Wallet Standard chain such as "solana:devnet"; default: from the offer's network. */
  chain?: string;
}

/** A kit TransactionPartialSigner (KeyPairSigner is one), a TransactionModifyingSigner, or a Wallet Standard signer. */
export type PaymentSigner = TransactionPartialSigner | TransactionModifyingSigner | WalletStandardSigner;

interface SignTransactionFeature {
  signTransaction(
    ...inputs: { account: unknown; transaction: Uint8Array; chain?: string }[]
  ): Promise<readonly { signedTransaction: Uint8Array }[]>;
}

interface SignMessageFeature {
  signMessage(
    ...inputs: { account: unknown; message: Uint8Array }[]
  ): Promise<readonly { signedMessage?: Uint8Array; signature: Uint8Array }[]>;
}

function isWalletSigner(signer: PaymentSigner): signer is WalletStandardSigner {
  return typeof signer === "object" && signer !== null && "wallet" in signer && "account" in signer;
}

/** The address that pays. */
export function signerAddress(signer: PaymentSigner): string {
  return isWalletSigner(signer) ? signer.account.address : signer.address;
}

function rejected(error: unknown): X402Error {
  if (error instanceof X402Error) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new X402Error("wallet_rejected", `The wallet did not sign: ${message}`, { cause: error });
}

/** Has `signer` add its signature to `transaction` (a partial signature: the fee payer signs later). */
export async function signWith(
  signer: PaymentSigner,
  transaction: Transaction,
  network: string,
): Promise<Transaction> {
  const address = signerAddress(signer);
  let signed: Transaction;
  if (isWalletSigner(signer)) {
    const feature = signer.wallet.features["solana:signTransaction"] as SignTransactionFeature | undefined;
    if (!feature || typeof feature.signTransaction !== "function") {
      throw new X402Error("no_wallet", "The wallet cannot sign Solana transactions (no solana:signTransaction).");
    }
    try {
      const bytes = new Uint8Array(getTransactionEncoder().encode(transaction));
      const [output] = await feature.signTransaction({
        account: signer.account,
        transaction: bytes,
        chain: signer.chain ?? walletChain(network),
      });
      if (!output) throw new Error("the wallet returned no transaction");
      signed = getTransactionDecoder().decode(output.signedTransaction) as Transaction;
    } catch (error) {
      throw rejected(error);
    }
  } else if ("signTransactions" in signer && typeof signer.signTransactions === "function") {
    try {
      const [signatures] = await signer.signTransactions([transaction as never]);
      signed = Object.freeze({
        ...transaction,
        signatures: Object.freeze({ ...transaction.signatures, ...signatures }),
      }) as Transaction;
    } catch (error) {
      throw rejected(error);
    }
  } else if ("modifyAndSignTransactions" in signer && typeof signer.modifyAndSignTransactions === "function") {
    try {
      const [modified] = (await signer.modifyAndSignTransactions([transaction as never])) as unknown as Transaction[];
      if (!modified) throw new Error("the signer returned no transaction");
      signed = modified;
    } catch (error) {
      throw rejected(error);
    }
  } else {
    throw new X402Error("no_wallet", "The signer can sign neither transactions nor through a wallet.");
  }
  if (!signed || !(signed.signatures as Record<string, unknown>)[address]) {
    throw new X402Error("wallet_rejected", `The wallet returned the transaction without ${address}'s signature.`);
  }
  return signed;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function walletSignMessage(signer: WalletStandardSigner): SignMessageFeature | null {
  const feature = signer.wallet.features["solana:signMessage"] as SignMessageFeature | undefined;
  return feature && typeof feature.signMessage === "function" ? feature : null;
}

function messageSigner(signer: PaymentSigner): MessagePartialSigner | null {
  const candidate = signer as unknown as Partial<MessagePartialSigner>;
  return typeof candidate.signMessages === "function" ? (candidate as MessagePartialSigner) : null;
}

/** Whether `signer` can sign a message (a kit message signer, or a wallet with solana:signMessage). */
export function canSignMessages(signer: PaymentSigner): boolean {
  return isWalletSigner(signer) ? walletSignMessage(signer) !== null : messageSigner(signer) !== null;
}

/**
 * `signer`'s ed25519 signature over `message` (64 bytes): a kit message signer
 * (KeyPairSigner is one) or a Wallet Standard wallet's solana:signMessage.
 */
export async function signMessageWith(signer: PaymentSigner, message: Uint8Array): Promise<Uint8Array> {
  const address = signerAddress(signer);
  let signature: Uint8Array | undefined;
  const kit = isWalletSigner(signer) ? null : messageSigner(signer);
  if (isWalletSigner(signer)) {
    const feature = walletSignMessage(signer);
    if (!feature) throw new X402Error("no_wallet", "The wallet cannot sign messages (no solana:signMessage).");
    try {
      const [output] = await feature.signMessage({ account: signer.account, message });
      // A wallet that signed other bytes than asked would make a proof of something else.
      if (output?.signedMessage && !sameBytes(output.signedMessage, message)) {
        throw new Error("the wallet signed a different message");
      }
      signature = output?.signature;
    } catch (error) {
      throw rejected(error);
    }
  } else if (kit) {
    try {
      const [signatures] = await kit.signMessages([createSignableMessage(message)]);
      signature = signatures?.[address as keyof typeof signatures] as SignatureBytes | undefined;
    } catch (error) {
      throw rejected(error);
    }
  } else {
    throw new X402Error("no_wallet", "The signer cannot sign messages (no signMessages).");
  }
  if (!signature || signature.length !== 64) {
    throw new X402Error("wallet_rejected", `The wallet returned no signature of ${address} over the message.`);
  }
  return signature;
}
