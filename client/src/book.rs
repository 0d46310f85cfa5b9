//! The buyer's `batch-settlement` channels, kept so that a buyer that restarts continues
//! the same channel and never signs two vouchers for one increment.
//!
//! Each channel is a JSON file in the book's directory, written whole and renamed into
//! place after an fsync. What a voucher signs is written before the voucher leaves the
//! client (`signed`); what the seller confirmed is written after its answer
//! (`confirmed`). A book without a directory lives in memory only.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use x402_protocol::scheme::batch::{BatchTerms, ChannelConfig, SERVER_SIGNER};
use x402_protocol::wire;

/// One of the buyer's channels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldChannel {
    /// The channel's address.
    pub channel: String,
    /// The URL of the paid resource it was last used for: a later request to it pays
    /// at once, with no 402 first.
    pub resource: String,
    /// The offer it pays, as the seller wrote it (a payment echoes it).
    pub offer: wire::v2::PaymentRequirements,
    pub config: ChannelConfig,
    /// The seller's fee payer: the channel's payee.
    pub fee_payer: String,
    /// Base units escrowed.
    pub deposit: u64,
    /// What the seller confirmed it accepted, cumulatively.
    pub confirmed: u64,
    /// The highest cumulative amount signed (at least `confirmed`).
    pub signed: u64,
    /// Closed (refunded, or refused by the seller as closing): never paid into again.
    pub closed: bool,
}

impl HeldChannel {
    /// Whether this channel pays offers of `terms` on `network`.
    pub fn pays(&self, network: &str, terms: &BatchTerms) -> bool {
        let config = &self.config;
        !self.closed
            && self.offer.network == network
            && self.fee_payer == terms.fee_payer.to_string()
            && config.receiver == terms.pay_to.to_string()
            && config.receiver_authorizer == terms.receiver_authorizer.to_string()
            && config.token == terms.mint.to_string()
            && config.withdraw_delay == u64::from(terms.withdraw_delay)
            // The offer's mode: the buyer's own vouchers, or this operator's.
            && match terms.operator {
                Some(operator) => {
                    config.voucher_signer.as_deref() == Some(SERVER_SIGNER)
                        && config.payer_authorizer == operator.to_string()
                }
                None => config.voucher_signer.as_deref().is_none_or(|s| s != SERVER_SIGNER),
            }
    }
}

/// Why the book could not keep a channel: nothing may be signed then.
#[derive(Debug, thiserror::Error)]
#[error("the channel book cannot be written: {0}")]
pub struct BookError(String);

/// The buyer's channels, by address.
#[derive(Debug, Default)]
pub struct ChannelBook {
    dir: Option<PathBuf>,
    held: Mutex<HashMap<String, HeldChannel>>,
}

impl ChannelBook {
    /// A book kept in `dir` (created), with the channels it holds already.
    pub fn open(dir: &Path) -> Result<Self, BookError> {
        let error = |e: std::io::Error| BookError(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(error)?;
        let mut held = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(error)? {
            let path = entry.map_err(error)?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).map_err(error)?;
                let channel: HeldChannel = serde_json::from_str(&text)
                    .map_err(|e| BookError(format!("{}: {e}", path.display())))?;
                held.insert(channel.channel.clone(), channel);
            }
        }
        Ok(ChannelBook {
            dir: Some(dir.to_path_buf()),
            held: Mutex::new(held),
        })
    }

    /// Every channel held, open or closed.
    pub fn channels(&self) -> Vec<HeldChannel> {
        let mut all: Vec<HeldChannel> = self.lock().values().cloned().collect();
        all.sort_by(|a, b| a.channel.cmp(&b.channel));
        all
    }

    /// The open channel that pays offers of `terms` on `network`, if any.
    pub fn paying(&self, network: &str, terms: &BatchTerms) -> Option<HeldChannel> {
        self.lock()
            .values()
            .find(|held| held.pays(network, terms))
            .cloned()
    }

    /// The open channel last used for `resource`, if any.
    pub fn for_resource(&self, resource: &str) -> Option<HeldChannel> {
        self.lock()
            .values()
            .find(|held| !held.closed && held.resource == resource)
            .cloned()
    }

    pub fn get(&self, channel: &str) -> Option<HeldChannel> {
        self.lock().get(channel).cloned()
    }

    /// Keeps `channel` as it now stands: on disk first, then in memory.
    pub fn put(&self, channel: HeldChannel) -> Result<(), BookError> {
        if let Some(dir) = &self.dir {
            write_atomically(dir, &channel)?;
        }
        self.lock().insert(channel.channel.clone(), channel);
        Ok(())
    }

    /// Changes the channel `address` with `change`, and keeps it.
    pub fn update(
        &self,
        address: &str,
        change: impl FnOnce(&mut HeldChannel),
    ) -> Result<Option<HeldChannel>, BookError> {
        let Some(mut channel) = self.get(address) else {
            return Ok(None);
        };
        change(&mut channel);
        self.put(channel.clone())?;
        Ok(Some(channel))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HeldChannel>> {
        self.held.lock().expect("not poisoned")
    }
}

/// Writes `channel` to `<dir>/<address>.json`: a temporary file, synced, renamed over the
/// old one, and the directory synced, so that a crash leaves the old or the new whole.
fn write_atomically(dir: &Path, channel: &HeldChannel) -> Result<(), BookError> {
    let error = |e: std::io::Error| BookError(format!("{}: {e}", dir.display()));
    let path = dir.join(format!("{}.json", channel.channel));
    let temporary = dir.join(format!(".{}.json.tmp", channel.channel));
    let text = serde_json::to_vec_pretty(channel).expect("plain fields serialize");
    let mut file = std::fs::File::create(&temporary).map_err(error)?;
    file.write_all(&text).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&temporary, &path).map_err(error)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(channel: &str, resource: &str) -> HeldChannel {
        let offer: wire::v2::PaymentRequirements = serde_json::from_value(serde_json::json!({
            "scheme": "batch-settlement", "network": "solana:test", "amount": "10",
            "asset": "m", "payTo": "p", "maxTimeoutSeconds": 60, "extra": {}
        }))
        .unwrap();
        HeldChannel {
            channel: channel.into(),
            resource: resource.into(),
            offer,
            config: ChannelConfig {
                payer: "a".into(),
                payer_authorizer: "a".into(),
                receiver: "p".into(),
                receiver_authorizer: "r".into(),
                token: "m".into(),
                withdraw_delay: 3600,
                salt: "1".into(),
                open_slot: 2,
                voucher_signer: None,
            },
            fee_payer: "f".into(),
            deposit: 100,
            confirmed: 10,
            signed: 20,
            closed: false,
        }
    }

    #[test]
    fn a_book_reopened_holds_what_was_written_last() {
        let dir = tempfile::tempdir().unwrap();
        let book = ChannelBook::open(dir.path()).unwrap();
        book.put(held("c1", "https://seller/a")).unwrap();
        book.update("c1", |c| c.signed = 30).unwrap();
        book.put(held("c2", "https://seller/b")).unwrap();
        drop(book);
        let reopened = ChannelBook::open(dir.path()).unwrap();
        assert_eq!(reopened.get("c1").unwrap().signed, 30);
        assert_eq!(
            reopened.for_resource("https://seller/b").unwrap().channel,
            "c2"
        );
        assert_eq!(reopened.channels().len(), 2);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
