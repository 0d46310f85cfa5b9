/** The IIFE served as /assets/paywall.js by the verifier. */
import { getWallets } from "@wallet-standard/app";

import { MESSAGES, STATES, startPaywall, type PaywallDeps } from "./paywall.js";

// Listen for wallets from the start: they register on page load.
const wallets = getWallets() as unknown as PaywallDeps["wallets"];

function boot(): void {
  startPaywall({
    document: document as unknown as PaywallDeps["document"],
    fetch: window.fetch.bind(window),
    wallets,
    url: location.href,
    secure: window.isSecureContext !== false,
  });
}

(window as unknown as { x402Paywall: unknown }).x402Paywall = { MESSAGES, STATES };
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
