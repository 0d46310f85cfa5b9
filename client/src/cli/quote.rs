//! `x402 quote`: what a URL costs, without paying.

use x402_client::{Challenge, ClientError, Offer, X402Client};

use super::exit::{Exit, Failure};
use super::output::{print_json, shown, OfferView, Quote};

pub async fn quote(url: &str, json: bool) -> Result<Exit, Failure> {
    let client = X402Client::builder().auto_pay(false).build();
    let challenge = match client.get(url).await {
        Ok(paid) => {
            let status = paid.response.status();
            if json {
                print_json(&Quote {
                    offers: None,
                    payment_required: false,
                    status: status.as_u16(),
                    unpayable: None,
                });
            } else {
                println!("{url}: {status}, no payment asked");
            }
            return Ok(Exit::Done);
        }
        Err(ClientError::PaymentRequired(challenge)) => challenge,
        Err(other) => return Err(other.into()),
    };
    let Challenge {
        offers, unpayable, ..
    } = *challenge;
    let offers: Vec<OfferView> = offers.iter().map(view).collect();
    if json {
        print_json(&Quote {
            offers: Some(offers),
            payment_required: true,
            status: 402,
            unpayable: Some(unpayable),
        });
        return Ok(Exit::Done);
    }
    // Every field but the scheme is the server's word.
    for o in &offers {
        let line = format!(
            "{url} costs {} of {} to {} on {}, scheme {}{}{}",
            o.amount,
            o.asset,
            o.pay_to,
            o.network,
            o.scheme,
            if o.sponsored {
                " (sponsored: no SOL needed)"
            } else {
                ""
            },
            if o.description.is_empty() {
                String::new()
            } else {
                format!(": {}", o.description)
            },
        );
        println!("{}", shown(&line));
    }
    for why in &unpayable {
        println!("{}", shown(&format!("{url} also offers {why}")));
    }
    Ok(Exit::Done)
}

fn view(o: &Offer) -> OfferView {
    OfferView {
        amount: o.shown_amount(),
        amount_base_units: o.amount().to_string(),
        asset: o.mint().to_string(),
        description: o.description(),
        expires_at: o.expires_at(),
        network: o.network().to_string(),
        pay_to: o.pay_to().to_string(),
        reference: o.reference().map(|r| r.to_string()),
        scheme: o.scheme(),
        sponsored: o.sponsored(),
    }
}
