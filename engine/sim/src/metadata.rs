//! The instrument metadata of the OKX and Kraken exchanges the sim serves, on its REST port as
//! the venues serve theirs: OKX `GET /api/v5/public/instruments?instType=T` (`{"code":"0",
//! "msg":"","data":[..]}`, the instruments of that type) and Kraken `GET /0/public/AssetPairs`
//! (`{"error":[],"result":{..}}`), for every manifest exchange on those venues whose
//! `endpoints.rest` is the sim's address. What is served is the exchange's metadata file (the
//! manifest's `metadata`, the file the compiler checked the instruments against and whose
//! SHA-256 the manifest holds), as Binance's `exchangeInfo` is served from the manifest's
//! instruments (`venue.rs`).
//!
//! Fault, `POST /sim/metadata/fault?venue=okx|kraken&instrument=SYMBOL&field=F&value=V`: from
//! now on the venue lists the instrument (OKX `instId`, Kraken `wsname`, `/` as `%2F`) with
//! field `F` set to `V` (a number where the venue writes one, as Kraken's `pair_decimals`): what
//! an engine starting now finds differs from its configuration.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rt_manifest::model::Venue as VenueKind;
use rt_manifest::Manifest;
use serde_json::Value;

use crate::SimError;

/// The metadata served, per venue: OKX's instruments (a list), Kraken's pairs (an object).
#[derive(Debug, Default)]
pub(crate) struct Served {
    okx: Option<Mutex<Vec<Value>>>,
    kraken: Option<Mutex<serde_json::Map<String, Value>>>,
}

fn read(path: &str) -> Result<Value, SimError> {
    let fail = |reason: String| SimError::Fault {
        spec: path.to_owned(),
        reason: format!("the venue's metadata file: {reason}"),
    };
    let text = std::fs::read_to_string(Path::new(path)).map_err(|e| fail(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| fail(e.to_string()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Served {
    /// The metadata of the manifest's OKX and Kraken exchanges whose `endpoints.rest` is `rest`
    /// (the first of each venue).
    pub fn load(manifest: &Manifest, rest: SocketAddr) -> Result<Served, SimError> {
        let mut out = Served::default();
        for (name, ex) in &manifest.exchanges {
            let here = crate::endpoint(name, "rest", &ex.endpoints.rest, "http://")
                .is_ok_and(|addr| addr == rest && addr.port() != 0);
            let Some(path) = ex.metadata.as_deref().filter(|_| here) else {
                continue;
            };
            match ex.venue {
                VenueKind::Okx if out.okx.is_none() => {
                    let v = read(path)?;
                    let rows = v.get("data").unwrap_or(&v).as_array().cloned();
                    let rows = rows.ok_or_else(|| SimError::Fault {
                        spec: path.to_owned(),
                        reason: "not OKX's instruments (a list, or `data`)".into(),
                    })?;
                    out.okx = Some(Mutex::new(rows));
                }
                VenueKind::Kraken if out.kraken.is_none() => {
                    let v = read(path)?;
                    let pairs = v.get("result").unwrap_or(&v).as_object().cloned();
                    let pairs = pairs.ok_or_else(|| SimError::Fault {
                        spec: path.to_owned(),
                        reason: "not Kraken's AssetPairs (an object, or `result`)".into(),
                    })?;
                    out.kraken = Some(Mutex::new(pairs));
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The answer to a metadata request (status, body), `None` for another request.
    pub fn answer(&self, method: &str, path: &str, query: &str) -> Option<(u16, String)> {
        if method != "GET" {
            return None;
        }
        let param = |key: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v)
        };
        if path == rt_venues::metadata::OKX_PATH {
            let rows = lock(self.okx.as_ref()?);
            let Some(kind) = param("instType") else {
                let body = rt_venues::okx::execution::answer(
                    51000,
                    "Parameter instType can not be empty",
                    Vec::new(),
                );
                return Some((200, body));
            };
            let data = rows
                .iter()
                .filter(|r| r.get("instType").and_then(Value::as_str) == Some(kind))
                .filter(|r| {
                    param("instId").map_or(true, |i| r.get("instId") == Some(&Value::from(i)))
                })
                .cloned()
                .collect();
            return Some((200, rt_venues::okx::execution::answer(0, "", data)));
        }
        if path == rt_venues::metadata::KRAKEN_PATH {
            let pairs = lock(self.kraken.as_ref()?);
            let body = serde_json::json!({"error": [], "result": Value::Object(pairs.clone())});
            return Some((200, body.to_string()));
        }
        None
    }

    /// `POST /sim/metadata/fault?venue=..&instrument=..&field=..&value=..`.
    pub fn fault(&self, query: &str) -> Result<String, String> {
        let (mut venue, mut instrument, mut field, mut value) = (None, None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("venue", v)) => venue = Some(v.to_owned()),
                Some(("instrument", v)) => instrument = Some(v.replace("%2F", "/")),
                Some(("field", v)) => field = Some(v.to_owned()),
                Some(("value", v)) => value = Some(v.to_owned()),
                _ => return Err(format!("unknown parameter {pair}")),
            }
        }
        let (Some(venue), Some(instrument), Some(field), Some(value)) =
            (venue, instrument, field, value)
        else {
            return Err("venue, instrument, field and value are required".into());
        };
        // A number where the venue writes one (Kraken's decimals), else text.
        let set = |row: &mut Value| -> bool {
            let Some(obj) = row.as_object_mut() else {
                return false;
            };
            let new = match (obj.get(&field), value.parse::<u64>()) {
                (Some(Value::Number(_)), Ok(n)) => Value::from(n),
                _ => Value::from(value.clone()),
            };
            obj.insert(field.clone(), new);
            true
        };
        let done = match venue.as_str() {
            "okx" => {
                let rows = self.okx.as_ref().ok_or("the sim serves no OKX metadata")?;
                lock(rows)
                    .iter_mut()
                    .find(|r| r.get("instId").and_then(Value::as_str) == Some(&instrument))
                    .is_some_and(set)
            }
            "kraken" => {
                let pairs = self
                    .kraken
                    .as_ref()
                    .ok_or("the sim serves no Kraken metadata")?;
                lock(pairs)
                    .values_mut()
                    .find(|p| p.get("wsname").and_then(Value::as_str) == Some(&instrument))
                    .is_some_and(set)
            }
            other => {
                return Err(format!(
                    "the sim serves metadata of okx and kraken, not {other}"
                ))
            }
        };
        if !done {
            return Err(format!("{venue} lists no instrument {instrument}"));
        }
        Ok(serde_json::json!({
            "fault": "metadata",
            "venue": venue,
            "instrument": instrument,
            "field": field,
            "value": value,
        })
        .to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn served() -> Served {
        let okx: Value = serde_json::from_str(
            r#"[{"instId":"BTC-USDT","instType":"SPOT","tickSz":"0.1","minSz":"0.00001"},
                {"instId":"UNI-USD-SWAP","instType":"SWAP","tickSz":"0.001","ctVal":"10"}]"#,
        )
        .unwrap();
        let kraken: Value = serde_json::from_str(
            r#"{"XBTCHF":{"wsname":"XBT/CHF","pair_decimals":1,"lot_decimals":8,"ordermin":"0.0002"}}"#,
        )
        .unwrap();
        Served {
            okx: Some(Mutex::new(okx.as_array().cloned().unwrap())),
            kraken: Some(Mutex::new(kraken.as_object().cloned().unwrap())),
        }
    }

    #[test]
    fn serves_each_venues_format_and_a_fault_changes_one_field() {
        let s = served();
        let (status, body) = s
            .answer("GET", "/api/v5/public/instruments", "instType=SWAP")
            .unwrap();
        assert_eq!(status, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "0");
        assert_eq!(v["data"].as_array().unwrap().len(), 1);
        assert_eq!(v["data"][0]["instId"], "UNI-USD-SWAP");
        let (_, body) = s.answer("GET", "/0/public/AssetPairs", "").unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["result"]["XBTCHF"]["pair_decimals"], 1);
        assert!(s.answer("GET", "/api/v3/exchangeInfo", "").is_none());

        s.fault("venue=kraken&instrument=XBT%2FCHF&field=pair_decimals&value=2")
            .unwrap();
        s.fault("venue=okx&instrument=BTC-USDT&field=minSz&value=0.001")
            .unwrap();
        let (_, body) = s.answer("GET", "/0/public/AssetPairs", "").unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["result"]["XBTCHF"]["pair_decimals"], 2);
        let (_, body) = s
            .answer("GET", "/api/v5/public/instruments", "instType=SPOT")
            .unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"][0]["minSz"], "0.001");
        assert!(s
            .fault("venue=okx&instrument=ETH-USDT&field=minSz&value=1")
            .is_err());
        assert!(s.fault("venue=okx&instrument=BTC-USDT").is_err());
    }
}
