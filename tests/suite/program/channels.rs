//! An `upto` channel on the payment-channels program (the committed binary, at its
//! mainnet address) with the instructions the protocol builds: the `open` escrows the
//! deposit and passes the checks the fee payer runs before it co-signs; the fee payer's
//! `settle_and_seal` applies the seller's voucher, and only the receiver authorizer's.

use anchor_lang::solana_program::clock::Clock;
use anchor_spl::associated_token::get_associated_token_address_with_program_id;
use solana_keypair::Keypair;
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;
use x402_protocol::scheme::decode_transaction;
use x402_protocol::scheme::exact::MEMO_PROGRAM;
use x402_protocol::scheme::upto::{
    build_upto, deposited_by, distribute_instruction, funded_by, open_instruction, read_payload,
    reclaim_instruction, settle_and_seal_instructions, validate_open, voucher_message,
    ChannelAccount, ChannelStatus, Opening, UptoTerms, Voucher, Window, PAYMENT_CHANNELS_PROGRAM,
    TREASURY_OWNER,
};
use x402_protocol::SponsorPolicy;
use x402_testkit::bank;

use super::support::*;

/// A market with a funded fee payer and a channel its payer opened for 2 USDC.
struct Opened {
    market: Market,
    fee_payer: Keypair,
    authorizer: Keypair,
    terms: UptoTerms,
    channel: anchor_lang::prelude::Pubkey,
}

#[tokio::test]
async fn the_protocols_open_escrows_the_ceiling_in_a_channel_of_the_program() {
    let Opened {
        mut market,
        terms,
        channel,
        ..
    } = open().await;
    let escrow =
        get_associated_token_address_with_program_id(&channel, &market.mint, &market.token_program);
    assert_eq!(
        market.token_balance(&escrow).await,
        terms.max_amount,
        "the deposit"
    );
    let account = market.account(&channel).await.expect("the channel exists");
    assert_eq!(account.owner, PAYMENT_CHANNELS_PROGRAM);
    // What the janitor and a buyer's recovery read of it, and find it by.
    let read = ChannelAccount::read(&account.data).expect("a channel account");
    assert_eq!(read.status, ChannelStatus::Open);
    assert_eq!(read.address(), channel, "its seeds re-derive its address");
    assert_eq!(
        (read.deposit, read.settled, read.grace_period),
        (terms.max_amount, 0, terms.withdraw_delay)
    );
    assert_eq!(read.payer, market.payer.pubkey());
    assert_eq!(
        (read.payee, read.rent_payer),
        (terms.fee_payer, terms.fee_payer)
    );
    assert!(funded_by(&terms.fee_payer)
        .iter()
        .chain(&deposited_by(&market.payer.pubkey()))
        .all(|filter| filter.matches(&account.data)));
    assert!(!funded_by(&market.payer.pubkey())
        .iter()
        .all(|filter| filter.matches(&account.data)));
    let payer_token = market.payer_token;
    assert_eq!(
        market.token_balance(&payer_token).await,
        100 * USDC - terms.max_amount
    );
}

/// Opens a channel with the protocol's `open`, checked by `validate_open` first.
async fn open() -> Opened {
    let mut market = Market::new(MintKind::SplToken).await;
    let (fee_payer, authorizer) = (Keypair::new(), Keypair::new());
    fund(&mut market.bank, &fee_payer.pubkey(), WALLET_LAMPORTS).await;
    let terms = UptoTerms {
        mint: market.mint,
        token_program: market.token_program,
        pay_to: market.payee,
        max_amount: 2 * USDC,
        fee_payer: fee_payer.pubkey(),
        receiver_authorizer: authorizer.pubkey(),
        withdraw_delay: 3_600,
        memo: None,
    };
    let slot = market
        .bank
        .banks_client
        .get_sysvar::<Clock>()
        .await
        .expect("the clock")
        .slot;
    let opening = Opening {
        payer: market.payer.pubkey(),
        salt: 7,
        open_slot: slot,
    };
    let (open, channel) = open_instruction(&terms.plan(), &opening);
    let memo = anchor_lang::solana_program::instruction::Instruction {
        program_id: MEMO_PROGRAM,
        accounts: Vec::new(),
        data: b"0123456789abcdef0123456789abcdef".to_vec(),
    };
    let buyer = market.payer.insecure_clone();
    let tx = bank::transaction(&mut market.bank, &[open, memo], &[&fee_payer, &buyer]).await;

    // What the fee payer checks before it co-signs passes on this very transaction.
    let policy = SponsorPolicy {
        fee_payer: fee_payer.pubkey(),
        max_compute_unit_price: 0,
        max_compute_unit_limit: 0,
    };
    let versioned = VersionedTransaction::from(tx.clone());
    assert_eq!(
        validate_open(&versioned, &terms, &opening, &channel, &policy),
        Ok(())
    );

    market
        .bank
        .banks_client
        .process_transaction(tx)
        .await
        .expect("the program opens the channel");
    Opened {
        market,
        fee_payer,
        authorizer,
        terms,
        channel,
    }
}

/// The receiver authorizer's (or `signer`'s) voucher for `amount`, valid for 5 minutes.
async fn voucher(opened: &mut Opened, signer: &Keypair, amount: u64) -> Voucher {
    let expires_at = opened.market.now().await + 300;
    let message = voucher_message(&opened.channel, amount, expires_at);
    Voucher {
        channel: opened.channel,
        cumulative_amount: amount,
        expires_at,
        signer: signer.pubkey(),
        signature: signer.sign_message(&message).into(),
    }
}

#[tokio::test]
async fn the_fee_payer_seals_a_channel_with_the_receiver_authorizers_voucher_only() {
    let mut opened = open().await;
    let stranger = Keypair::new();
    let forged = voucher(&mut opened, &stranger, USDC).await;
    let (fee_payer, channel) = (opened.fee_payer.insecure_clone(), opened.channel);
    let settle = |v: &Voucher| settle_and_seal_instructions(&fee_payer.pubkey(), &channel, Some(v));
    let refused = opened.market.send(&settle(&forged), &[&fee_payer]).await;
    assert!(
        refused.is_err(),
        "a voucher its receiver authorizer did not sign"
    );

    let authorizer = opened.authorizer.insecure_clone();
    let real = voucher(&mut opened, &authorizer, 1_250_000).await;
    opened
        .market
        .send(&settle(&real), &[&fee_payer])
        .await
        .expect("the receiver authorizer's voucher settles and seals the channel");
    let sealed_again = opened.market.send(&settle(&real), &[&fee_payer]).await;
    assert!(
        sealed_again.is_err(),
        "a sealed channel settles nothing more"
    );
}

/// Seals `opened`'s channel with `voucher` (none: at zero) and distributes it, as the
/// fee payer; returns the buyer's token balance and the fee payer's lamports before the
/// distribution.
async fn seal_and_distribute(opened: &mut Opened, voucher: Option<&Voucher>) -> (u64, u64) {
    let (fee_payer, channel) = (opened.fee_payer.insecure_clone(), opened.channel);
    let seal = settle_and_seal_instructions(&fee_payer.pubkey(), &channel, voucher);
    opened
        .market
        .send(&seal, &[&fee_payer])
        .await
        .expect("sealed");
    // The treasury's token account for the mint exists on mainnet for USDC; here it is
    // made, as the program requires it.
    let market = &mut opened.market;
    let (mint, token_program) = (market.mint, market.token_program);
    create_ata(&mut market.bank, &TREASURY_OWNER, &mint, token_program).await;
    let payer_token = market.payer_token;
    let before = (
        market.token_balance(&payer_token).await,
        market.lamports(&fee_payer.pubkey()).await,
    );
    let distribute = distribute_instruction(
        &opened.terms.plan(),
        &channel,
        &market.payer.pubkey(),
        &TREASURY_OWNER,
    );
    market
        .send(&[distribute], &[&fee_payer])
        .await
        .expect("distributed");
    before
}

#[tokio::test]
async fn distribute_pays_the_seller_what_it_charged_refunds_the_rest_and_returns_the_rent() {
    let mut opened = open().await;
    let (fee_payer, channel) = (opened.fee_payer.insecure_clone(), opened.channel);
    let authorizer = opened.authorizer.insecure_clone();
    let charged = voucher(&mut opened, &authorizer, 1_250_000).await;
    let (before, rent_before) = seal_and_distribute(&mut opened, Some(&charged)).await;
    let market = &mut opened.market;
    let (payer_token, payee_token) = (market.payer_token, market.payee_token);
    assert_eq!(
        market.token_balance(&payee_token).await,
        1_250_000,
        "charged"
    );
    assert_eq!(
        market.token_balance(&payer_token).await,
        before + 750_000,
        "the rest back to the buyer"
    );
    let escrow =
        get_associated_token_address_with_program_id(&channel, &market.mint, &market.token_program);
    assert!(
        market.account(&escrow).await.is_none(),
        "the escrow is closed"
    );
    assert!(
        market.lamports(&fee_payer.pubkey()).await > rent_before,
        "the escrow's rent came back to the fee payer"
    );

    // The channel's own rent waits for its slot window (1,500 slots), then comes back.
    let reclaim = reclaim_instruction(&channel, &fee_payer.pubkey());
    let early = market
        .send(std::slice::from_ref(&reclaim), &[&fee_payer])
        .await;
    assert!(early.is_err(), "not before the slot window has passed");
    let channel_rent = market.lamports(&channel).await;
    assert!(
        channel_rent > 0,
        "the distributed channel still holds its rent"
    );
    let slot = market.bank.banks_client.get_root_slot().await.unwrap();
    market.bank.warp_to_slot(slot + 1_600).expect("warp");
    let before = market.lamports(&fee_payer.pubkey()).await;
    market
        .send(&[reclaim], &[&fee_payer])
        .await
        .expect("reclaimed");
    assert!(
        market.account(&channel).await.is_none(),
        "the channel is gone"
    );
    assert!(
        market.lamports(&fee_payer.pubkey()).await + 10_000 > before + channel_rent,
        "its rent came back to the fee payer (less this transaction's fee)"
    );
}

#[tokio::test]
async fn an_abandoned_channel_sealed_at_zero_refunds_the_buyer_in_full() {
    let mut opened = open().await;
    seal_and_distribute(&mut opened, None).await;
    let market = &mut opened.market;
    let (payer_token, payee_token) = (market.payer_token, market.payee_token);
    assert_eq!(
        market.token_balance(&payee_token).await,
        0,
        "nothing charged"
    );
    assert_eq!(
        market.token_balance(&payer_token).await,
        100 * USDC,
        "the whole deposit back"
    );
}

#[tokio::test]
async fn a_buyers_upto_payment_passes_the_fee_payers_checks_and_opens_once_co_signed() {
    let mut market = Market::new(MintKind::SplToken).await;
    let fee_payer = Keypair::new();
    fund(&mut market.bank, &fee_payer.pubkey(), WALLET_LAMPORTS).await;
    let terms = UptoTerms {
        mint: market.mint,
        token_program: market.token_program,
        pay_to: market.payee,
        max_amount: USDC,
        fee_payer: fee_payer.pubkey(),
        receiver_authorizer: Keypair::new().pubkey(),
        withdraw_delay: 3_600,
        memo: Some("invoice-7".into()),
    };
    let clock = market
        .bank
        .banks_client
        .get_sysvar::<Clock>()
        .await
        .expect("the clock");
    let now = clock.unix_timestamp;
    let opening = Opening {
        payer: market.payer.pubkey(),
        salt: 11,
        open_slot: clock.slot,
    };
    let window = Window {
        valid_after: now,
        expires_at: now + 300,
    };
    let blockhash = market.bank.get_new_latest_blockhash().await.unwrap();
    let payload = build_upto(&market.payer, &terms, &opening, window, blockhash);

    // The seller's side: the payload's statements, then its open, before co-signing.
    let claimed = read_payload(&payload, &terms, 300, now).expect("the payload reads");
    let mut tx: VersionedTransaction = decode_transaction(&payload.open_transaction).unwrap();
    let policy = SponsorPolicy {
        fee_payer: fee_payer.pubkey(),
        max_compute_unit_price: 1,
        max_compute_unit_limit: 200_000,
    };
    validate_open(&tx, &terms, &claimed.opening, &claimed.channel, &policy)
        .expect("the open passes");
    tx.signatures[0] = fee_payer.sign_message(&tx.message.serialize());
    market
        .bank
        .banks_client
        .process_transaction(tx)
        .await
        .expect("the co-signed open lands within its compute budget");
    let escrow = get_associated_token_address_with_program_id(
        &claimed.channel,
        &market.mint,
        &market.token_program,
    );
    assert_eq!(market.token_balance(&escrow).await, USDC);
}
