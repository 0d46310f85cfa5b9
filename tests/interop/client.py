"""client.py -- a STOCK x402 buyer in Python (PyPI x402==2.25.0, unmodified), spawned by the
Rust interop tests. Same env contract and output as client.mjs.

Install (see requirements.txt):  python3 -m venv VENV && VENV/bin/pip install -r requirements.txt

Env (all required except X402_REPLAY):
  X402_URL         paid URL to GET
  X402_KEYPAIR     buyer keypair file, Solana CLI format (JSON array of 64 bytes)
  X402_RPC_URL     RPC the stock client uses (register_exact_svm_client(rpc_url=...))
  X402_ASSET       mint the buyer agrees to pay with (spend_controls.allowed_assets)
  X402_MAX_AMOUNT  per-payment cap in base units (allowed_assets[].max_amount_per_payment)
  X402_REPLAY=1    after the paid request, resend it with the identical payment header

Stdout, one line:
  {"status":N,"body":"...","paymentResponse":{...}|null,"paymentHeader":"..."|null,
   "paymentHeaderName":"PAYMENT-SIGNATURE"|"X-PAYMENT"|null
   [,"replayStatus":N,"replayBody":"...","replayError":"<PAYMENT-REQUIRED .error>"|null]}
Exit 0 whenever an HTTP answer came back (any status); non-zero + stderr message otherwise.
"""

import json
import os

import requests
from solders.keypair import Keypair
from x402 import x402ClientSync
from x402.http.clients import wrapRequestsWithPayment
from x402.mechanisms.svm import KeypairSigner
from x402.mechanisms.svm.exact import register_exact_svm_client

from common import b64json, env, run_buyer


def main():
    url = env("X402_URL")
    rpc_url = env("X402_RPC_URL")
    asset = env("X402_ASSET")
    max_amount = env("X402_MAX_AMOUNT")
    replay = os.environ.get("X402_REPLAY") == "1"
    with open(env("X402_KEYPAIR")) as f:
        signer = KeypairSigner(Keypair.from_bytes(bytes(json.load(f))))

    client = x402ClientSync()
    register_exact_svm_client(client, signer, rpc_url=rpc_url)  # v2 "solana:*" + v1 names
    client.set_spend_controls(
        {
            "allowed_assets": [
                {"network": n, "asset": asset, "max_amount_per_payment": max_amount}
                for n in ("solana:*", "solana", "solana-devnet", "solana-testnet")
            ]
        }
    )

    session = wrapRequestsWithPayment(requests.Session(), client)
    res = session.get(url, timeout=120)

    # res.request is the PreparedRequest actually sent (the paid retry, if any).
    header_name = header_value = None
    for name in ("PAYMENT-SIGNATURE", "X-PAYMENT"):
        if res.request.headers.get(name):
            header_name, header_value = name, res.request.headers[name]

    raw = res.headers.get("PAYMENT-RESPONSE") or res.headers.get("X-PAYMENT-RESPONSE")
    payment_response = None
    if raw:
        try:
            payment_response = b64json(raw)
        except Exception as e:  # noqa: BLE001
            payment_response = {"undecodable": raw, "error": str(e)}

    out = {
        "status": res.status_code,
        "body": res.text,
        "paymentResponse": payment_response,
        "paymentHeader": header_value,
        "paymentHeaderName": header_name,
    }
    if replay:
        if not header_value:
            raise RuntimeError("X402_REPLAY=1 but no payment header was sent")
        again = requests.get(url, headers={header_name: header_value}, timeout=120)
        out["replayStatus"] = again.status_code
        out["replayBody"] = again.text
        out["replayError"] = None
        pr = again.headers.get("PAYMENT-REQUIRED")
        if pr:
            try:
                out["replayError"] = b64json(pr).get("error")
            except Exception:  # noqa: BLE001
                pass
    return out


if __name__ == "__main__":
    run_buyer(main)
