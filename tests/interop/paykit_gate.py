"""paykit_gate.py -- a STOCK x402 `upto` seller: the Solana Foundation's solana-pay-kit
(PyPI, paykit-requirements.txt) gating a FastAPI route, spawned by the Rust interop tests
(tests/suite/rpc/paykit.rs). One setting changed: pay-kit waits 10 s for a transaction's
confirmation, then answers 500; on a test machine shared with other validators and
builds that is too short at times, so it waits 60 s here (same polls, more of them).

GET /metered?units=N is gated with pay-kit's RequireUsage: the buyer escrows the ceiling
(X402_MAX_AMOUNT) in a payment channel; the handler reports N base units to pay-kit's
Charge meter (pay-kit clamps it to the ceiling), and pay-kit's middleware settles that
much after the handler returns (settle_and_seal + distribute, the rest refunded). The
currency is USDC, which pay-kit resolves on solana_localnet to its MAINNET mint
(EPjFWdd5...): the validator must hold that mint.

Env (all required):
  X402_PORT              port on 127.0.0.1 (0: any free one)
  X402_RPC_URL           the validator's JSON-RPC
  X402_FEE_PAYER_KEYPAIR pay-kit's operator signer, Solana CLI format: the fee payer, rent
                         payer and zero-share payee of every channel, and the receiver
                         authorizer that signs the vouchers
  X402_PAY_TO            the seller's wallet (its USDC token account receives the payment)
  X402_MAX_AMOUNT        the route's ceiling, USDC base units (6 decimals)

Prints exactly "LISTENING <port>" on stdout when ready; pay-kit's and uvicorn's logs go
to stderr. Stops when its standard input closes.
"""

import asyncio
import json
import socket
import sys
from decimal import Decimal

import solana_pay_kit
import uvicorn
from fastapi import Depends, FastAPI
from solana_pay_kit import Gate, Operator, Signer, Stablecoin
from solana_pay_kit._paycore.rpc import SolanaRpc
from solana_pay_kit.fastapi import Charge, RequireUsage, install

from common import env

DECIMALS = 6

# Polls of getSignatureStatuses and the pause between them (pay-kit's: 40, 0.25 s).
SolanaRpc.await_confirmation.__defaults__ = (240, 0.25)


def app():
    with open(env("X402_FEE_PAYER_KEYPAIR")) as f:
        signer = Signer.bytes(json.load(f))
    pay_to = env("X402_PAY_TO")
    config = solana_pay_kit.configure(
        network="solana_localnet",
        rpc_url=env("X402_RPC_URL"),
        accept=("x402",),
        stablecoins=(Stablecoin.USDC,),
        operator=Operator(recipient=pay_to, signer=signer),
        # Its boot checks would write an MPP secret to ./.env; the test reads balances itself.
        preflight=False,
    )
    ceiling = Decimal(int(env("X402_MAX_AMOUNT"))).scaleb(-DECIMALS)
    gate = Gate.build(name="metered", amount=solana_pay_kit.usd(ceiling), pay_to=pay_to)

    api = FastAPI()
    install(api)

    @api.get("/metered")
    async def metered(units: int, charge: Charge = Depends(RequireUsage(gate, config=config))):
        # What the answer cost, reported the pay-kit way; pay-kit settles it afterwards.
        charge.charge(units)
        return {"units": units}

    return api


async def serve():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(env("X402_PORT"))))
    server = uvicorn.Server(uvicorn.Config(app(), log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.05)
    sys.stdout.write(f"LISTENING {listener.getsockname()[1]}\n")
    sys.stdout.flush()
    # Until the test closes our standard input.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    server.should_exit = True
    await serving


if __name__ == "__main__":
    asyncio.run(serve())
