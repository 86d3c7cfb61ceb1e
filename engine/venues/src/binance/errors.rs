//! What Binance refuses and answers: [`OrderError`] (a request or response that is not what the
//! API allows, with the error code Binance answers it with) and [`ApiError`] (the error body
//! `{"code":-2010,"msg":"..."}`).

use std::fmt::{self, Write as _};

use serde::Deserialize;

use super::wire::{json, json_string};

/// A request or response that is not what Binance's API allows. Server side, each maps to the
/// error code Binance answers with ([`OrderError::code`], [`OrderError::to_api_error`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("mandatory parameter '{0}' was not sent, was empty/null, or malformed")]
    Missing(&'static str),
    /// Neither of two parameters of which one is required (Binance: "Param 'orderId' or
    /// 'origClientOrderId' must be sent, but both were empty/null!").
    #[error("parameter '{0}' or '{1}' must be sent, but both were empty/null")]
    MissingEither(&'static str, &'static str),
    #[error("parameter '{name}' has an invalid value {value:?}: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("parameter '{0}' sent when not required")]
    NotRequired(&'static str),
    #[error("duplicate values for parameter '{0}'")]
    Duplicate(String),
    #[error("unknown parameter '{0}'")]
    Unknown(String),
    #[error("malformed query string at byte {at}: {reason}")]
    Malformed { at: usize, reason: &'static str },
    #[error("parameter 'signature' is missing (this endpoint is SIGNED)")]
    MissingSignature,
    #[error("signature for this request is not valid")]
    BadSignature,
    #[error(
        "timestamp {timestamp} ms is outside the recvWindow of {recv_window} ms \
         around the server time {server} ms"
    )]
    Timestamp {
        timestamp: u64,
        server: u64,
        recv_window: u64,
    },
    #[error("{what}: {reason}")]
    Response { what: &'static str, reason: String },
}

impl OrderError {
    /// Binance's error code for this error.
    pub fn code(&self) -> i32 {
        match self {
            OrderError::Missing(_) | OrderError::MissingEither(..) => -1102,
            OrderError::Invalid { name, reason, .. } => match *name {
                "side" => -1117,
                "type" => -1116,
                "timeInForce" => -1115,
                "symbol" => -1121,
                "recvWindow" => -1131,
                "newOrderRespType" => -1177,
                "price" | "quantity" if *reason == PRECISION => -1111,
                "price" | "quantity" => -1013,
                _ => -1100,
            },
            OrderError::NotRequired(_) => -1106,
            OrderError::Duplicate(_) => -1101,
            OrderError::Unknown(_) => -1104,
            OrderError::Malformed { .. } => -1100,
            OrderError::MissingSignature => -1102,
            OrderError::BadSignature => -1022,
            OrderError::Timestamp { .. } => -1021,
            OrderError::Response { .. } => -1000,
        }
    }

    /// The error body a server answers with.
    pub fn to_api_error(&self) -> ApiError {
        ApiError::new(self.code(), self.to_string())
    }
}

pub(super) const PRECISION: &str = "precision is over the maximum defined for this asset";

/// A Binance error body, `{"code":-2010,"msg":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: i32,
    pub msg: String,
}

impl ApiError {
    pub fn new(code: i32, msg: impl Into<String>) -> ApiError {
        ApiError {
            code,
            msg: msg.into(),
        }
    }

    /// The HTTP status Binance answers with: 429 for rate limits (-1003, -1015), 401 for key
    /// and signature problems (-2014, -2015, -1022 stays 400 as Binance sends it), 503 for an
    /// unknown or internal state (-1001, -1006, -1007), 400 otherwise.
    pub fn http_status(&self) -> u16 {
        match self.code {
            -1003 | -1015 => 429,
            -2014 | -2015 => 401,
            -1001 | -1006 | -1007 => 503,
            _ => 400,
        }
    }

    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(32 + self.msg.len());
        let _ = write!(out, "{{\"code\":{},\"msg\":", self.code);
        json_string(&mut out, &self.msg);
        out.push('}');
        out
    }

    /// Parses an error body.
    pub fn parse(body: &str) -> Result<ApiError, OrderError> {
        #[derive(Deserialize)]
        struct Raw {
            code: i32,
            msg: String,
        }
        let raw: Raw = json(body, "error body")?;
        Ok(ApiError::new(raw.code, raw.msg))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Binance error {}: {}", self.code, self.msg)
    }
}

impl std::error::Error for ApiError {}
