//! Kraken's WebSocket v1 public feed as the sim speaks it (`/`): a `systemStatus` on connecting;
//! `{"event":"subscribe","pair":[..],"subscription":{"name":"book","depth":1000}}` (the depth
//! recorded) and `{"name":"trade"}`, and `unsubscribe`, each answered per pair with a
//! `subscriptionStatus` (`subscribed`, `unsubscribed`, or `error` with Kraken's message); `ping`
//! events get a `pong`. A `book` subscription starts with a snapshot of the sim's book (`as`,
//! `bs`, at most the depth), then the recorded updates with their checksums `c`.

use std::collections::BTreeSet;

use rt_venues::checksum::{BookMessage, CheckedBooks, TextBook};
use rt_venues::kraken::{self, Kind, KrakenDecoder, CHECKSUM_DEPTH};
use rt_venues::market::KRAKEN_BOOK_DEPTH;
use serde_json::Value;

use crate::books::{alter_levels, json, write_levels, Dialect, FrameInfo, Request};

/// A level's field after price and volume in a `book` snapshot (its time).
const KRAKEN_TAIL: &str = ",\"0.000000\"]";

#[derive(Debug, Clone, Copy)]
pub(crate) struct Kraken;

/// The channel name of a subscription.
fn channel(book: bool) -> String {
    if book {
        format!("book-{KRAKEN_BOOK_DEPTH}")
    } else {
        "trade".to_owned()
    }
}

fn subscription(book: bool) -> String {
    if book {
        format!("{{\"depth\":{KRAKEN_BOOK_DEPTH},\"name\":\"book\"}}")
    } else {
        "{\"name\":\"trade\"}".to_owned()
    }
}

/// A stable channel id per pair and channel (Kraken numbers its channels per connection).
fn channel_id(pair: &str, book: bool) -> u64 {
    pair.bytes().fold(u64::from(book) + 7, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b)) % 100_000
    })
}

fn status_error(pair: &str, book: bool, message: &str) -> String {
    format!(
        "{{\"errorMessage\":{},\"event\":\"subscriptionStatus\",\"pair\":{},\"status\":\"error\",\"subscription\":{}}}",
        json(message),
        json(pair),
        subscription(book)
    )
}

impl Dialect for Kraken {
    fn name(&self) -> &'static str {
        "kraken"
    }

    fn path(&self) -> &'static str {
        "/"
    }

    fn books(&self) -> CheckedBooks {
        CheckedBooks::new()
    }

    fn read(&self, frame: &[u8], books: &mut CheckedBooks) -> Option<FrameInfo> {
        let mut d = KrakenDecoder::new();
        let f = d.decode(frame).ok()?;
        let book = match f.kind {
            Kind::Book => true,
            Kind::Trade => false,
            Kind::Other => return None,
        };
        if book {
            let msg = BookMessage {
                snapshot: f.snapshot,
                bids: &d.bids,
                asks: &d.asks,
                depth: (f.depth > 0).then_some(f.depth),
                seq_id: None,
                prev_seq_id: None,
                checksum: f.checksum,
            };
            books.apply(f.pair, &msg, kraken::checksum);
        }
        Some(FrameInfo {
            instrument: String::from_utf8_lossy(f.pair).into_owned(),
            book,
            snapshot: f.snapshot,
            ts_ms: None,
        })
    }

    fn hello(&self) -> Option<String> {
        Some(
            "{\"connectionID\":1,\"event\":\"systemStatus\",\"status\":\"online\",\"version\":\"1.9.0\"}"
                .to_owned(),
        )
    }

    fn requests(&self, text: &str, known: &BTreeSet<String>) -> Vec<Request> {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return vec![Request::Reply(
                "{\"errorMessage\":\"Malformed request\",\"event\":\"error\"}".into(),
            )];
        };
        let event = v.get("event").and_then(Value::as_str).unwrap_or("");
        let subscribe = match event {
            "subscribe" => true,
            "unsubscribe" => false,
            "ping" => {
                let reqid = v
                    .get("reqid")
                    .map_or(String::new(), |r| format!(",\"reqid\":{r}"));
                return vec![Request::Reply(format!("{{\"event\":\"pong\"{reqid}}}"))];
            }
            _ => {
                return vec![Request::Reply(
                    "{\"errorMessage\":\"Unsupported event\",\"event\":\"error\"}".into(),
                )]
            }
        };
        let sub = v.get("subscription");
        let name = sub
            .and_then(|s| s.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let depth = sub.and_then(|s| s.get("depth")).and_then(Value::as_u64);
        let pairs: Vec<String> = v
            .get("pair")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let mut out = Vec::new();
        for pair in pairs {
            let book = match name {
                "book" => true,
                "trade" => false,
                _ => {
                    out.push(Request::Reply(status_error(
                        &pair,
                        false,
                        "Subscription name invalid",
                    )));
                    continue;
                }
            };
            if book && depth.unwrap_or(10) != u64::from(KRAKEN_BOOK_DEPTH) {
                out.push(Request::Reply(status_error(
                    &pair,
                    book,
                    "Subscription depth not supported",
                )));
                continue;
            }
            if !known.contains(&pair) {
                let msg = format!("Currency pair not supported {pair}");
                out.push(Request::Reply(status_error(&pair, book, &msg)));
                continue;
            }
            out.push(if subscribe {
                Request::Subscribe {
                    instrument: pair,
                    book,
                }
            } else {
                Request::Unsubscribe {
                    instrument: pair,
                    book,
                }
            });
        }
        out
    }

    fn ack(&self, subscribe: bool, instrument: &str, book: bool) -> String {
        format!(
            "{{\"channelID\":{},\"channelName\":\"{}\",\"event\":\"subscriptionStatus\",\"pair\":{},\"status\":\"{}\",\"subscription\":{}}}",
            channel_id(instrument, book),
            channel(book),
            json(instrument),
            if subscribe { "subscribed" } else { "unsubscribed" },
            subscription(book)
        )
    }

    fn snapshot(&self, instrument: &str, book: &TextBook, _ts_ms: u64, _seq: i64) -> String {
        let depth = KRAKEN_BOOK_DEPTH as usize;
        let mut out = format!("[{},{{\"as\":", channel_id(instrument, true));
        write_levels(
            &mut out,
            book.asks()
                .take(depth)
                .map(|(p, q)| (p.as_bytes(), q.as_bytes())),
            KRAKEN_TAIL,
        );
        out.push_str(",\"bs\":");
        write_levels(
            &mut out,
            book.bids()
                .take(depth)
                .map(|(p, q)| (p.as_bytes(), q.as_bytes())),
            KRAKEN_TAIL,
        );
        out.push_str(&format!("}},\"{}\",{}]", channel(true), json(instrument)));
        out
    }

    fn alter(&self, frame: &[u8], book: &TextBook) -> Option<String> {
        let mut v: Value = serde_json::from_slice(frame).ok()?;
        let top: BTreeSet<Vec<u8>> = book
            .bids()
            .take(CHECKSUM_DEPTH)
            .chain(book.asks().take(CHECKSUM_DEPTH))
            .map(|(p, _)| p.as_bytes().to_vec())
            .collect();
        for part in v.as_array_mut()?.iter_mut() {
            for side in ["a", "b"] {
                if let Some(levels) = part.get_mut(side) {
                    if alter_levels(levels, &top) {
                        return Some(v.to_string());
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn subscriptions_and_statuses_are_kraken_s() {
        let known: BTreeSet<String> = ["XBT/CHF".to_owned()].into();
        let r = Kraken.requests(
            r#"{"event":"subscribe","pair":["XBT/CHF","XBT/FOO"],"subscription":{"name":"book","depth":1000}}"#,
            &known,
        );
        assert_eq!(
            r[0],
            Request::Subscribe {
                instrument: "XBT/CHF".into(),
                book: true
            }
        );
        assert!(
            matches!(&r[1], Request::Reply(e) if e.contains("Currency pair not supported XBT/FOO"))
        );
        let r = Kraken.requests(
            r#"{"event":"subscribe","pair":["XBT/CHF"],"subscription":{"name":"book","depth":10}}"#,
            &known,
        );
        assert!(matches!(&r[0], Request::Reply(e) if e.contains("depth not supported")));
        let ack = Kraken.ack(true, "XBT/CHF", true);
        assert!(ack.contains("\"channelName\":\"book-1000\"") && ack.contains("\"subscribed\""));
        assert_eq!(
            Kraken.requests(r#"{"event":"ping","reqid":7}"#, &known),
            [Request::Reply(r#"{"event":"pong","reqid":7}"#.into())]
        );
    }
}
