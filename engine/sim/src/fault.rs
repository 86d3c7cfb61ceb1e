//! Injected faults: what they are and how they are written, on the command line
//! (`--fault 1000:kind=gap`) and on the admin endpoint (`POST /sim/fault?kind=gap`).

use std::fmt;
use std::str::FromStr;

use rt_manifest::model::SimCommission;
use rt_manifest::Fixed;

use crate::SimError;

/// One fault. The query form is `kind=<kind>` plus the kind's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `kind=drop[&after=N]`: drop every WebSocket connection (market and user data) without a
    /// close frame, now or once `N` more market-data frames have been sent.
    Drop { after_frames: u64 },
    /// `kind=drop_market`: drop every market-data connection now, without a close frame; user
    /// data streams stay up (a market-data outage alone).
    DropMarket,
    /// `kind=drop_user`: drop every user data stream connection now, without a close frame,
    /// and refuse new listen keys (`-1001`) until `kind=clear`; market data stays up (an
    /// outage of the account's stream alone, for as long as the test needs).
    DropUser,
    /// `kind=freeze_user`: every user data stream connection open now goes silent but stays
    /// open (it sends nothing and answers nothing, not even a ping), as a half-open TCP
    /// connection does; new connections work.
    FreezeUser,
    /// `kind=gap[&count=N]`: do not send the next `N` (default 1) depth diffs; the sim's own
    /// book still applies them, so clients see a sequence gap and a fresh snapshot bridges it.
    Gap { count: u32 },
    /// `kind=malformed`: send one truncated frame on every market-data connection, now.
    Malformed,
    /// `kind=crossed`: the next depth diff is sent with an extra bid above every ask (its ids
    /// in sequence): a client's book would cross. The sim's own book applies the diff as
    /// recorded, so a fresh snapshot repairs the client.
    Crossed,
    /// `kind=reorder`: the next two depth diffs are sent in the opposite order.
    Reorder,
    /// `kind=listen_key_expired`: every user data stream gets a `listenKeyExpired` event and
    /// then no more events (the connection stays open and answers pings), as Binance does
    /// when a listen key expires; a new listen key works.
    ListenKeyExpired,
    /// `kind=stall&ms=N`: send no market data for `N` ms; the replay schedule shifts by as
    /// much (nothing is lost).
    Stall { ms: u64 },
    /// `kind=reject[&count=N][&code=C]`: refuse the next `N` new orders (every new order when
    /// no count is given, until `kind=clear`) with Binance error code `C` (default -1015).
    RejectOrders { count: Option<u32>, code: i32 },
    /// `kind=commission&asset=<quote|base|received|bnb>[&bnb_balance=D]`: charge the
    /// commissions of fills from now on in that asset (see the manifest's
    /// `sim.commission_asset`), with the BNB balance set to `D` when given.
    Commission {
        asset: SimCommission,
        /// 10^-8 BNB.
        bnb_balance: Option<i64>,
    },
    /// `kind=clear`: cancel pending faults (rejection, gaps not yet taken, a scheduled drop,
    /// refused listen keys).
    Clear,
}

impl Fault {
    pub const fn kind(&self) -> &'static str {
        match self {
            Fault::Drop { .. } => "drop",
            Fault::DropMarket => "drop_market",
            Fault::DropUser => "drop_user",
            Fault::FreezeUser => "freeze_user",
            Fault::Gap { .. } => "gap",
            Fault::Malformed => "malformed",
            Fault::Crossed => "crossed",
            Fault::Reorder => "reorder",
            Fault::ListenKeyExpired => "listen_key_expired",
            Fault::Stall { .. } => "stall",
            Fault::RejectOrders { .. } => "reject",
            Fault::Commission { .. } => "commission",
            Fault::Clear => "clear",
        }
    }

    /// Parses the query form (`kind=stall&ms=500`).
    pub fn parse(query: &str) -> Result<Fault, SimError> {
        let bad = |reason: String| SimError::Fault {
            spec: query.to_owned(),
            reason,
        };
        let mut kind = None;
        let mut args: Vec<(&str, &str)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if key == "kind" {
                kind = Some(value);
            } else {
                args.push((key, value));
            }
        }
        let kind = kind.ok_or_else(|| {
            bad("no kind= (one of drop, drop_market, drop_user, freeze_user, gap, malformed, crossed, reorder, listen_key_expired, stall, reject, commission, clear)".into())
        })?;
        let allowed: &[&str] = match kind {
            "drop" => &["after"],
            "gap" => &["count"],
            "malformed" | "clear" | "drop_market" | "drop_user" | "freeze_user" | "crossed"
            | "reorder" | "listen_key_expired" => &[],
            "stall" => &["ms"],
            "reject" => &["count", "code"],
            "commission" => &["asset", "bnb_balance"],
            other => {
                return Err(bad(format!(
                    "unknown kind {other:?} (one of drop, drop_market, drop_user, freeze_user, gap, malformed, crossed, reorder, listen_key_expired, stall, reject, commission, clear)"
                )))
            }
        };
        if let Some((key, _)) = args.iter().find(|(k, _)| !allowed.contains(k)) {
            return Err(bad(format!(
                "kind={kind} takes no parameter {key:?} (it takes: {})",
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            )));
        }
        fn arg<T: FromStr>(
            args: &[(&str, &str)],
            key: &str,
            bad: &dyn Fn(String) -> SimError,
        ) -> Result<Option<T>, SimError> {
            match args.iter().find(|(k, _)| *k == key) {
                None => Ok(None),
                Some((_, v)) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| bad(format!("{key}={v:?} is not a valid number"))),
            }
        }
        Ok(match kind {
            "drop" => Fault::Drop {
                after_frames: arg(&args, "after", &bad)?.unwrap_or(0),
            },
            "gap" => {
                let count = arg(&args, "count", &bad)?.unwrap_or(1);
                if count == 0 {
                    return Err(bad("count=0: a gap skips at least one diff".into()));
                }
                Fault::Gap { count }
            }
            "malformed" => Fault::Malformed,
            "crossed" => Fault::Crossed,
            "reorder" => Fault::Reorder,
            "listen_key_expired" => Fault::ListenKeyExpired,
            "drop_market" => Fault::DropMarket,
            "drop_user" => Fault::DropUser,
            "freeze_user" => Fault::FreezeUser,
            "stall" => Fault::Stall {
                ms: arg(&args, "ms", &bad)?
                    .ok_or_else(|| bad("kind=stall needs ms=<milliseconds>".into()))?,
            },
            "reject" => {
                let code: i32 = arg(&args, "code", &bad)?.unwrap_or(-1015);
                if code >= 0 {
                    return Err(bad(format!(
                        "code={code}: Binance error codes are negative"
                    )));
                }
                Fault::RejectOrders {
                    count: arg(&args, "count", &bad)?,
                    code,
                }
            }
            "commission" => {
                let value = |key: &str| args.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
                let asset = match value("asset") {
                    Some("quote") => SimCommission::Quote,
                    Some("base") => SimCommission::Base,
                    Some("received") => SimCommission::Received,
                    Some("bnb") => SimCommission::Bnb,
                    Some(other) => {
                        return Err(bad(format!(
                            "asset={other:?} (one of quote, base, received, bnb)"
                        )))
                    }
                    None => return Err(bad("kind=commission needs asset=<asset>".into())),
                };
                let bnb_balance = match value("bnb_balance") {
                    None => None,
                    Some(v) => match Fixed::parse(v) {
                        Ok(f) if f.raw() >= 0 => Some(f.raw()),
                        _ => {
                            return Err(bad(format!(
                                "bnb_balance={v:?} is not a non-negative decimal"
                            )))
                        }
                    },
                };
                Fault::Commission { asset, bnb_balance }
            }
            _ => Fault::Clear,
        })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kind={}", self.kind())?;
        match self {
            Fault::Drop { after_frames } if *after_frames > 0 => write!(f, "&after={after_frames}"),
            Fault::Gap { count } => write!(f, "&count={count}"),
            Fault::Stall { ms } => write!(f, "&ms={ms}"),
            Fault::RejectOrders { count, code } => {
                if let Some(count) = count {
                    write!(f, "&count={count}")?;
                }
                write!(f, "&code={code}")
            }
            Fault::Commission { asset, bnb_balance } => {
                let name = match asset {
                    SimCommission::Quote => "quote",
                    SimCommission::Base => "base",
                    SimCommission::Received => "received",
                    SimCommission::Bnb => "bnb",
                };
                write!(f, "&asset={name}")?;
                if let Some(b) = bnb_balance {
                    write!(f, "&bnb_balance={}", Fixed::from_raw(*b))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl FromStr for Fault {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Fault, SimError> {
        Fault::parse(s)
    }
}

/// A fault set from the options, applied once `at_frame` market-data frames have been
/// replayed. Written `<frame>:<query>`, e.g. `2000:kind=drop` or `500:kind=stall&ms=3000`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledFault {
    pub at_frame: u64,
    pub fault: Fault,
}

impl FromStr for ScheduledFault {
    type Err = SimError;
    fn from_str(s: &str) -> Result<ScheduledFault, SimError> {
        let (at, query) = s.split_once(':').ok_or_else(|| SimError::Fault {
            spec: s.to_owned(),
            reason: "expected <frame>:<fault>, e.g. 2000:kind=gap".into(),
        })?;
        let at_frame = at.trim().parse().map_err(|_| SimError::Fault {
            spec: s.to_owned(),
            reason: format!("{at:?} is not a frame count"),
        })?;
        Ok(ScheduledFault {
            at_frame,
            fault: Fault::parse(query)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_every_kind_and_round_trips() {
        let cases = [
            ("kind=drop", Fault::Drop { after_frames: 0 }),
            ("kind=drop&after=10", Fault::Drop { after_frames: 10 }),
            ("kind=gap", Fault::Gap { count: 1 }),
            ("kind=gap&count=3", Fault::Gap { count: 3 }),
            ("kind=malformed", Fault::Malformed),
            ("kind=crossed", Fault::Crossed),
            ("kind=reorder", Fault::Reorder),
            ("kind=listen_key_expired", Fault::ListenKeyExpired),
            ("kind=drop_user", Fault::DropUser),
            ("kind=freeze_user", Fault::FreezeUser),
            ("kind=stall&ms=250", Fault::Stall { ms: 250 }),
            (
                "kind=reject",
                Fault::RejectOrders {
                    count: None,
                    code: -1015,
                },
            ),
            (
                "code=-2010&kind=reject&count=2",
                Fault::RejectOrders {
                    count: Some(2),
                    code: -2010,
                },
            ),
            (
                "kind=commission&asset=bnb&bnb_balance=0.5",
                Fault::Commission {
                    asset: SimCommission::Bnb,
                    bnb_balance: Some(50_000_000),
                },
            ),
            (
                "kind=commission&asset=base",
                Fault::Commission {
                    asset: SimCommission::Base,
                    bnb_balance: None,
                },
            ),
            ("kind=clear", Fault::Clear),
        ];
        for (text, fault) in cases {
            assert_eq!(Fault::parse(text).unwrap(), fault, "{text}");
            assert_eq!(Fault::parse(&fault.to_string()).unwrap(), fault);
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for (text, needle) in [
            ("", "no kind="),
            ("kind=boom", "unknown kind \"boom\""),
            ("kind=stall", "needs ms="),
            ("kind=stall&ms=x", "ms=\"x\" is not a valid number"),
            ("kind=gap&ms=3", "takes no parameter \"ms\""),
            ("kind=gap&count=0", "count=0"),
            ("kind=reject&code=5", "negative"),
            ("kind=commission", "needs asset="),
            ("kind=commission&asset=eth", "asset=\"eth\""),
            ("kind=commission&asset=bnb&bnb_balance=-1", "non-negative"),
        ] {
            let err = Fault::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        let s: ScheduledFault = "20:kind=gap".parse().unwrap();
        assert_eq!(s.at_frame, 20);
        assert!("kind=gap".parse::<ScheduledFault>().is_err());
        assert!("x:kind=gap".parse::<ScheduledFault>().is_err());
    }
}
