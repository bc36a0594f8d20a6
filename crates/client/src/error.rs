//! Client errors.

use brook_protocol::ResponseError;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connection to {addr} failed: {reason}")]
    Connection { addr: String, reason: String },
    #[error("request timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The broker answered with a Kafka error code.
    #[error("{}", describe(*.code, .error, .message.as_deref()))]
    Kafka {
        code: i16,
        error: Option<ResponseError>,
        message: Option<String>,
    },
    #[error("no broker available: {0}")]
    NoBroker(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A producer's `send` waited `max.block.ms` for room in `buffer.memory` and got none.
    #[error(
        "failed to allocate memory within the configured max blocking time {} ms",
        .0.as_millis()
    )]
    BufferExhausted(std::time::Duration),
}

impl ClientError {
    /// A Kafka error from a response's error code and message.
    pub fn kafka(code: i16, message: Option<String>) -> ClientError {
        ClientError::Kafka {
            code,
            error: ResponseError::try_from_code(code),
            message,
        }
    }

    /// The same error again, for each of several records that failed together (an I/O error's
    /// source becomes its message, as `std::io::Error` cannot be cloned).
    pub(crate) fn duplicate(&self) -> ClientError {
        match self {
            ClientError::Connect { addr, source } => ClientError::Connection {
                addr: addr.clone(),
                reason: source.to_string(),
            },
            ClientError::Connection { addr, reason } => ClientError::Connection {
                addr: addr.clone(),
                reason: reason.clone(),
            },
            ClientError::Timeout(d) => ClientError::Timeout(*d),
            ClientError::Protocol(m) => ClientError::Protocol(m.clone()),
            ClientError::Kafka {
                code,
                error,
                message,
            } => ClientError::Kafka {
                code: *code,
                error: *error,
                message: message.clone(),
            },
            ClientError::NoBroker(m) => ClientError::NoBroker(m.clone()),
            ClientError::Config(m) => ClientError::Config(m.clone()),
            ClientError::BufferExhausted(d) => ClientError::BufferExhausted(*d),
        }
    }

    /// The Kafka error code, if the broker refused.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// `Ok(())` for code 0, else the error.
pub fn check(code: i16, message: Option<String>) -> Result<(), ClientError> {
    if code == 0 {
        Ok(())
    } else {
        Err(ClientError::kafka(code, message))
    }
}

fn describe(code: i16, error: &Option<ResponseError>, message: Option<&str>) -> String {
    let name = error
        .map(|e| format!("{e:?}"))
        .unwrap_or_else(|| format!("error code {code}"));
    match (message, error) {
        (Some(m), _) if !m.is_empty() => format!("{name}: {m}"),
        (_, Some(e)) => format!("{name}: {e}"),
        _ => name,
    }
}

/// The error for a response of the wrong kind (a broker or codec bug).
pub(crate) fn unexpected(api: &str) -> ClientError {
    ClientError::Protocol(format!("unexpected response to {api}"))
}
