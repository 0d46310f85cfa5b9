//! `x402 channels`: the wallet's channels (`upto` and `batch-settlement`), `x402 channels
//! recover`: a deposit back from a seller that never settled (`request_close`, then
//! `withdraw_payer` once the grace period has passed), and `x402 channels close`: a
//! `batch-settlement` channel closed with its seller, the rest back at once.

use std::path::Path;

use anchor_lang::prelude::Pubkey;
use solana_signer::Signer;
use x402_client::channels::{buyer_channels, recover, BuyerChannel, Recovery, Step};
use x402_client::{ChainClock, ChannelBook, X402Client};
use x402_protocol::keypair::read_keypair_file;
use x402_protocol::scheme::upto::ChannelStatus;
use x402_protocol::LedgerError;

use super::connect;
use super::exit::{fail, Exit, Failure};
use super::output::{
    print_json, ChannelView, Channels, ClosedChannels, ClosedView, Recovered, RecoveryView,
};

/// A ledger's refusal or silence, as `x402` ends on it.
fn ledger_failure(error: LedgerError) -> Failure {
    match error {
        LedgerError::Unavailable(_) => fail(Exit::Unavailable, error),
        LedgerError::Rejected(_) => fail(Exit::Error, error),
    }
}

pub async fn list(keypair: &Path, rpc_url: &str, json: bool) -> Result<Exit, Failure> {
    let payer = read_keypair_file(keypair).map_err(|e| fail(Exit::Error, e))?;
    let ledger = connect(rpc_url).await?;
    let channels = buyer_channels(&ledger, &payer.pubkey())
        .await
        .map_err(ledger_failure)?;
    let now = ChainClock::read(&ledger)
        .await
        .map_err(ledger_failure)?
        .unix_timestamp;
    if json {
        print_json(&Channels {
            channels: channels.iter().map(|c| view(c, now)).collect(),
            payer: payer.pubkey().to_string(),
        });
        return Ok(Exit::Done);
    }
    for channel in &channels {
        let account = &channel.account;
        println!(
            "{} {:<11} deposit {} settled {} of {} (grace period {} s): {}",
            channel.address,
            status(channel),
            account.deposit,
            account.settled,
            account.mint,
            account.grace_period,
            withdrawal(channel, now)
        );
    }
    println!("{} channels", channels.len());
    Ok(Exit::Done)
}

pub async fn recover_channels(
    keypair: &Path,
    rpc_url: &str,
    only: Option<Pubkey>,
    json: bool,
) -> Result<Exit, Failure> {
    let payer = read_keypair_file(keypair).map_err(|e| fail(Exit::Error, e))?;
    let ledger = connect(rpc_url).await?;
    let mut channels = buyer_channels(&ledger, &payer.pubkey())
        .await
        .map_err(ledger_failure)?;
    if let Some(only) = only {
        channels.retain(|channel| channel.address == only);
        if channels.is_empty() {
            return Err(fail(
                Exit::Error,
                format!("{only} is no channel of {}", payer.pubkey()),
            ));
        }
    }
    let now = ChainClock::read(&ledger)
        .await
        .map_err(ledger_failure)?
        .unix_timestamp;
    let mut done = Vec::with_capacity(channels.len());
    for channel in &channels {
        let recovery = recover(&ledger, &payer, channel, now)
            .await
            .map_err(ledger_failure)?;
        if !json {
            println!("{}: {}", channel.address, said(&recovery, now));
        }
        done.push((channel.address, recovery));
    }
    // Scripts tell a deposit still held by its grace period by the exit code.
    let waiting = done
        .iter()
        .any(|(_, recovery)| matches!(recovery, Recovery::Wait { .. }));
    if json {
        print_json(&Recovered {
            channels: done
                .iter()
                .map(|(channel, recovery)| recovery_view(channel, recovery))
                .collect(),
        });
    } else if done.is_empty() {
        println!("no channels to recover");
    }
    Ok(if waiting { Exit::NotYet } else { Exit::Done })
}

fn status(channel: &BuyerChannel) -> &'static str {
    match channel.account.status {
        ChannelStatus::Open => "open",
        ChannelStatus::Closing => "closing",
        ChannelStatus::Sealed if channel.account.payer_withdrawn_at != 0 => "withdrawn",
        ChannelStatus::Sealed => "sealed",
        ChannelStatus::Distributed => "distributed",
    }
}

/// When the deposit can be withdrawn, for people.
fn withdrawal(channel: &BuyerChannel, now: i64) -> String {
    match channel.step(now) {
        Step::RequestClose => format!(
            "withdrawable {} s after `x402 channels recover {}`",
            channel.account.grace_period, channel.address
        ),
        Step::WaitUntil(at) => format!("withdrawable at {at} (in {} s)", at - now),
        Step::Withdraw { refund, .. } => format!("{refund} withdrawable now"),
        Step::Done => "nothing left to withdraw".into(),
    }
}

/// What a recovery did, for people.
fn said(recovery: &Recovery, now: i64) -> String {
    match recovery {
        Recovery::CloseRequested {
            transaction,
            grace_period,
        } => format!(
            "close requested ({transaction}); the seller may still settle for {grace_period} s: \
             run `x402 channels recover` again after that to withdraw"
        ),
        Recovery::Wait { until } => format!(
            "the grace period ends at {until}: wait {} s and run again; nothing moved",
            until - now
        ),
        Recovery::Withdrawn {
            transaction,
            refund,
        } => format!("withdrew {refund} base units ({transaction})"),
        Recovery::Nothing => "nothing left to withdraw".into(),
    }
}

fn view(channel: &BuyerChannel, now: i64) -> ChannelView {
    let account = &channel.account;
    ChannelView {
        address: channel.address.to_string(),
        deposit: account.deposit.to_string(),
        grace_period: account.grace_period,
        mint: account.mint.to_string(),
        payee: account.payee.to_string(),
        settled: account.settled.to_string(),
        status: status(channel),
        withdrawable_at: match channel.step(now) {
            Step::WaitUntil(at) => Some(at),
            Step::Withdraw { .. } => Some(now),
            Step::RequestClose | Step::Done => None,
        },
    }
}

fn recovery_view(channel: &Pubkey, recovery: &Recovery) -> RecoveryView {
    let (action, transaction, refund, withdrawable_at) = match recovery {
        Recovery::CloseRequested { transaction, .. } => {
            ("requestClose", Some(transaction.clone()), None, None)
        }
        Recovery::Wait { until } => ("wait", None, None, Some(*until)),
        Recovery::Withdrawn {
            transaction,
            refund,
        } => (
            "withdraw",
            Some(transaction.clone()),
            Some(refund.to_string()),
            None,
        ),
        Recovery::Nothing => ("none", None, None, None),
    };
    RecoveryView {
        action,
        channel: channel.to_string(),
        refund,
        transaction,
        withdrawable_at,
    }
}

/// Closes the `batch-settlement` channel `channel` kept in `book` (or every open one)
/// with its seller: what it accepted is settled and the rest comes back at once.
pub async fn close(
    keypair: &Path,
    book: &Path,
    channel: Option<&str>,
    json: bool,
) -> Result<Exit, Failure> {
    let payer = read_keypair_file(keypair).map_err(|e| fail(Exit::Error, e))?;
    let book = ChannelBook::open(book).map_err(|e| fail(Exit::Error, e))?;
    let open: Vec<String> = book
        .channels()
        .into_iter()
        .filter(|held| !held.closed && channel.is_none_or(|c| c == held.channel))
        .map(|held| held.channel)
        .collect();
    if let (Some(channel), true) = (channel, open.is_empty()) {
        return Err(fail(
            Exit::Usage,
            format!("no open channel {channel} is kept here"),
        ));
    }
    let client = X402Client::builder()
        .keypair(payer)
        .channel_book(book)
        .build();
    let mut closed = Vec::new();
    for channel in open {
        let refunded = client.close_channel(&channel).await?;
        if !json {
            println!("{channel} closed: {refunded} base units back");
        }
        closed.push(ClosedView {
            channel,
            refunded: refunded.to_string(),
        });
    }
    if json {
        print_json(&ClosedChannels { closed });
    }
    Ok(Exit::Done)
}
