"""paykit_buyer.py -- a STOCK x402 `upto` buyer: the Solana Foundation's solana-pay-kit (PyPI,
paykit-requirements.txt, unmodified), spawned by the Rust interop tests
(tests/suite/rpc/paykit.rs) against any `upto` seller.

pay-kit 0.10.0 has no client that pays `upto` by itself (its PayKitClient pays `exact` and
MPP), so this drives its `upto` client builder the way its documentation does: GET, read
the 402 with parse_upto_challenge, build the channel `open` signed by the buyer
(build_upto_payload: deposit = the offer's amount, the seller's fee payer co-signs and
pays the rent), send it back in PAYMENT-SIGNATURE (encode_upto_header), once.

Env (all required):
  X402_URL         paid URL to GET
  X402_KEYPAIR     buyer keypair file, Solana CLI format (JSON array of 64 bytes)
  X402_ASSET       the only mint the buyer pays in
  X402_MAX_AMOUNT  the largest ceiling (base units) the buyer escrows

Stdout, one line:
  {"challengeStatus":N,"status":N,"body":"...","offer":{the upto requirement},
   "channel":"<channel address>","paymentResponse":{...}|null}
Exit 0 whenever the paid request got an HTTP answer (any status); non-zero + stderr
message otherwise (no `upto` offer, an offer over the limits, no connection).
"""

import json
import time

import httpx
from solana_pay_kit import Signer
from solana_pay_kit.protocols.x402.client.upto import (
    build_upto_payload,
    encode_upto_header,
    parse_upto_challenge,
)

from common import b64json, env, run_buyer


def main():
    url = env("X402_URL")
    asset = env("X402_ASSET")
    max_amount = int(env("X402_MAX_AMOUNT"))
    with open(env("X402_KEYPAIR")) as f:
        signer = Signer.bytes(json.load(f))

    with httpx.Client(timeout=120) as http:
        challenge = http.get(url)
        offer = parse_upto_challenge(challenge.headers, challenge.text)
        if offer is None:
            raise RuntimeError(f"no upto offer in the {challenge.status_code}: {challenge.text}")
        # The buyer's own limits: pay-kit's builder escrows whatever the offer asks.
        if offer["asset"] != asset or int(offer["amount"]) > max_amount:
            raise RuntimeError(f"offer over the buyer's limits: {json.dumps(offer)}")
        expires_at = int(time.time()) + int(offer["maxTimeoutSeconds"])
        payload = build_upto_payload(signer, offer, expires_at)
        paid = http.get(url, headers={"PAYMENT-SIGNATURE": encode_upto_header(offer, payload)})

    raw = paid.headers.get("PAYMENT-RESPONSE")
    out = {
        "challengeStatus": challenge.status_code,
        "status": paid.status_code,
        "body": paid.text,
        "offer": offer,
        "channel": payload["channelId"],
        "paymentResponse": b64json(raw) if raw else None,
    }
    return out


if __name__ == "__main__":
    run_buyer(main)
