//! Interoperability with the Solana Foundation's solana-pay-kit (PyPI, pinned in
//! tests/interop/paykit-requirements.txt, its own virtual environment:
//! `X402_TEST_PAYKIT_PYTHON`), in the `upto` scheme: its FastAPI gate
//! (tests/interop/paykit_gate.py) and its `upto` buyer (paykit_buyer.py), on the test
//! validator; and its buyer's payment for our offer against our validation, without one.
//!
//! What pay-kit needs of the chain (`Plan::mainnet_usdc`):
//! - its currencies are a fixed list at their MAINNET mint addresses, even on
//!   `solana_localnet` (which it announces with devnet's CAIP-2 id): the validator holds
//!   USDC at `EPjFWdd5…` in genesis, with a mint authority the test keeps;
//! - USDC is a classic SPL Token mint, so `distribute` (paying the seller and refunding
//!   the buyer with one `Batch`) needs p-token at the SPL Token address, as every test
//!   validator has it (`testkit::vendored`);
//! - `distribute` names the treasury's token account for the mint (`TREASURY_OWNER`):
//!   genesis holds it; pay-kit would otherwise create it at its fee payer's expense.
//!
//! What pay-kit does that a reader of these tests should know:
//! - it has no client that pays `upto` by itself: paykit_buyer.py drives its builder
//!   (`parse_upto_challenge`, `build_upto_payload`, `encode_upto_header`);
//! - its buyer requires `extra.recentBlockhash` and `extra.recentSlot` in the offer
//!   (optional in the specification) and never asks a ledger; it adds a Memo after `open`
//!   only when the offer names `extra.memo` (the specification's clients always add one);
//! - it writes slots as decimal strings (`recentSlot`, `openSlot`; numbers in the
//!   specification's table) and reads `openSlot` only as one, as the x402 reference
//!   implementation (@x402/svm) does: we write it so too;
//! - its channels are opened with a withdraw delay of 900 s, whatever the route;
//! - its fee payer is the channel's rent payer and also its receiver authorizer (one key
//!   signs the vouchers); on its first settlement it creates (and pays the rent of) its
//!   own token account for the mint, as the channel's zero-share payee;
//! - it never `reclaim`s: after `distribute` the channel is `Distributed` and keeps its
//!   rent until someone calls `reclaim` (permissionless, once 1,500 slots have passed
//!   since `open`); the escrow's token-account rent does come back at `distribute`;
//! - a handler that reports nothing (or 0) is settled at 0 and answered 402 (its
//!   "fail-closed" policy);
//! - it waits 10 s (40 polls) for each transaction's confirmation, then answers 500: on
//!   this machine, loaded by other builds and validators, the `open` of the control missed
//!   it twice in ten runs; paykit_gate.py lets it wait 60 s, its one change to pay-kit;
//! - a failed settlement leaves the channel open (the deposit locked for 900 s): each case
//!   has its own buyer, seller and fee payer, so it changes no other case's balances;
//! - importing it warns of its "shipped demo signer" on standard error, whatever signer
//!   is configured afterwards (a class default): harmless.

use std::path::{Path, PathBuf};
use std::process::Command;

use anchor_lang::prelude::Pubkey;
use anchor_spl::associated_token::get_associated_token_address;
use solana_keypair::Keypair;
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;
use x402_protocol::scheme::decode_transaction;
use x402_protocol::scheme::upto::{
    build_upto, read_payload, validate_open, ChannelAccount, ChannelStatus, Opening, UptoOffer,
    UptoPayload, UptoTerms, Window, TREASURY_OWNER,
};
use x402_protocol::wire::{decode_header, encode_header, v2, Offer};
use x402_protocol::{Ledger, SponsorPolicy, SponsoredDefect};

use x402_verifier::scheme::upto::tend_channels;
use x402_verifier::store::Stage;

use super::chain::{Chain, Plan, PRICE};
use super::interop::{new_buyer, run_buyer, MeteredVerifier, ScriptServer};
use crate::client::seller::{Seller, DEVNET, MAINNET_USDC};

/// The base units the pay-kit gate's handler reports for the stock-to-stock payment: less
/// than the ceiling (`PRICE`), so that some of the deposit goes back.
const METERED: u64 = 3_700;

/// What the network charges per signature, the Ed25519 precompile's included.
const LAMPORTS_PER_SIGNATURE: u64 = 5_000;

/// The python of pay-kit's virtual environment.
fn paykit_python() -> String {
    std::env::var("X402_TEST_PAYKIT_PYTHON").expect(
        "X402_TEST_PAYKIT_PYTHON names a python with tests/interop/paykit-requirements.txt \
         (scripts/test makes it)",
    )
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("interop")
        .join(name)
}

/// pay-kit's FastAPI `upto` gate on the validator, in USDC, its operator (fee payer and
/// receiver authorizer) funded with 1 SOL: `GET {url}?units=N` costs N base units, at
/// most the ceiling.
pub(super) struct PaykitGate {
    _server: ScriptServer,
    pub(super) url: String,
    pub(super) fee_payer: Pubkey,
}

impl PaykitGate {
    /// Starts the gate paying `pay_to`, with a ceiling of `max_amount` base units.
    pub(super) async fn start(chain: &Chain, pay_to: &Pubkey, max_amount: u64) -> Self {
        let fee_payer = Keypair::new();
        chain.fund(&fee_payer.pubkey()).await;
        let keypair = chain
            .validator
            .write_keypair("paykit-fee-payer", &fee_payer);
        let mut command = Command::new(paykit_python());
        command
            .arg(script("paykit_gate.py"))
            .env("X402_PORT", "0")
            .env("X402_RPC_URL", &chain.validator.url)
            .env("X402_FEE_PAYER_KEYPAIR", keypair)
            .env("X402_PAY_TO", pay_to.to_string())
            .env("X402_MAX_AMOUNT", max_amount.to_string());
        let server = ScriptServer::spawn(&mut command, "paykit_gate.py");
        PaykitGate {
            url: format!("http://127.0.0.1:{}/metered", server.port),
            _server: server,
            fee_payer: fee_payer.pubkey(),
        }
    }
}

/// pay-kit's buyer pays `url` once, escrowing at most `max_amount` of `asset` (any `upto`
/// seller: pay-kit's gate, our verifier): its one line of JSON (the status of the 402 and
/// of the paid request, the body, the offer, the channel, the decoded
/// `PAYMENT-RESPONSE`).
pub(super) async fn paykit_buyer(
    url: &str,
    keypair: &Path,
    asset: &Pubkey,
    max_amount: u64,
) -> serde_json::Value {
    let mut command = Command::new(paykit_python());
    command
        .arg(script("paykit_buyer.py"))
        .env("X402_URL", url)
        .env("X402_KEYPAIR", keypair)
        .env("X402_ASSET", asset.to_string())
        .env("X402_MAX_AMOUNT", max_amount.to_string());
    run_buyer(command, "paykit_buyer.py").await
}

/// The channel `address` as the payment-channels program keeps it, with its lamports.
async fn read_channel(chain: &Chain, address: &str) -> (ChannelAccount, u64) {
    let address: Pubkey = address.parse().unwrap();
    let account = chain
        .ledger
        .account(&address)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("the channel {address} exists"));
    let channel = ChannelAccount::read(&account.data).expect("a channel account");
    (channel, account.lamports)
}

/// A seller: a wallet with an empty token account of the chain's mint.
pub(super) async fn new_seller(chain: &Chain) -> Pubkey {
    let seller = Keypair::new().pubkey();
    chain.token_account(&seller, &chain.market.mint).await;
    seller
}

/// Asserts a metered payment's tokens, to the base unit: `seller` (which held none) got
/// `metered`, `buyer` (which held `PRICE` and escrowed it all) the rest back, and needed
/// no SOL; nothing went to the treasury.
pub(super) async fn assert_paid_metered(
    chain: &Chain,
    buyer: &Pubkey,
    seller: &Pubkey,
    metered: u64,
) {
    assert_eq!(chain.token_balance(seller).await, metered, "the seller's");
    assert_eq!(
        chain.token_balance(buyer).await,
        PRICE - metered,
        "the buyer's refund"
    );
    assert_eq!(chain.lamports(buyer).await, 0, "the buyer's SOL");
    assert_eq!(
        chain.token_balance(&TREASURY_OWNER).await,
        0,
        "the treasury's"
    );
}

/// pay-kit and us in `upto`, on one validator (one at a time is what the machine affords):
/// case after case, each with its own buyer, seller and fee payer, so that a case that
/// fails (and leaves its channel open) changes no other case's balances.
#[tokio::test]
async fn upto_with_solana_pay_kit_on_the_validator() {
    let chain = Plan::mainnet_usdc().start().await;
    paykit_buyer_pays_the_paykit_gate(&chain).await;
    our_payment_pays_the_paykit_gate(&chain).await;
    paykit_buyer_pays_our_metered_route(&chain).await;
}

/// pay-kit's buyer pays our verifier's `upto` route (an axum handler behind our layer
/// that says its answer cost `METERED`): the seller gets exactly that, the buyer the rest
/// back; the escrow's rent comes back at once, the channel's stays until its reclaim
/// window (1,500 slots) has passed, which the janitor waits for.
async fn paykit_buyer_pays_our_metered_route(chain: &Chain) {
    let seller = new_seller(chain).await;
    let ours = MeteredVerifier::start(chain, seller, METERED).await;
    let (gate, url, fee_payer) = (&ours.gate, &ours.url, &ours.fee_payer);
    let fee_payer_before = ours.fee_payer_lamports;
    let (buyer, keypair) = new_buyer(chain, "paykit-buyer-ours").await;

    let out = paykit_buyer(url, &keypair, &chain.market.mint, PRICE).await;

    assert_eq!(out["challengeStatus"], 402, "{out}");
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["body"], "metered answer", "{out}");
    let settlement = &out["paymentResponse"];
    assert_eq!(settlement["success"], true, "{out}");
    assert_eq!(settlement["amount"], METERED.to_string(), "{out}");
    assert_paid_metered(chain, &buyer.pubkey(), &seller, METERED).await;

    let channel_address = out["channel"].as_str().unwrap();
    let (channel, channel_rent) = read_channel(chain, channel_address).await;
    assert_eq!(channel.status, ChannelStatus::Distributed);
    assert_eq!((channel.deposit, channel.settled), (PRICE, METERED));
    assert_eq!(channel.rent_payer, *fee_payer);
    let row = gate
        .store()
        .channel(channel_address)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.stage, row.amount), (Stage::Distributed, Some(METERED)));
    // Our fee payer paid the fees of `open` (its signature and the buyer's) and of the
    // settlement (its signature and the voucher's precompile), and holds the channel's
    // rent until the reclaim; no token account of its own was made.
    assert_eq!(
        fee_payer_before - chain.lamports(fee_payer).await,
        4 * LAMPORTS_PER_SIGNATURE + channel_rent,
        "the fee payer's spending"
    );
    let tended = tend_channels(gate, x402_verifier::unix_now())
        .await
        .unwrap();
    assert_eq!(tended.reclaimed, 0, "the reclaim waits for its slot window");
}

/// Our protocol's payment (`build_upto`, what our clients send) for pay-kit's offer,
/// presented to pay-kit's gate by hand, as we write it (`openSlot` a decimal string, as
/// pay-kit and @x402/svm read it): charged the metered amount, the rest refunded. (Our
/// `x402` does not pay this gate: pay-kit announces devnet's network for mainnet's USDC
/// mint, which our spending policy refuses as a mislabelled offer, as it should.)
async fn our_payment_pays_the_paykit_gate(chain: &Chain) {
    let seller = new_seller(chain).await;
    let gate = PaykitGate::start(chain, &seller, PRICE).await;
    let (buyer, _) = new_buyer(chain, "our-buyer").await;
    let url = format!("{}?units={METERED}", gate.url);
    let http = reqwest::Client::new();

    let challenge = http.get(&url).send().await.unwrap();
    assert_eq!(challenge.status(), 402);
    let required: v2::PaymentRequired =
        decode_header(challenge.headers()["payment-required"].to_str().unwrap()).unwrap();
    let accepted = required.accepts[0].clone();
    let offer = UptoOffer::from_offer(&Offer::from_v2(&accepted, &required.resource))
        .expect("our protocol reads pay-kit's offer (its recentSlot a decimal string)");
    assert_eq!(offer.terms.fee_payer, gate.fee_payer);
    assert_eq!(offer.terms.pay_to, seller);
    let now = x402_verifier::unix_now();
    let opening = Opening {
        payer: buyer.pubkey(),
        salt: 1,
        open_slot: offer.recent_slot.expect("pay-kit's offer names a slot"),
    };
    let window = Window {
        valid_after: now,
        expires_at: now + 300,
    };
    let blockhash = offer.recent_blockhash.expect("and a blockhash");
    let payload = build_upto(&buyer, &offer.terms, &opening, window, blockhash);
    let pay = |payload: serde_json::Value| {
        let header = encode_header(&v2::PaymentPayload {
            x402_version: 2,
            resource: None,
            accepted: accepted.clone(),
            payload,
            extensions: None,
        });
        http.get(&url).header("PAYMENT-SIGNATURE", header).send()
    };

    let paid = pay(serde_json::to_value(&payload).unwrap()).await.unwrap();
    assert_eq!(paid.status(), 200);
    let settlement: serde_json::Value =
        decode_header(paid.headers()["payment-response"].to_str().unwrap()).unwrap();
    assert_eq!(settlement["amount"], METERED.to_string(), "{settlement}");
    assert_eq!(
        paid.text().await.unwrap(),
        format!(r#"{{"units":{METERED}}}"#)
    );
    assert_paid_metered(chain, &buyer.pubkey(), &seller, METERED).await;
}

/// The control, stock to stock: if it fails, the world is wrong, not our product. pay-kit's
/// buyer escrows the ceiling, pay-kit's gate serves and settles what the handler reported:
/// the seller gets exactly that, the buyer the rest back, to the base unit.
async fn paykit_buyer_pays_the_paykit_gate(chain: &Chain) {
    let seller = new_seller(chain).await;
    let gate = PaykitGate::start(chain, &seller, PRICE).await;
    let (buyer, keypair) = new_buyer(chain, "paykit-buyer").await;
    let fee_payer_before = chain.lamports(&gate.fee_payer).await;

    let url = format!("{}?units={METERED}", gate.url);
    let out = paykit_buyer(&url, &keypair, &chain.market.mint, PRICE).await;

    assert_eq!(out["challengeStatus"], 402, "{out}");
    assert_eq!(out["offer"]["scheme"], "upto", "{out}");
    assert_eq!(out["offer"]["asset"], chain.market.mint.to_string());
    assert_eq!(out["offer"]["amount"], PRICE.to_string());
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["body"], format!(r#"{{"units":{METERED}}}"#));
    let settlement = &out["paymentResponse"];
    assert_eq!(settlement["success"], true, "{out}");
    assert_eq!(settlement["amount"], METERED.to_string(), "{out}");
    assert_eq!(settlement["payer"], buyer.pubkey().to_string());

    assert_paid_metered(chain, &buyer.pubkey(), &seller, METERED).await;

    // The channel: sealed at the metered amount, distributed, and still holding its rent:
    // pay-kit never reclaims it.
    let channel_address = out["channel"].as_str().unwrap();
    let (channel, channel_rent) = read_channel(chain, channel_address).await;
    assert_eq!(channel.status, ChannelStatus::Distributed);
    assert_eq!(
        (channel.deposit, channel.settled),
        (PRICE, METERED),
        "{channel:?}"
    );
    assert_eq!(channel.payer, buyer.pubkey());
    assert_eq!(channel.rent_payer, gate.fee_payer);
    assert_eq!(channel.authorized_signer, gate.fee_payer);
    assert_eq!(channel.grace_period, 900);
    let escrow = get_associated_token_address(&channel.address(), &chain.market.mint);
    assert_eq!(
        chain.lamports(&escrow).await,
        0,
        "distribute closed the escrow"
    );

    // The fee payer's SOL, to the lamport: the fees of `open` (its signature and the
    // buyer's) and of the settlement (its signature and the voucher's precompile), the
    // rent still in the channel, and the rent of the token account pay-kit made for it.
    let own_account = get_associated_token_address(&gate.fee_payer, &chain.market.mint);
    let own_account_rent = chain.lamports(&own_account).await;
    assert_eq!(
        own_account_rent, 2_039_280,
        "pay-kit's fee payer's own USDC account"
    );
    assert_eq!(
        fee_payer_before - chain.lamports(&gate.fee_payer).await,
        4 * LAMPORTS_PER_SIGNATURE + channel_rent + own_account_rent,
        "the fee payer's spending"
    );
}

/// An `upto` offer of ours for `PRICE` of mainnet USDC, as a seller sponsoring its own
/// payments makes it, with the blockhash and slot pay-kit's buyer requires (the
/// specification has both optional).
fn our_offer(fee_payer: &Pubkey, memo: Option<&str>) -> UptoOffer {
    UptoOffer {
        network: DEVNET.into(),
        terms: UptoTerms {
            mint: MAINNET_USDC.parse().unwrap(),
            token_program: anchor_spl::token::ID,
            pay_to: Pubkey::new_unique(),
            max_amount: PRICE,
            fee_payer: *fee_payer,
            receiver_authorizer: *fee_payer,
            withdraw_delay: 900,
            memo: memo.map(str::to_string),
        },
        recent_blockhash: Some(solana_hash::Hash::new_unique()),
        last_valid_block_height: None,
        recent_slot: Some(341_000_000),
        valid_after: None,
        resource: v2::ResourceInfo {
            url: "http://seller.example/paid".into(),
            description: None,
            mime_type: None,
        },
        max_timeout_seconds: 300,
    }
}

/// pay-kit's buyer pays our offer to a seller of the test's making (no validator: with the
/// offer's blockhash and slot, its builder asks no ledger anything): what it presents
/// reads with our `read_payload` (its `openSlot` a decimal string), and its `open` passes
/// our `validate_open`, all the fee payer checks before co-signing, when the offer names
/// a memo. Without one, pay-kit sends a bare `open`, which the specification's client
/// rule forbids ("Clients MUST include a Memo instruction": it keeps concurrent identical
/// opens apart) and our validation refuses: a verifier that pay-kit's buyer is to pay
/// names a memo in every `upto` offer.
#[tokio::test]
async fn paykit_buyer_opens_a_channel_our_validation_accepts_when_the_offer_names_a_memo() {
    let fee_payer = Pubkey::new_unique();
    let policy = SponsorPolicy {
        fee_payer,
        max_compute_unit_price: 1_000,
        max_compute_unit_limit: 200_000,
    };
    let dir = tempfile::tempdir().unwrap();
    let keypair = dir.path().join("paykit-buyer.json");
    let buyer = Keypair::new();
    x402_protocol::keypair::write_keypair_file(&buyer, &keypair).unwrap();

    for memo in [Some("order 42"), None] {
        let offer = our_offer(&fee_payer, memo);
        let ours = offer.to_offer().to_v2();
        let seller = Seller::start(vec![serde_json::to_value(&ours).unwrap()], "", vec![]).await;
        let out = paykit_buyer(&seller.url, &keypair, &offer.terms.mint, PRICE).await;
        assert_eq!(
            (out["challengeStatus"].clone(), out["status"].clone()),
            (402.into(), 200.into()),
            "{out}"
        );

        let presented = seller.presented();
        let payment: v2::PaymentPayload = decode_header(&presented[0].payment).unwrap();
        assert_eq!(payment.accepted, ours, "pay-kit echoes our offer");
        assert_eq!(payment.payload["openSlot"], "341000000", "a decimal string");
        let payload: UptoPayload = serde_json::from_value(payment.payload).unwrap();
        let claimed = read_payload(&payload, &offer.terms, 300, x402_verifier::unix_now())
            .expect("pay-kit's payload states what our offer asked");
        assert_eq!(claimed.opening.payer, buyer.pubkey());
        assert_eq!(claimed.opening.open_slot, 341_000_000);
        let open: VersionedTransaction = decode_transaction(&payload.open_transaction).unwrap();
        let verdict = validate_open(
            &open,
            &offer.terms,
            &claimed.opening,
            &claimed.channel,
            &policy,
        );
        match memo {
            Some(_) => assert_eq!(verdict, Ok(()), "pay-kit's open, with our memo"),
            None => assert_eq!(
                verdict,
                Err(SponsoredDefect::UnexpectedInstruction),
                "pay-kit's bare open"
            ),
        }
    }
}
