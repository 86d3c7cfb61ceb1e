//! OKX v5's public WebSocket as the sim speaks it (`/ws/v5/public`): `{"op":"subscribe",
//! "args":[{"channel":"books","instId":..},..]}` and `unsubscribe`, acknowledged with
//! `{"event":"subscribe","arg":{..},"connId":..}`; an unknown instrument or channel is an
//! `{"event":"error","code":"60018",..}`; the text `ping` is answered `pong`. A `books`
//! subscription starts with a snapshot of the sim's book (every level it holds, with OKX's
//! checksum of it), then the recorded updates; `trades` are sent as recorded. Book messages
//! carry `seqId` and `prevSeqId` as today's API sends them (-1 before a snapshot), numbered by
//! the sim per instrument.

use std::collections::BTreeSet;

use rt_venues::checksum::{BookMessage, CheckedBooks, TextBook};
use rt_venues::okx::{self, Channel, OkxDecoder, CHECKSUM_DEPTH};
use serde_json::Value;

use crate::books::{alter_levels, json, write_levels, Dialect, FrameInfo, Request};

/// The sim's connection id in OKX's acknowledgements.
const CONN_ID: &str = "5f1b7f3a";

/// A level's fields after price and size in a `books` snapshot (liquidated orders, orders).
const OKX_TAIL: &str = ",\"0\",\"1\"]";

#[derive(Debug, Clone, Copy)]
pub(crate) struct Okx;

fn channel_name(book: bool) -> &'static str {
    if book {
        "books"
    } else {
        "trades"
    }
}

fn error(msg: &str) -> String {
    format!(
        "{{\"event\":\"error\",\"code\":\"60018\",\"msg\":{},\"connId\":\"{CONN_ID}\"}}",
        json(msg)
    )
}

impl Dialect for Okx {
    fn name(&self) -> &'static str {
        "okx"
    }

    fn path(&self) -> &'static str {
        "/ws/v5/public"
    }

    fn books(&self) -> CheckedBooks {
        CheckedBooks::new()
    }

    fn read(&self, frame: &[u8], books: &mut CheckedBooks) -> Option<FrameInfo> {
        let mut d = OkxDecoder::new();
        let f = d.decode(frame).ok()?;
        let book = match f.channel {
            Channel::Books => true,
            Channel::Trades => false,
            Channel::Tickers | Channel::Other => return None,
        };
        if book {
            let msg = BookMessage {
                snapshot: f.snapshot,
                bids: &d.bids,
                asks: &d.asks,
                depth: None,
                seq_id: f.seq_id,
                prev_seq_id: f.prev_seq_id,
                checksum: f.checksum.map(|c| c as i32 as u32),
            };
            books.apply(f.inst_id, &msg, okx::checksum);
        }
        Some(FrameInfo {
            instrument: String::from_utf8_lossy(f.inst_id).into_owned(),
            book,
            snapshot: f.snapshot,
            ts_ms: Some(f.ts_ms),
        })
    }

    fn hello(&self) -> Option<String> {
        None
    }

    fn requests(&self, text: &str, known: &BTreeSet<String>) -> Vec<Request> {
        if text == "ping" {
            return vec![Request::Reply("pong".into())];
        }
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return vec![Request::Reply(error(&format!("Invalid request: {text}")))];
        };
        let op = v.get("op").and_then(Value::as_str).unwrap_or("");
        let subscribe = match op {
            "subscribe" => true,
            "unsubscribe" => false,
            _ => return vec![Request::Reply(error(&format!("Invalid request: {text}")))],
        };
        let args = v.get("args").and_then(Value::as_array).cloned();
        let mut out = Vec::new();
        for arg in args.unwrap_or_default() {
            let channel = arg.get("channel").and_then(Value::as_str).unwrap_or("");
            let inst = arg.get("instId").and_then(Value::as_str).unwrap_or("");
            let book = match channel {
                "books" => true,
                "trades" => false,
                _ => {
                    out.push(Request::Reply(error(&format!(
                        "Wrong URL or channel:{channel},instId:{inst} doesn't exist"
                    ))));
                    continue;
                }
            };
            if !known.contains(inst) {
                out.push(Request::Reply(error(&format!(
                    "Wrong URL or channel:{channel},instId:{inst} doesn't exist"
                ))));
                continue;
            }
            let instrument = inst.to_owned();
            out.push(if subscribe {
                Request::Subscribe { instrument, book }
            } else {
                Request::Unsubscribe { instrument, book }
            });
        }
        out
    }

    fn ack(&self, subscribe: bool, instrument: &str, book: bool) -> String {
        format!(
            "{{\"event\":\"{}\",\"arg\":{{\"channel\":\"{}\",\"instId\":{}}},\"connId\":\"{CONN_ID}\"}}",
            if subscribe { "subscribe" } else { "unsubscribe" },
            channel_name(book),
            json(instrument)
        )
    }

    fn snapshot(&self, instrument: &str, book: &TextBook, ts_ms: u64, seq: i64) -> String {
        let checksum = okx::checksum(book, &mut Vec::new()) as i32;
        let mut out = format!(
            "{{\"arg\":{{\"channel\":\"books\",\"instId\":{}}},\"action\":\"snapshot\",\"data\":[{{\"asks\":",
            json(instrument)
        );
        write_levels(
            &mut out,
            book.asks().map(|(p, q)| (p.as_bytes(), q.as_bytes())),
            OKX_TAIL,
        );
        out.push_str(",\"bids\":");
        write_levels(
            &mut out,
            book.bids().map(|(p, q)| (p.as_bytes(), q.as_bytes())),
            OKX_TAIL,
        );
        out.push_str(&format!(
            ",\"ts\":\"{ts_ms}\",\"checksum\":{checksum},\"prevSeqId\":-1,\"seqId\":{seq}}}]}}"
        ));
        out
    }

    fn sequence(&self, frame: String, seq: i64, prev: i64) -> String {
        // `..."checksum":N}]}` -> `..."checksum":N,"prevSeqId":P,"seqId":S}]}`: the data
        // object's last fields (a frame not ending so is sent as recorded).
        match frame.strip_suffix("}]}") {
            Some(head) => format!("{head},\"prevSeqId\":{prev},\"seqId\":{seq}}}]}}"),
            None => frame,
        }
    }

    fn alter(&self, frame: &[u8], book: &TextBook) -> Option<String> {
        let mut v: Value = serde_json::from_slice(frame).ok()?;
        let top: BTreeSet<Vec<u8>> = book
            .bids()
            .take(CHECKSUM_DEPTH)
            .chain(book.asks().take(CHECKSUM_DEPTH))
            .map(|(p, _)| p.as_bytes().to_vec())
            .collect();
        let data = v.get_mut("data")?.get_mut(0)?;
        for side in ["bids", "asks"] {
            if let Some(levels) = data.get_mut(side) {
                if alter_levels(levels, &top) {
                    return Some(v.to_string());
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
    fn subscriptions_acks_and_errors_are_okx_s() {
        let known: BTreeSet<String> = ["BTC-USDT".to_owned()].into();
        let r = Okx.requests(
            r#"{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},{"channel":"trades","instId":"ETH-USDT"}]}"#,
            &known,
        );
        assert_eq!(
            r[0],
            Request::Subscribe {
                instrument: "BTC-USDT".into(),
                book: true
            }
        );
        assert!(
            matches!(&r[1], Request::Reply(e) if e.contains("60018") && e.contains("ETH-USDT"))
        );
        assert_eq!(
            Okx.ack(false, "BTC-USDT", true),
            r#"{"event":"unsubscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"5f1b7f3a"}"#
        );
        assert_eq!(
            Okx.requests("ping", &known),
            [Request::Reply("pong".into())]
        );
    }
}
