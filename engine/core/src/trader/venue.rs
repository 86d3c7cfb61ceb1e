//! Where an exchange's orders go: one boundary, two implementations ([`Route`]).
//!
//! - **Simulated** ([`SimulatedVenue`], backtests): a request reaches the instrument's matcher
//!   (`Book::matcher`, `crate::matching`) after the exchange's latency to it, and the matcher's
//!   executions come back after the latency to the strategy, in the order made (a report never
//!   overtakes an earlier one).
//! - **External** (live trading, [`super::Trader::set_external`]): a request is queued for the
//!   caller ([`super::Trader::drain_requests`]: the gateway sends it) and the venue's reports
//!   come back through [`super::Trader::on_exec`].
//!
//! The order path (`orders.rs`) hands every request to the exchange's route
//! ([`super::Trader::send`]) and takes every report, simulated or the venue's, through one
//! `deliver`: risk, order tracking, the portfolio and the strategies cannot tell them apart.

use std::collections::VecDeque;

use crate::matching::{Exec, SimRequest};
use crate::portfolio::InstrumentId;
use crate::types::{Nanos, Price, Qty, Side};

use super::{ExchangeId, LatencyModel, VenueRequest};

/// What a request asks of the venue.
#[derive(Clone, Copy, Debug)]
pub(super) enum RequestKind {
    New(SimRequest),
    Cancel(u64),
    Amend {
        order_id: u64,
        side: Side,
        price: Price,
        qty: Qty,
    },
}

impl RequestKind {
    /// The request as the caller sends it to an external venue.
    pub(super) fn to_venue(self, exchange: ExchangeId, instrument: InstrumentId) -> VenueRequest {
        match self {
            RequestKind::New(request) => VenueRequest::New {
                exchange,
                instrument,
                request,
            },
            RequestKind::Cancel(order_id) => VenueRequest::Cancel {
                exchange,
                instrument,
                order_id,
            },
            RequestKind::Amend {
                order_id,
                side,
                price,
                qty,
            } => VenueRequest::Amend {
                exchange,
                instrument,
                order_id,
                side,
                price,
                qty,
            },
        }
    }
}

/// A request on its way to the simulated venue's matcher.
#[derive(Clone, Copy, Debug)]
pub(super) struct Request {
    pub arrive_at: Nanos,
    pub instrument: InstrumentId,
    pub kind: RequestKind,
}

/// An execution on its way back from the simulated venue.
#[derive(Clone, Copy, Debug)]
struct Report {
    deliver_at: Nanos,
    exec: Exec,
}

/// Where an exchange's orders go (see the module documentation).
#[derive(Debug)]
pub(super) enum Route {
    Simulated(SimulatedVenue),
    External,
}

/// The simulated venue's two directions of travel, with the exchange's latency.
#[derive(Debug)]
pub(super) struct SimulatedVenue {
    latency: LatencyModel,
    requests: VecDeque<Request>,
    reports: VecDeque<Report>,
}

impl SimulatedVenue {
    pub(super) fn new(latency: LatencyModel) -> SimulatedVenue {
        SimulatedVenue {
            latency,
            requests: VecDeque::with_capacity(64),
            reports: VecDeque::with_capacity(64),
        }
    }

    /// A request sent at `now`: it reaches the matcher after the latency.
    pub(super) fn send(&mut self, now: Nanos, instrument: InstrumentId, kind: RequestKind) {
        self.requests.push_back(Request {
            arrive_at: now.saturating_add(self.latency.to_matcher()),
            instrument,
            kind,
        });
    }

    /// The next request that has reached the matcher by `now`.
    pub(super) fn arrived(&mut self, now: Nanos) -> Option<Request> {
        match self.requests.front() {
            Some(r) if r.arrive_at <= now => self.requests.pop_front(),
            _ => None,
        }
    }

    /// The next execution that has reached the strategy's side by `now`.
    pub(super) fn delivered(&mut self, now: Nanos) -> Option<Exec> {
        match self.reports.front() {
            Some(r) if r.deliver_at <= now => self.reports.pop_front().map(|r| r.exec),
            _ => None,
        }
    }

    /// Puts the matcher's executions (drained) on their way back; returns how many.
    pub(super) fn report(&mut self, execs: &mut Vec<Exec>) -> usize {
        let delay = self.latency.to_strategy();
        let n = execs.len();
        for exec in execs.drain(..) {
            let mut deliver_at = exec.ts.saturating_add(delay);
            if let Some(last) = self.reports.back() {
                deliver_at = deliver_at.max(last.deliver_at);
            }
            self.reports.push_back(Report { deliver_at, exec });
        }
        n
    }
}
