//! The enumerations of Binance Spot order entry (`type`, `timeInForce`, `newOrderRespType`,
//! order status, execution type, `selfTradePreventionMode`, side) with their wire names.

use std::fmt;

use rt_core::Side;

use super::errors::OrderError;

/// `type` of a new order (the ones the engine uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderType {
    Limit,
    Market,
    /// Post-only: rejected when it would take liquidity.
    LimitMaker,
}

/// `timeInForce`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeInForce {
    Gtc,
    Ioc,
}

/// `newOrderRespType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RespType {
    Ack,
    Result,
    Full,
}

/// Order status (`X`, `status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
    Expired,
    /// Expired by self-trade prevention.
    ExpiredInMatch,
}

/// Execution type of an `executionReport` (`x`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExecType {
    New,
    Canceled,
    Rejected,
    Trade,
    Expired,
    /// The order expired by self-trade prevention (its status: `EXPIRED_IN_MATCH`).
    TradePrevention,
    /// The order was amended in place (Binance Spot's `order.amend.keepPriority`; the sim's
    /// OKX amendments): its price and quantity now in `p` and `q`.
    Replaced,
}

/// `selfTradePreventionMode`: what the venue does when an order would trade against another
/// order of the same account (the taker's mode decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StpMode {
    None,
    ExpireTaker,
    ExpireMaker,
    ExpireBoth,
}

macro_rules! wire_enum {
    ($ty:ident, $param:literal, $reason:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The wire name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }

            /// Parses the wire name; the error names the parameter.
            pub fn parse(text: &str) -> Result<$ty, OrderError> {
                match text {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(OrderError::Invalid {
                        name: $param,
                        value: text.to_owned(),
                        reason: $reason,
                    }),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(OrderType, "type", "expected LIMIT, MARKET or LIMIT_MAKER", {
    Limit => "LIMIT",
    Market => "MARKET",
    LimitMaker => "LIMIT_MAKER",
});
wire_enum!(TimeInForce, "timeInForce", "expected GTC or IOC", {
    Gtc => "GTC",
    Ioc => "IOC",
});
wire_enum!(RespType, "newOrderRespType", "expected ACK, RESULT or FULL", {
    Ack => "ACK",
    Result => "RESULT",
    Full => "FULL",
});
wire_enum!(OrderStatus, "status", "not an order status", {
    New => "NEW",
    PartiallyFilled => "PARTIALLY_FILLED",
    Filled => "FILLED",
    Canceled => "CANCELED",
    Rejected => "REJECTED",
    Expired => "EXPIRED",
    ExpiredInMatch => "EXPIRED_IN_MATCH",
});
wire_enum!(ExecType, "x", "not an execution type", {
    New => "NEW",
    Canceled => "CANCELED",
    Rejected => "REJECTED",
    Trade => "TRADE",
    Expired => "EXPIRED",
    TradePrevention => "TRADE_PREVENTION",
    Replaced => "REPLACED",
});
wire_enum!(StpMode, "selfTradePreventionMode", "expected NONE, EXPIRE_TAKER, EXPIRE_MAKER or EXPIRE_BOTH", {
    None => "NONE",
    ExpireTaker => "EXPIRE_TAKER",
    ExpireMaker => "EXPIRE_MAKER",
    ExpireBoth => "EXPIRE_BOTH",
});

/// `BUY` / `SELL`.
pub const fn side_str(side: Side) -> &'static str {
    match side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

/// Parses `BUY` / `SELL` (the error names `name`).
pub fn parse_side(text: &str, name: &'static str) -> Result<Side, OrderError> {
    match text {
        "BUY" => Ok(Side::Buy),
        "SELL" => Ok(Side::Sell),
        _ => Err(OrderError::Invalid {
            name,
            value: text.to_owned(),
            reason: "expected BUY or SELL",
        }),
    }
}

impl OrderStatus {
    /// The order can still fill (it is on the book).
    pub const fn is_open(self) -> bool {
        matches!(self, OrderStatus::New | OrderStatus::PartiallyFilled)
    }

    /// The venue's word for a lifecycle status (an order not acknowledged yet shows `NEW`).
    pub const fn of_lifecycle(status: rt_core::LifecycleStatus) -> OrderStatus {
        use rt_core::LifecycleStatus as L;
        match status {
            L::Sent | L::New => OrderStatus::New,
            L::PartiallyFilled => OrderStatus::PartiallyFilled,
            L::Filled => OrderStatus::Filled,
            L::Canceled => OrderStatus::Canceled,
            L::Expired => OrderStatus::Expired,
            L::ExpiredInMatch => OrderStatus::ExpiredInMatch,
            L::Rejected => OrderStatus::Rejected,
        }
    }
}
