//! Operator controls (pause, flatten, kill, halt, resume, tightening a limit) and what a
//! restarting engine restores (journaled fills and commissions, funding, venue marks, the
//! risk state).

use super::*;

impl Trader {
    /// Restores the risk state a previous run recorded (a restarting live engine, before it
    /// trades): see [`RiskEngine::restore`].
    pub fn restore_risk(&mut self, restore: crate::risk::RiskRestore) {
        self.risk.restore(restore);
    }

    /// Engages the kill switch at the current clock (no effect when the manifest disarms it).
    pub fn kill(&mut self) {
        if let Some(tr) = self.risk.engage_kill_switch(self.clock) {
            self.on_transition(tr);
        }
        self.pump();
    }

    /// HALTED at the current clock for a reason outside the risk engine (see
    /// [`RiskEngine::halt`]); open orders are cancelled when `cancel_on_trigger` is set.
    pub fn halt(&mut self, cause: crate::risk::RiskCause) {
        if let Some(tr) = self.risk.halt(self.clock, cause) {
            self.on_transition(tr);
        }
        self.pump();
    }

    /// An operator lifts a halt at the current clock: back to ACTIVE, losses still measured
    /// from the day's start and the peak (see [`RiskEngine::resume`]).
    pub fn resume(&mut self) {
        if let Some(tr) = self.risk.resume(self.clock, self.portfolio.equity()) {
            self.on_transition(tr);
        }
        self.pump();
    }

    /// Cancels every open order (operator pause or flatten); the strategies are told as the
    /// cancels are confirmed.
    pub fn cancel_everything(&mut self) {
        self.cancel_all(None);
        self.pump();
    }

    /// Pauses (cancels every open order; strategies are not called, so nothing new is sent)
    /// or resumes trading. Books, positions and risk state are kept.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if paused {
            self.cancel_everything();
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Flattens the account: pauses, cancels every open order and sends, for every non-flat
    /// instrument with a synced book, a market order for the opposite of its position,
    /// checked by the risk engine like any other (a HALTED engine cancels but sends nothing).
    /// Returns the number of closing orders sent.
    pub fn flatten(&mut self) -> usize {
        self.set_paused(true);
        let mut sent = 0;
        for i in 0..self.books.len() {
            let instrument = InstrumentId::try_from(i).unwrap_or(InstrumentId::MAX);
            let qty = self.portfolio.qty(instrument);
            let Some(&(s, _, _, _)) = self.books[i].subs.first() else {
                continue;
            };
            let Some(mid) = self.books[i].sync.book().mid() else {
                continue;
            };
            if qty.0 == 0 || !self.books[i].synced {
                continue;
            }
            let order = NewOrder {
                client_id: self.next_engine_client_id,
                instrument,
                side: if qty.0 > 0 { Side::Sell } else { Side::Buy },
                price: mid,
                qty: Qty(qty.0.abs()),
                kind: OrderKind::Market,
            };
            self.next_engine_client_id -= 1;
            let before = self.counters.orders_sent;
            self.place(s, &order);
            if self.counters.orders_sent > before {
                sent += 1;
            }
        }
        self.pump();
        sent
    }

    /// Tightens a risk limit (see [`RiskEngine::tighten`]); `symbol` names the instrument for
    /// per-instrument limits: every venue's instrument of that symbol, all or none (the
    /// manifest keys `risk.instruments` by symbol, one limit on every venue).
    pub fn tighten_risk(
        &mut self,
        symbol: Option<&str>,
        limit: &str,
        value: i64,
    ) -> Result<(), crate::risk::TightenError> {
        let Some(sym) = symbol else {
            return self.risk.tighten(None, limit, value);
        };
        let ids: Vec<InstrumentId> = self
            .instruments
            .iter()
            .filter(|i| i.symbol == sym)
            .map(|i| i.id)
            .collect();
        if ids.is_empty() {
            return Err(crate::risk::TightenError::UnknownLimit(format!(
                "instruments.{sym}.{limit}"
            )));
        }
        self.risk.tighten_all(&ids, limit, value)
    }

    /// Tightens an asset's limit across venues (`risk.assets.<asset>.max_position`; see
    /// [`RiskEngine::tighten_asset`]); the asset's index, for the decision log.
    pub fn tighten_asset(
        &mut self,
        asset: &str,
        value: i64,
    ) -> Result<usize, crate::risk::TightenError> {
        let index = self
            .risk
            .config()
            .assets
            .iter()
            .position(|a| a.name == asset)
            .ok_or_else(|| {
                crate::risk::TightenError::UnknownLimit(format!("assets.{asset}.max_position"))
            })?;
        self.risk.tighten_asset(index, value)?;
        Ok(index)
    }

    /// [`tighten_asset`](Self::tighten_asset) by the asset's index (a decision log's replay).
    pub fn tighten_asset_at(
        &mut self,
        index: usize,
        value: i64,
    ) -> Result<(), crate::risk::TightenError> {
        self.risk.tighten_asset(index, value)
    }

    /// Order ids continue from `next` (at least): a restarted engine never reuses an id it
    /// sent before.
    pub fn set_next_order_id(&mut self, next: u64) {
        self.next_order_id = self.next_order_id.max(next);
    }

    /// The id the next order will get.
    pub fn next_order_id(&self) -> u64 {
        self.next_order_id
    }

    /// Rebuilds a position from a journaled fill (restart): portfolio only, no strategy
    /// callback, no record. The position is marked at the fill's price, so a restored
    /// position is valued at its latest fill until the book's first mid (not at its first).
    pub fn restore_fill(
        &mut self,
        instrument: InstrumentId,
        side: Side,
        price: Price,
        qty: Qty,
        fee: Cash,
    ) -> Result<(), TraderError> {
        self.journaled_instrument(instrument)?;
        self.portfolio.on_fill(instrument, side, price, qty, fee);
        self.portfolio.mark(instrument, price);
        Ok(())
    }

    /// `instrument` if the journal may name it (one of ours).
    fn journaled_instrument(&self, instrument: InstrumentId) -> Result<(), TraderError> {
        if instrument as usize >= self.books.len() {
            return Err(TraderError::InstrumentId {
                strategy: "journal".to_owned(),
                id: instrument,
            });
        }
        Ok(())
    }

    /// A journaled commission the venue took in an instrument's base asset (see
    /// [`Trader::on_exec_charged`]), replayed at restart after its fill.
    pub fn restore_base_commission(
        &mut self,
        instrument: InstrumentId,
        qty: Qty,
    ) -> Result<(), TraderError> {
        self.journaled_instrument(instrument)?;
        self.portfolio.on_base_commission(instrument, qty);
        Ok(())
    }

    /// A funding payment of a perpetual (positive: received) into the instrument's realised
    /// P&L: as the venue reports it live, and replayed from the journal at restart.
    pub fn book_funding(
        &mut self,
        instrument: InstrumentId,
        amount: Cash,
    ) -> Result<(), TraderError> {
        self.journaled_instrument(instrument)?;
        self.portfolio.on_funding(instrument, amount);
        Ok(())
    }

    /// A futures contract's delivery at expiry: the venue closed the whole position at
    /// `price` without a fill of ours (live, the price the venue published; replayed from the
    /// journal at restart; on a simulated venue, the book's mid at expiry). The position goes
    /// to zero and its P&L is realised at `price` by the contract's terms
    /// (`Portfolio::on_delivery`); a position event is recorded. Booked once per instrument:
    /// a second delivery of the same contract is refused (`Ok(None)`). Returns the quantity
    /// delivered.
    pub fn book_delivery(
        &mut self,
        instrument: InstrumentId,
        price: Price,
    ) -> Result<Option<Qty>, TraderError> {
        self.journaled_instrument(instrument)?;
        let i = instrument as usize;
        if self.delivered.get(i).copied().unwrap_or(true) || price.0 <= 0 {
            return Ok(None);
        }
        self.delivered[i] = true;
        let qty = self.portfolio.on_delivery(instrument, price);
        self.record_position(instrument);
        self.check_equity();
        Ok(Some(qty))
    }

    /// Whether `instrument`'s delivery was booked.
    pub fn is_delivered(&self, instrument: InstrumentId) -> bool {
        self.delivered
            .get(instrument as usize)
            .copied()
            .unwrap_or(false)
    }

    /// A futures contract's expiry (ns since the epoch), if `instrument` is one.
    pub fn expiry(&self, instrument: InstrumentId) -> Option<Nanos> {
        self.risk.expiry(instrument)
    }

    /// Whether only orders reducing `instrument`'s position pass now (the engine is REDUCING,
    /// or a future is in its window before expiry): what a live driver asks the venue to
    /// enforce too (`reduceOnly`).
    pub fn reduce_only(&self, instrument: InstrumentId) -> bool {
        self.risk.reduce_only_at(self.clock, instrument)
    }

    /// A futures contract whose reduce-only window the clock reached has its live orders
    /// cancelled (one resting from before could otherwise grow the position into the
    /// delivery; the strategy may place reducing ones again). On a simulated venue a contract
    /// whose expiry the clock reached has its orders cancelled and is delivered at the book's
    /// mid as it stood then (the last trusted mark without one); a live venue's deliveries come
    /// from the venue (the gateway). The next event's time is found again.
    pub(super) fn on_expiries(&mut self) {
        let mut next = Nanos::MAX;
        let window = self.risk.config().reduce_only_before_expiry_ns;
        for i in 0..self.books.len() {
            let id = i as InstrumentId;
            let Some(expiry) = self.risk.expiry(id) else {
                continue;
            };
            if !self.window_entered[i] {
                if self.clock < expiry.saturating_sub(window) {
                    next = next.min(expiry.saturating_sub(window));
                    continue;
                }
                self.window_entered[i] = true;
                self.cancel_all(Some(id));
            }
            let simulated = matches!(
                self.venues[self.books[i].exchange].route,
                Route::Simulated(_)
            );
            if !simulated || self.delivered[i] {
                continue;
            }
            if expiry > self.clock {
                next = next.min(expiry);
                continue;
            }
            self.cancel_all(Some(id));
            let b = &self.books[i];
            let mid = if b.synced { b.sync.book().mid() } else { None };
            match mid.or(b.marked).or(self.portfolio.position(id).mark()) {
                Some(price) => {
                    let _ = self.book_delivery(id, price);
                }
                // Never priced: nothing can have been traded on it either.
                None => self.delivered[i] = true,
            }
        }
        self.next_expiry_event = next;
        self.pump();
    }

    /// The venue's mark price of a derivative: its unrealised P&L is valued at it from now on
    /// (see `Portfolio::venue_mark`).
    pub fn venue_mark(
        &mut self,
        instrument: InstrumentId,
        price: Price,
    ) -> Result<(), TraderError> {
        self.journaled_instrument(instrument)?;
        self.portfolio.venue_mark(instrument, price);
        Ok(())
    }
}
