//! The order path: a strategy's actions through risk to the simulated or the external venue,
//! execution reports and fills back to the portfolio, the risk engine and the strategies.

use super::*;

impl Trader {
    /// Moves the requests for external venues (in sending order) into `out`.
    pub fn drain_requests(&mut self, out: &mut Vec<VenueRequest>) {
        out.append(&mut self.outbox);
    }

    /// Whether requests for external venues are waiting.
    #[inline]
    pub fn has_requests(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// An external venue's execution report for one of our orders, received at `now` on the
    /// engine's clock. Reports for orders that are not live (already final, unknown) are
    /// counted and otherwise ignored, so a replayed or duplicated report changes nothing.
    pub fn on_exec(&mut self, now: Nanos, exec: Exec) {
        self.on_exec_charged(now, exec, Qty::ZERO);
    }

    /// [`Trader::on_exec`] for a fill whose commission the venue took in the instrument's
    /// base asset: `base_commission` of it leaves the position with the fill (a spot buy of 1
    /// BTC paying 0.001 BTC leaves 0.999). Ignored for anything but a fill.
    pub fn on_exec_charged(&mut self, now: Nanos, exec: Exec, base_commission: Qty) {
        self.advance(now);
        self.deliver(exec, base_commission);
        self.pump();
    }

    /// The live orders, as (order id, instrument, side, leaves): what an operator or a restart
    /// reconciles with the venue.
    pub fn open_orders(&self) -> impl Iterator<Item = (u64, InstrumentId, Side, Qty)> + '_ {
        self.live
            .iter()
            .map(|o| (o.order_id, o.instrument, o.life.side(), o.life.leaves()))
    }

    // ---- order flow ----

    /// Sends the strategy's pending actions through risk to the venue.
    pub(super) fn process_actions(&mut self, s: usize) {
        let mut actions = mem::take(&mut self.actions);
        for action in actions.drain(..) {
            match action {
                Action::Place(order) => self.place(s, &order),
                Action::Cancel(client_id) => {
                    match self
                        .live
                        .iter()
                        .position(|o| o.strategy == s && o.client_id == client_id)
                    {
                        Some(k) => {
                            if !self.live[k].cancel_sent {
                                self.send_cancel(k);
                            }
                        }
                        None => self.counters.cancels_unknown += 1,
                    }
                }
                Action::Amend(amend) => self.amend(s, &amend),
            }
        }
        self.actions = actions;
    }

    /// An amendment of the strategy's live order: checked by risk as the order it would
    /// become, then sent; refused (`NotAmendable`) while the order is not acknowledged or has a
    /// cancel or another amendment in flight, and for an IOC or market order.
    pub(super) fn amend(&mut self, s: usize, amend: &Amend) {
        let Some(k) = self
            .live
            .iter()
            .position(|o| o.strategy == s && o.client_id == amend.client_id)
        else {
            self.counters.amends_unknown += 1;
            return;
        };
        let o = self.live[k];
        let filled = o.life.filled();
        let amendable = matches!(o.kind, OrderKind::Limit | OrderKind::PostOnly)
            && o.life.status().is_acknowledged()
            && !o.cancel_sent
            && o.amend.is_none();
        let verdict = if self.paused {
            Err(RejectReason::Paused)
        } else if !amendable {
            Err(RejectReason::NotAmendable)
        } else if amend.qty.0 <= filled.0 {
            Err(RejectReason::InvalidQty)
        } else {
            let b = &self.books[o.instrument as usize];
            let reference = if b.synced { b.sync.book().mid() } else { None };
            let as_new = NewOrder {
                client_id: o.client_id,
                instrument: o.instrument,
                side: o.life.side(),
                price: amend.price,
                qty: Qty(amend.qty.0 - filled.0),
                kind: o.kind,
            };
            self.risk.check_amend(
                self.clock,
                &as_new,
                amend.qty,
                o.life.leaves(),
                reference,
                &self.portfolio,
            )
        };
        match verdict {
            Err(reason) => {
                self.counters.amends_rejected += 1;
                self.notices
                    .push_back((s, o.slot, amend_update(&o, Some(reason))));
                self.queued += 1;
            }
            Ok(reserved) => {
                self.counters.amends_sent += 1;
                self.live[k].amend = Some(PendingAmend {
                    price: amend.price,
                    qty: amend.qty,
                    reserved,
                });
                self.send(
                    o.instrument,
                    RequestKind::Amend {
                        order_id: o.order_id,
                        side: o.life.side(),
                        price: amend.price,
                        qty: amend.qty,
                    },
                );
            }
        }
    }

    /// A fill of live order `k` whose venue leaves (`leaves`, after it) are the pending
    /// amendment's and not the order's as we hold it: the venue made the amendment and its
    /// answer is late or was lost (a live venue's push). The amendment is taken first, so the
    /// fill is booked against the order the venue holds (an amendment up would otherwise close
    /// the order early and leave the rest working unseen; one down would leave a ghost order).
    /// Returns `k` as it is after (the strategy may act on the amendment).
    fn implied_amendment(&mut self, k: usize, fill: Qty, leaves: Qty) -> usize {
        let o = &self.live[k];
        let Some(a) = o.amend else {
            return k;
        };
        let filled = o.life.filled().0.saturating_add(fill.0);
        let amended = a.qty.0 - filled;
        let held = o.life.qty().0 - filled;
        if a.qty == o.life.qty() || leaves.0 != amended.max(0) || leaves.0 == held.max(0) {
            return k;
        }
        let order_id = o.order_id;
        self.counters.amends_implied += 1;
        self.on_amended(k, Some((a.price, a.qty)), RejectReason::NotAmendable);
        self.live
            .iter()
            .position(|o| o.order_id == order_id)
            .unwrap_or(k)
    }

    /// The venue's answer to an amendment of live order `k`: made (`Some`: the new price and
    /// quantity ordered) or refused.
    pub(super) fn on_amended(
        &mut self,
        k: usize,
        made: Option<(Price, Qty)>,
        refused: RejectReason,
    ) {
        let reserved = self.live[k].amend.take().map_or(Qty::ZERO, |a| a.reserved);
        let before = self.live[k].life.leaves();
        let reason = match made {
            Some((price, qty)) => {
                let o = &mut self.live[k];
                match o.life.apply(OrderEvent::Amended { price, qty }) {
                    Ok(_) => {
                        self.counters.amends_done += 1;
                        None
                    }
                    Err(_) => {
                        // The venue amended below what we hold filled: keep ours, count it.
                        self.counters.order_errors += 1;
                        Some(RejectReason::InvalidQty)
                    }
                }
            }
            None => {
                self.counters.amends_rejected += 1;
                Some(refused)
            }
        };
        let o = self.live[k];
        // Risk held the old leaves plus the reserve; it now holds the order's leaves.
        let held = before.0 + reserved.0;
        self.risk.release_open(
            o.instrument,
            o.life.side(),
            Qty((held - o.life.leaves().0).max(0)),
        );
        if reason.is_none() {
            if let Some(r) = o.record.and_then(|r| self.orders.get_mut(r)) {
                (r.price, r.qty, r.updated_ts) = (o.life.price(), o.life.qty(), self.clock);
            }
            let status = o.life.status().to_strategy();
            self.log_order(&o, status, None);
        }
        self.notify_update(o.strategy, o.slot, &amend_update(&o, reason));
    }

    pub(super) fn place(&mut self, s: usize, order: &NewOrder) {
        self.counters.orders_placed += 1;
        let order_id = self.next_order_id;
        self.next_order_id += 1;
        let slot = self.strategies[s]
            .strategy
            .instruments()
            .iter()
            .position(|&id| id == order.instrument);
        // Paused: nothing new goes out, whichever callback a strategy places it from; the
        // engine's own flatten orders (client ids counted down from u64::MAX) pass.
        let engine_order = order.client_id > self.next_engine_client_id;
        let verdict = match slot {
            _ if self.paused && !engine_order => Err(RejectReason::Paused),
            None => Err(RejectReason::UnknownInstrument),
            Some(_)
                if self
                    .live
                    .iter()
                    .any(|o| o.strategy == s && o.client_id == order.client_id) =>
            {
                Err(RejectReason::DuplicateClientId)
            }
            Some(_) => {
                let b = &self.books[order.instrument as usize];
                let reference = if b.synced { b.sync.book().mid() } else { None };
                self.risk
                    .check(self.clock, order, reference, &self.portfolio)
            }
        };
        let sent = OrderRecord {
            ts: self.clock,
            order_id,
            strategy: u32::try_from(s).unwrap_or(u32::MAX),
            client_id: order.client_id,
            instrument: order.instrument,
            side: order.side,
            price: order.price,
            qty: order.qty,
            kind: order.kind,
            status: if verdict.is_ok() {
                OrderStatus::Sent
            } else {
                OrderStatus::Rejected
            },
            filled_qty: Qty::ZERO,
            reject_reason: verdict.err(),
            updated_ts: self.clock,
        };
        let record = self.push_order(sent);
        if let Some(log) = self.log.as_mut() {
            log.push(TraderEvent::Order(sent));
        }
        let slot = slot.unwrap_or(0);
        match verdict {
            Err(reason) => {
                self.count_reject(reason);
                self.notices.push_back((
                    s,
                    slot,
                    OrderUpdate {
                        client_id: order.client_id,
                        instrument: order.instrument,
                        side: order.side,
                        status: OrderStatus::Rejected,
                        leaves_qty: Qty::ZERO,
                        filled_qty: Qty::ZERO,
                        reject_reason: Some(reason),
                    },
                ));
                self.queued += 1;
            }
            Ok(()) => {
                self.counters.orders_sent += 1;
                self.live.push(LiveOrder {
                    order_id,
                    strategy: s,
                    slot,
                    client_id: order.client_id,
                    instrument: order.instrument,
                    kind: order.kind,
                    sent_ts: self.clock,
                    life: OrderLifecycle::sent(order.side, order.price, order.qty),
                    cancel_sent: false,
                    amend: None,
                    record,
                });
                self.send(
                    order.instrument,
                    RequestKind::New(SimRequest {
                        order_id,
                        side: order.side,
                        price: order.price,
                        qty: order.qty,
                        kind: order.kind,
                    }),
                );
            }
        }
    }

    /// Hands a request to its exchange's route (`venue.rs`): the simulated venue, or the
    /// caller's outbox.
    pub(super) fn send(&mut self, instrument: InstrumentId, kind: RequestKind) {
        let exchange = self.books[instrument as usize].exchange;
        match &mut self.venues[exchange].route {
            Route::External => self.outbox.push(kind.to_venue(exchange, instrument)),
            Route::Simulated(sim) => {
                sim.send(self.clock, instrument, kind);
                self.queued += 1;
            }
        }
    }

    pub(super) fn send_cancel(&mut self, k: usize) {
        let o = &mut self.live[k];
        o.cancel_sent = true;
        let (instrument, order_id) = (o.instrument, o.order_id);
        self.counters.cancels_sent += 1;
        self.send(instrument, RequestKind::Cancel(order_id));
    }

    /// Cancels every live order (of one instrument, or all).
    pub(super) fn cancel_all(&mut self, instrument: Option<InstrumentId>) {
        for k in 0..self.live.len() {
            let o = &self.live[k];
            let matches = match instrument {
                None => true,
                Some(i) => i == o.instrument,
            };
            if !o.cancel_sent && matches {
                self.send_cancel(k);
            }
        }
    }

    /// Handles requests and reports that are due, until none is.
    #[inline]
    pub(super) fn pump(&mut self) {
        if self.queued != 0 {
            self.pump_queued();
        }
    }

    pub(super) fn pump_queued(&mut self) {
        // Handling requests and reports never moves the clock.
        let now = self.clock;
        for _ in 0..MAX_PUMP_ROUNDS {
            let mut progressed = false;
            while let Some((s, slot, update)) = self.notices.pop_front() {
                self.queued -= 1;
                progressed = true;
                self.notify_update(s, slot, &update);
            }
            for x in 0..self.venues.len() {
                while let Some(r) = self.simulated(x).and_then(|s| s.arrived(now)) {
                    self.queued -= 1;
                    progressed = true;
                    self.execute(r);
                }
                while let Some(exec) = self.simulated(x).and_then(|s| s.delivered(now)) {
                    self.queued -= 1;
                    progressed = true;
                    self.deliver(exec, Qty::ZERO);
                }
            }
            if !progressed || self.queued == 0 {
                return;
            }
        }
        self.counters.pump_overflows += 1;
    }

    /// A request reaches the matcher.
    pub(super) fn execute(&mut self, r: Request) {
        let b = &mut self.books[r.instrument as usize];
        match r.kind {
            RequestKind::New(req) => {
                let book = if b.sync.is_synced() {
                    Some(b.sync.book())
                } else {
                    None
                };
                b.matcher.submit(r.arrive_at, &req, book, &mut self.execs);
            }
            RequestKind::Cancel(order_id) => {
                b.matcher.cancel(r.arrive_at, order_id, &mut self.execs)
            }
            RequestKind::Amend {
                order_id,
                price,
                qty,
                ..
            } => {
                let book = b.sync.is_synced().then(|| b.sync.book());
                b.matcher
                    .amend(r.arrive_at, order_id, price, qty, book, &mut self.execs);
            }
        }
        self.queue_execs(r.instrument);
    }

    /// Puts the matcher's executions on their way back.
    pub(super) fn queue_execs(&mut self, instrument: InstrumentId) {
        let exchange = self.books[instrument as usize].exchange;
        match &mut self.venues[exchange].route {
            Route::Simulated(sim) => self.queued += sim.report(&mut self.execs),
            // Nothing is matched in process for an external venue.
            Route::External => self.execs.clear(),
        }
    }

    /// Exchange `x`'s simulated venue (`None`: external).
    /// Records `instrument`'s position as it is now (the position events).
    pub(super) fn record_position(&mut self, instrument: InstrumentId) {
        let p = self.portfolio.position(instrument);
        let position = PositionRecord {
            ts: self.clock,
            instrument,
            position: p.qty(),
            avg_entry_price: p.avg_entry_price().unwrap_or(Price::ZERO),
            realised_pnl: p.realised(),
            unrealised_pnl: p.unrealised(),
            fees: p.fees(),
        };
        if let Some(log) = self.log.as_mut() {
            log.push(TraderEvent::Position(position));
        }
        if self.positions.len() < self.max_records {
            self.positions.push(position);
        } else {
            self.counters.records_dropped += 1;
        }
    }

    fn simulated(&mut self, x: ExchangeId) -> Option<&mut SimulatedVenue> {
        match &mut self.venues[x].route {
            Route::Simulated(sim) => Some(sim),
            Route::External => None,
        }
    }

    /// An execution report reaches the strategy's side.
    pub(super) fn deliver(&mut self, exec: Exec, base_commission: Qty) {
        let Some(k) = self.live.iter().position(|o| o.order_id == exec.order_id) else {
            match exec.kind {
                ExecKind::CancelRejected => self.counters.cancels_rejected += 1,
                ExecKind::AmendRejected(_) => self.counters.amends_rejected += 1,
                _ => {}
            }
            return;
        };
        match exec.kind {
            ExecKind::Accepted => {
                // A live order is not final: an acknowledgement is always taken (a late one
                // leaves a partly filled order as it is).
                let status = match self.live[k].life.accept() {
                    Ok(status) => status.to_strategy(),
                    Err(_) => OrderStatus::Accepted,
                };
                let o = self.live[k];
                self.set_status(o.record, status, o.life.filled());
                self.log_order(&o, status, None);
                self.notify_update(
                    o.strategy,
                    o.slot,
                    &OrderUpdate {
                        client_id: o.client_id,
                        instrument: o.instrument,
                        side: o.life.side(),
                        status,
                        leaves_qty: o.life.leaves(),
                        filled_qty: o.life.filled(),
                        reject_reason: None,
                    },
                );
            }
            ExecKind::Fill {
                price,
                qty,
                maker,
                fee,
            } => {
                let k = self.implied_amendment(k, qty, exec.leaves);
                self.on_fill(k, exec.ts, price, qty, maker, fee, base_commission);
            }
            ExecKind::Rejected(reason) => {
                self.count_reject(reason);
                self.close(k, OrderStatus::Rejected, Some(reason));
            }
            ExecKind::Cancelled => {
                self.counters.orders_cancelled += 1;
                self.close(k, OrderStatus::Cancelled, None);
            }
            ExecKind::Expired => {
                self.counters.orders_expired += 1;
                self.close(k, OrderStatus::Expired, None);
            }
            ExecKind::CancelRejected => {
                // The order is still live here: its fill reports are on their way, or the
                // cancel may be sent again (a pause, a kill, the strategy).
                self.counters.cancels_rejected += 1;
                self.live[k].cancel_sent = false;
            }
            // An answer with no amendment pending (taken as made from a fill already, or a
            // duplicate), or one made as an earlier amendment asked (its answer late: the
            // venue answers the pending one too), changes nothing.
            ExecKind::Amended { .. } | ExecKind::AmendRejected(_)
                if self.live[k].amend.is_none() => {}
            ExecKind::Amended { price, qty }
                if self.live[k]
                    .amend
                    .is_some_and(|a| (a.price, a.qty) != (price, qty)) =>
            {
                self.counters.amends_stale += 1;
            }
            ExecKind::Amended { price, qty } => {
                self.on_amended(k, Some((price, qty)), RejectReason::NotAmendable)
            }
            ExecKind::AmendRejected(reason) => self.on_amended(k, None, reason),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_fill(
        &mut self,
        k: usize,
        match_ts: Nanos,
        price: Price,
        qty: Qty,
        maker: bool,
        fee: Cash,
        base_commission: Qty,
    ) {
        let o = &mut self.live[k];
        if o.life.filled().0 == 0 {
            self.counters.orders_with_fills += 1;
        }
        // The venue traded `qty`: the portfolio and risk book all of it; the order takes what
        // fits it (an overfill is counted, and the order is then filled).
        if !matches!(o.life.apply_fill_capped(qty), Ok(Qty::ZERO)) {
            self.counters.order_errors += 1;
        }
        let o = *o;
        let leaves = o.life.leaves();
        self.portfolio
            .on_fill(o.instrument, o.life.side(), price, qty, fee);
        // A charge shrinks the position, a rebate (negative) grows it.
        if base_commission.0 != 0 {
            self.portfolio
                .on_base_commission(o.instrument, base_commission);
        }
        self.risk.on_fill(o.instrument, o.life.side(), qty);
        self.markouts
            .on_fill(self.clock, o.instrument, o.life.side(), price);
        self.counters.fills += 1;
        if maker {
            self.counters.maker_fills += 1;
        } else {
            self.counters.taker_fills += 1;
        }
        let fill = FillRecord {
            ts: self.clock,
            match_ts,
            order_id: o.order_id,
            strategy: u32::try_from(o.strategy).unwrap_or(u32::MAX),
            client_id: o.client_id,
            instrument: o.instrument,
            side: o.life.side(),
            price,
            qty,
            maker,
            fee,
        };
        if let Some(log) = self.log.as_mut() {
            log.push(TraderEvent::Fill(fill));
        }
        if self.fills.len() < self.max_records {
            self.fills.push(fill);
        } else {
            self.counters.records_dropped += 1;
        }
        self.record_position(o.instrument);
        self.check_equity();
        self.push_equity_sample();
        let ctx = self.ctx(o.instrument, o.slot);
        self.strategies[o.strategy].strategy.on_fill(
            &ctx,
            &FillReport {
                client_id: o.client_id,
                instrument: o.instrument,
                side: o.life.side(),
                price,
                qty,
                leaves_qty: leaves,
                maker,
                fee,
            },
            &mut self.actions,
        );
        if !self.actions.is_empty() {
            self.process_actions(o.strategy);
        }
        match self.live.iter().position(|l| l.order_id == o.order_id) {
            Some(k) if leaves.0 <= 0 => {
                self.counters.orders_filled += 1;
                self.close(k, OrderStatus::Filled, None);
            }
            Some(k) => {
                let o = self.live[k];
                self.set_status(o.record, OrderStatus::PartiallyFilled, o.life.filled());
                self.log_order(&o, OrderStatus::PartiallyFilled, None);
            }
            None => self.set_status(o.record, OrderStatus::PartiallyFilled, o.life.filled()),
        }
    }

    /// An order reached a final status: release its risk, update its record, tell the
    /// strategy.
    pub(super) fn close(&mut self, k: usize, status: OrderStatus, reason: Option<RejectReason>) {
        let mut o = self.live.remove(k);
        let leaves = o.life.unfilled();
        let event = match status {
            OrderStatus::Cancelled => Some(OrderEvent::Canceled),
            OrderStatus::Expired => Some(OrderEvent::Expired),
            OrderStatus::Rejected => Some(OrderEvent::Rejected),
            _ => None,
        };
        if let Some(event) = event {
            if o.life.apply(event).is_err() {
                self.counters.order_errors += 1;
            }
        }
        self.risk
            .on_order_closed(o.instrument, o.life.side(), leaves);
        if let Some(amend) = o.amend.take() {
            // Its amendment's reserve goes with it (the venue's answer finds no order).
            self.risk
                .release_open(o.instrument, o.life.side(), amend.reserved);
        }
        self.log_order(&o, status, reason);
        if let Some(r) = o.record.and_then(|r| self.orders.get_mut(r)) {
            r.status = status;
            r.filled_qty = o.life.filled();
            r.reject_reason = reason;
            r.updated_ts = self.clock;
        }
        self.notify_update(
            o.strategy,
            o.slot,
            &OrderUpdate {
                client_id: o.client_id,
                instrument: o.instrument,
                side: o.life.side(),
                status,
                leaves_qty: Qty::ZERO,
                filled_qty: o.life.filled(),
                reject_reason: reason,
            },
        );
    }

    pub(super) fn log_order(
        &mut self,
        o: &LiveOrder,
        status: OrderStatus,
        reason: Option<RejectReason>,
    ) {
        if let Some(log) = self.log.as_mut() {
            log.push(TraderEvent::Order(OrderRecord {
                ts: o.sent_ts,
                order_id: o.order_id,
                strategy: u32::try_from(o.strategy).unwrap_or(u32::MAX),
                client_id: o.client_id,
                instrument: o.instrument,
                side: o.life.side(),
                price: o.life.price(),
                qty: o.life.qty(),
                kind: o.kind,
                status,
                filled_qty: o.life.filled(),
                reject_reason: reason,
                updated_ts: self.clock,
            }));
        }
    }

    pub(super) fn notify_update(&mut self, s: usize, slot: usize, update: &OrderUpdate) {
        let ctx = self.ctx(update.instrument, slot);
        self.strategies[s]
            .strategy
            .on_order_update(&ctx, update, &mut self.actions);
        if !self.actions.is_empty() {
            self.process_actions(s);
        }
    }

    // ---- accounting ----

    pub(super) fn count_reject(&mut self, reason: RejectReason) {
        self.counters.orders_rejected += 1;
        self.counters.rejected_by_reason[reason as usize] += 1;
    }

    pub(super) fn push_order(&mut self, record: OrderRecord) -> Option<usize> {
        if self.orders.len() < self.max_records {
            self.orders.push(record);
            Some(self.orders.len() - 1)
        } else {
            self.counters.records_dropped += 1;
            None
        }
    }

    pub(super) fn set_status(&mut self, record: Option<usize>, status: OrderStatus, filled: Qty) {
        if let Some(r) = record.and_then(|r| self.orders.get_mut(r)) {
            r.status = status;
            r.filled_qty = filled;
            r.updated_ts = self.clock;
        }
    }
}

/// What a strategy hears of an amendment of `o`: the order as it now is, with `reason` when
/// the amendment was refused.
fn amend_update(o: &LiveOrder, reason: Option<RejectReason>) -> OrderUpdate {
    OrderUpdate {
        client_id: o.client_id,
        instrument: o.instrument,
        side: o.life.side(),
        status: o.life.status().to_strategy(),
        leaves_qty: o.life.leaves(),
        filled_qty: o.life.filled(),
        reject_reason: reason,
    }
}
