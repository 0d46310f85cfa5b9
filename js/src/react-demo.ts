/**
 * A React test page for browser tests (dist/react-demo.js): one button that connects the
 * first Solana Wallet Standard wallet and calls a paid URL through useX402.
 * Config: window.__X402_REACT_DEMO__ = { url, method?, body?, policy? } or ?url=... .
 * Shows #x402-react-state[data-state] = idle | working | paid | error, #x402-react-result,
 * #x402-react-error (code: message) and #x402-react-payment (settlement JSON).
 */
import { getWallets } from "@wallet-standard/app";
import { createElement as h, useState } from "react";
import { createRoot } from "react-dom/client";

import { X402Error } from "./errors.js";
import type { SpendingPolicy } from "./policy.js";
import { useX402 } from "./react.js";
import type { WalletStandardSigner } from "./signer.js";

interface DemoConfig {
  url: string;
  method?: string;
  body?: string;
  policy?: SpendingPolicy;
}

const wallets = getWallets();

function config(): DemoConfig {
  const given = (window as unknown as { __X402_REACT_DEMO__?: DemoConfig }).__X402_REACT_DEMO__;
  return given ?? { url: new URLSearchParams(location.search).get("url") ?? "/api/generate" };
}

async function connect(): Promise<WalletStandardSigner> {
  const wallet = wallets
    .get()
    .find((w) => w.features["standard:connect"] && w.features["solana:signTransaction"] && w.chains.some((c) => c.startsWith("solana:")));
  if (!wallet) throw new X402Error("no_wallet", "No Solana wallet found.");
  try {
    const feature = wallet.features["standard:connect"] as { connect(): Promise<{ accounts: readonly { address: string }[] }> };
    const { accounts } = await feature.connect();
    if (!accounts[0]) throw new Error("no account");
    return { wallet, account: accounts[0] };
  } catch (error) {
    throw new X402Error("wallet_rejected", "The wallet refused to connect.", { cause: error });
  }
}

function App({ cfg }: { cfg: DemoConfig }) {
  const [signer, setSigner] = useState<WalletStandardSigner | null>(null);
  const [result, setResult] = useState<string | null>(null);
  const [failure, setFailure] = useState<Error | null>(null);
  const x402 = useX402({ signer, ...(cfg.policy ? { policy: cfg.policy } : {}) });

  async function run() {
    setFailure(null);
    try {
      const s = signer ?? (await connect());
      if (!signer) setSigner(s);
      // This render's options lack a signer connected just now: pass it for this call.
      const response = await x402.call(
        cfg.url,
        { method: cfg.method ?? "GET", ...(cfg.body !== undefined ? { body: cfg.body } : {}) },
        { signer: s },
      );
      setResult(await response.text());
    } catch (error) {
      setFailure(error as Error);
    }
  }

  const error = failure ?? x402.error;
  const state = x402.loading ? "working" : error ? "error" : x402.payment ? "paid" : result !== null ? "done" : "idle";
  return h(
    "main",
    null,
    h("button", { id: "x402-react-call", type: "button", disabled: x402.loading, onClick: () => void run() }, "Call"),
    h("p", { id: "x402-react-state", "data-state": state }, state),
    h("pre", { id: "x402-react-result" }, result ?? ""),
    h("p", { id: "x402-react-error" }, error ? `${(error as X402Error).code ?? error.name}: ${error.message}` : ""),
    h("pre", { id: "x402-react-payment" }, x402.payment ? JSON.stringify(x402.payment) : ""),
  );
}

const rootElement = document.getElementById("root") ?? document.body.appendChild(document.createElement("div"));
createRoot(rootElement).render(h(App, { cfg: config() }));
