/**
 * A Wallet Standard wallet for browser tests, registered on load. Reads
 * window.__X402_TEST_WALLET__ = { secretKey: number[64], reject?: boolean, signDelayMs?: number }
 * (read at each call, so a test may flip them). Signs transactions (solana:signTransaction)
 * and messages (solana:signMessage, as a payer's proof is signed) with ed25519 (noble),
 * after `signDelayMs`, as a person taking time to approve does.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { getBase58Decoder, getTransactionDecoder, getTransactionEncoder, type Transaction } from "@solana/kit";
import { registerWallet } from "@wallet-standard/wallet";

interface Config {
  secretKey: number[];
  reject?: boolean;
  signDelayMs?: number;
}

const CHAINS = ["solana:devnet", "solana:localnet", "solana:mainnet"] as const;
const ICON =
  "data:image/svg+xml;base64," +
  btoa('<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><rect width="32" height="32" fill="#512da8"/></svg>');

// The window this script was loaded into.
const host = window as unknown as { __X402_TEST_WALLET__?: Config };

function config(): Config {
  const c = host.__X402_TEST_WALLET__;
  if (!c || !Array.isArray(c.secretKey) || c.secretKey.length !== 64) {
    throw new Error("window.__X402_TEST_WALLET__.secretKey must be 64 numbers");
  }
  return c;
}

function userRejected(what: string): Error {
  const error = new Error(`User rejected the request (${what}).`) as Error & { code: number };
  error.name = "WalletUserRejectedError";
  error.code = 4001;
  return error;
}

function install(): void {
  const seed = Uint8Array.from(config().secretKey.slice(0, 32));
  const publicKey = ed25519.getPublicKey(seed);
  const address = getBase58Decoder().decode(publicKey);
  const account = Object.freeze({
    address,
    publicKey,
    chains: CHAINS,
    features: ["solana:signTransaction", "solana:signMessage"] as const,
    label: "x402 test account",
  });
  let connected = false;
  const listeners = new Set<(props: { accounts: readonly unknown[] }) => void>();

  function sign(bytes: Uint8Array): Uint8Array {
    const tx = getTransactionDecoder().decode(bytes) as Transaction;
    if (!(address in tx.signatures)) throw new Error(`the transaction does not need ${address}'s signature`);
    const signature = ed25519.sign(new Uint8Array(tx.messageBytes), seed);
    const signed = { ...tx, signatures: { ...tx.signatures, [address]: signature } } as unknown as Transaction;
    return new Uint8Array(getTransactionEncoder().encode(signed));
  }

  /** As a person approving in a wallet: refuses when told to, takes `signDelayMs`. */
  async function approve(what: string): Promise<void> {
    if (config().reject) throw userRejected(what);
    const delay = config().signDelayMs ?? 0;
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
  }

  registerWallet({
    version: "1.0.0",
    name: "x402 Test Wallet",
    icon: ICON as `data:image/svg+xml;base64,${string}`,
    chains: CHAINS,
    get accounts() {
      return connected ? [account] : [];
    },
    features: {
      "standard:connect": {
        version: "1.0.0",
        async connect() {
          if (config().reject) throw userRejected("connect");
          connected = true;
          for (const l of listeners) l({ accounts: [account] });
          return { accounts: [account] };
        },
      },
      "standard:events": {
        version: "1.0.0",
        on(event: string, listener: (props: { accounts: readonly unknown[] }) => void) {
          if (event !== "change") return () => {};
          listeners.add(listener);
          return () => listeners.delete(listener);
        },
      },
      "solana:signTransaction": {
        version: "1.0.0",
        supportedTransactionVersions: ["legacy", 0],
        async signTransaction(...inputs: { account: { address: string }; transaction: Uint8Array }[]) {
          await approve("signTransaction");
          return inputs.map((input) => {
            if (input.account.address !== address) throw new Error("unknown account");
            return { signedTransaction: sign(input.transaction) };
          });
        },
      },
      "solana:signMessage": {
        version: "1.0.0",
        async signMessage(...inputs: { account: { address: string }; message: Uint8Array }[]) {
          await approve("signMessage");
          return inputs.map((input) => {
            if (input.account.address !== address) throw new Error("unknown account");
            const message = new Uint8Array(input.message);
            return { signedMessage: message, signature: ed25519.sign(message, seed) };
          });
        },
      },
    },
  } as never);
}

install();
